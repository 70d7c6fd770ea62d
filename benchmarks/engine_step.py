"""The engine's real pretraining step for any method, built once for the benchmarks.

The model, optimizer and loss come from the same constructors `methods.<name>.pretrain` uses
(`build_optimizer`, `make_loss`), on the engine's data path (`load_source` + `make_bundle`:
uint8 images on the device, channel statistics from histograms), and one step is what
`loop.Phase.run` does with them: zero the gradients, loss, backward, optimizer step.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from ssltui.core.config import RunConfig, TrainConfig
from ssltui.trainer.data.bundle import DataBundle
from ssltui.trainer.device import DeviceSettings
from ssltui.trainer.optim import build_optimizer

METHODS = ("simclr", "rotnet")
# The preset whose [pretrain] section and method settings each benchmark uses (the supervised
# baseline: its [supervised] section; it is no pretraining method, but the GPU check times it).
PRESETS = {"simclr": "simclr-linear", "rotnet": "rotnet-linear", "supervised": "supervised"}


@dataclass
class EngineStep:
    """One method's training step as the engine runs it, on positions into `n_items` images."""

    method: str
    model: nn.Module
    optimizer: torch.optim.Optimizer
    loss: Callable[[torch.Tensor], torch.Tensor]  # the method's make_loss closure
    n_items: int
    views_per_item: int  # network inputs per image (SimCLR 2 views, RotNet 4 rotations)
    generator: torch.Generator | None = None  # the step's random draws (a graph registers it)
    cfg: RunConfig | None = None  # the run configuration (its [pretrain] schedule and optimizer)
    dev: DeviceSettings | None = None

    def __call__(self, pos: torch.Tensor) -> torch.Tensor:
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.loss(pos)
        loss.backward()
        self.optimizer.step()
        return loss

    def runner(
        self,
        total_steps: int,
        batch_size: int,
        graphs: bool | None = None,
        backend=None,
        log: Callable[[str], None] = print,
    ) -> Callable[[int, torch.Tensor], None]:
        """What the training loop runs for this step, `runner(global_step, positions)`: replays
        of a CUDA graph where the device settings capture (`graphs` None), else eager steps;
        `backend` replaces the settings' capture backend."""
        from ssltui.trainer.cudagraph import EagerSteps, GraphedSteps

        cfg = train_config(self.method, self.cfg)
        losses = torch.zeros(total_steps, device=next(self.model.parameters()).device)
        backend = backend or (self.dev.graphs if self.dev is not None else None)
        if backend is None or graphs is False:
            return EagerSteps(cfg, total_steps, self.optimizer, self.loss, losses)
        return GraphedSteps(
            cfg,
            total_steps,
            self.optimizer,
            {"model": self.model},
            self.loss,
            losses,
            self.generator,
            batch_size,
            backend,
            log,
        )

    def forward_backward(self, pos: torch.Tensor) -> None:
        """The step without the optimizer (what FLOP counting measures)."""
        self.loss(pos).backward()


@functools.cache
def preset_config(method: str) -> RunConfig:
    """The run configuration of the method's paper preset (read once; do not modify it)."""
    from ssltui.core.presets import resolve

    return resolve(PRESETS[method]).parts[0]


def _simclr(
    cfg: RunConfig, bundle: DataBundle, dev: DeviceSettings, gen: torch.Generator, batch_size: int
) -> tuple[nn.Module, Callable, int]:
    from ssltui.trainer.augment import SimCLRAugment
    from ssltui.trainer.methods.simclr import ProjectionHead, SimCLRModel, make_loss
    from ssltui.trainer.models.resnet import ResNet20

    sc = cfg.simclr
    encoder = ResNet20()
    model = dev.prepare(SimCLRModel(encoder, ProjectionHead(encoder.feature_dim, sc.proj_hidden_dim, sc.proj_out_dim)))
    images = bundle.train_x[bundle.train_idx]
    loss = make_loss(
        dev.training_forward(model),
        SimCLRAugment.from_config(sc),
        images,
        bundle.mean,
        bundle.std,
        dev,
        gen,
        sc.temperature,
    )
    return model, loss, 2


def _rotnet(
    cfg: RunConfig, bundle: DataBundle, dev: DeviceSettings, gen: torch.Generator, batch_size: int
) -> tuple[nn.Module, Callable, int]:
    from ssltui.trainer.methods.rotnet import make_loss
    from ssltui.trainer.models.resnet import Classifier, ResNet20
    from ssltui.trainer.rotation import NUM_ROTATIONS, rotation_labels

    model = dev.prepare(Classifier(ResNet20(), NUM_ROTATIONS))
    images = bundle.train_x[bundle.train_idx]
    loss = make_loss(
        dev.training_forward(model),
        images,
        bundle,
        dev,
        gen,
        rotation_labels(batch_size, dev.device),
        cfg.rotnet.crop_flip,
    )
    return model, loss, NUM_ROTATIONS


def _supervised(
    cfg: RunConfig, bundle: DataBundle, dev: DeviceSettings, gen: torch.Generator, batch_size: int
) -> tuple[nn.Module, Callable, int]:
    from ssltui.trainer.losses import classifier_loss
    from ssltui.trainer.models.resnet import Classifier, ResNet20

    model = dev.prepare(Classifier(ResNet20(), bundle.num_classes))
    images, labels = bundle.train_x[bundle.train_idx], bundle.train_y[bundle.train_idx]
    loss = classifier_loss(
        dev.training_forward(model), images, bundle, dev, gen, lambda pos: labels[pos], cfg.supervised.augment
    )
    return model, loss, 1


_BUILDERS = {"simclr": _simclr, "rotnet": _rotnet, "supervised": _supervised}


def train_config(method: str, cfg: RunConfig) -> TrainConfig:
    """The section that trains `method`'s step: [pretrain], or [supervised] for the baseline."""
    return cfg.supervised if method == "supervised" else cfg.pretrain


def engine_step(
    method: str,
    bundle: DataBundle,
    dev: DeviceSettings,
    batch_size: int,
    seed: int = 0,
    cfg: RunConfig | None = None,
    fused: bool | None = None,
) -> EngineStep:
    """The engine's step of `method` (its paper preset unless `cfg` is given) at `batch_size`;
    `fused` overrides build_optimizer's choice of fused kernels (CUDA's, by default)."""
    cfg = cfg if cfg is not None else preset_config(method)
    gen = torch.Generator(device=dev.device)
    gen.manual_seed(seed)
    torch.manual_seed(seed)
    model, loss, views = _BUILDERS[method](cfg, bundle, dev, gen, batch_size)
    optimizer = build_optimizer(train_config(method, cfg), [model], fused)
    model.train()
    return EngineStep(method, model, optimizer, loss, len(bundle.train_idx), views, gen, cfg, dev)
