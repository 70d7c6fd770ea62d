"""Pretraining methods, one module each, looked up by name.

Each module `ssltui.trainer.methods.<name>` defines
`pretrain(ctx: RunContext, info: PhaseRef, cfg: RunConfig, bundle: DataBundle) -> ResNet20`.
The supervised baseline has no pretraining (see evaluation/finetune.py).
"""
