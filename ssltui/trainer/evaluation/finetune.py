"""Training a ResNet-20 classifier on the labelled subset.

With no encoder this is the supervised baseline (from scratch); with a pretrained encoder and
`frozen_stages` it is the paper's semi-supervised fine-tuning (RotNet semi-supervised).
With `ema` > 0 an exponential moving average of the weights (and BatchNorm statistics) is
kept beside the trained model, and it is the average that is validated, tested and returned.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from ssltui.core.config import ClassifierConfig
from ssltui.core.events import PhaseRef
from ssltui.trainer.data.bundle import DataBundle
from ssltui.trainer.evaluation.common import accuracy
from ssltui.trainer.loop import Phase, RunContext
from ssltui.trainer.losses import classifier_loss
from ssltui.trainer.models.resnet import Classifier, ResNet20, freeze, set_train_mode
from ssltui.trainer.optim import build_optimizer


def weight_average(model: nn.Module, decay: float) -> AveragedModel | None:
    """torch's EMA of `model`'s parameters and buffers, or None when `decay` is 0 (off)."""
    if decay <= 0:
        return None
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


def train_classifier(
    ctx: RunContext,
    info: PhaseRef,
    cfg: ClassifierConfig,
    bundle: DataBundle,
    subset: torch.Tensor,
    encoder: ResNet20 | None = None,
) -> dict:
    """Train on `subset` (indices into the training split); return test and validation accuracy."""
    dev = ctx.dev
    gen = ctx.generator(info.seed, info.phase)
    enc = ResNet20() if encoder is None else copy.deepcopy(encoder)
    model = dev.prepare(Classifier(enc, bundle.num_classes))
    frozen = enc.frozen_modules(cfg.frozen_stages)
    freeze(frozen)
    # Frozen weights either way; with frozen_bn_stats off their BatchNorm layers train (batch
    # statistics, running averages updated) like the rest.
    eval_mode = frozen if cfg.frozen_bn_stats else []
    optimizer = build_optimizer(cfg, [model])
    ema = weight_average(model, cfg.ema)
    evaluated = model if ema is None else ema.module
    xs, ys = bundle.train_x[subset], bundle.train_y[subset]
    val_x, val_y = bundle.train_x[bundle.val_idx], bundle.train_y[bundle.val_idx]

    forward = dev.training_forward(model)
    step = classifier_loss(
        forward,
        xs,
        bundle,
        dev,
        gen,
        lambda pos: ys[pos],
        cfg.augment,
        cutout_size=cfg.cutout,
        label_smoothing=cfg.label_smoothing,
    )

    def epoch_end(epoch: int) -> dict:
        return {"val_acc": accuracy(evaluated, val_x, val_y, bundle, dev)}

    modules: dict[str, nn.Module] = {"model": model} if ema is None else {"model": model, "ema": ema}
    phase = Phase(
        ctx,
        info,
        cfg,
        len(subset),
        modules,
        optimizer,
        gen,
        after_step=None if ema is None else lambda: ema.update_parameters(model),
    )
    out = phase.run(step, lambda: set_train_mode(model, eval_mode), epoch_end)
    test_acc = accuracy(evaluated, bundle.test_x, bundle.test_y, bundle, dev)
    return {"test_acc": test_acc, "val_acc": out.get("val_acc"), "seconds": out["seconds"], "model": evaluated}
