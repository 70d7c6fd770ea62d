"""Linear evaluation: a frozen encoder, features computed once, one linear layer trained on them.

With `augment_copies = N` the training features are those of each labelled image plus N random
crop/flip copies of it, all encoded once before the head trains (the probe is then "augN",
otherwise "plain"); validation and test features are always of the un-augmented images.
`feature_stages` / `feature_grid` choose what is read: the encoder's own feature (stage 3,
globally pooled: 64 numbers), or other stages' outputs pooled to a small grid and concatenated
(Gidaris et al. find RotNet's best linear features before the last block).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ssltui.core.config import LinearConfig
from ssltui.core.events import PhaseRef
from ssltui.trainer.augment import random_crop_flip
from ssltui.trainer.data.bundle import DataBundle
from ssltui.trainer.device import DeviceSettings
from ssltui.trainer.evaluation.common import EvalJob, encode
from ssltui.trainer.loop import Phase, RunContext
from ssltui.trainer.models.resnet import ResNet20
from ssltui.trainer.optim import build_optimizer


def probe_name(cfg: LinearConfig) -> str:
    """How the probe's features were made, as result records and tables name it: "plain" or
    "augN", then the stages read and their pooling when not the encoder's own feature
    ("plain s2+s3 2x2")."""
    name = f"aug{cfg.augment_copies}" if cfg.augment_copies else "plain"
    if cfg.default_readout():
        return name
    grid = cfg.feature_grid
    return f"{name} {'+'.join(f's{s}' for s in cfg.feature_stages)} {grid}x{grid}"


def readout(cfg: LinearConfig) -> tuple[tuple[int, ...], int] | None:
    """`encode`'s readout for the probe's features (None: the encoder's own feature); hashable,
    so features read one way are cached under it."""
    return None if cfg.default_readout() else (tuple(cfg.feature_stages), cfg.feature_grid)


def training_features(
    encoder: ResNet20,
    x: torch.Tensor,
    y: torch.Tensor,
    cfg: LinearConfig,
    bundle: DataBundle,
    dev: DeviceSettings,
    gen: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Features and labels of uint8 images `x` and of `cfg.augment_copies` random crop/flip
    copies of each."""
    copies, how = cfg.augment_copies, readout(cfg)
    feats = [encode(encoder, x, bundle, dev, how)]
    feats += [encode(encoder, random_crop_flip(x, gen), bundle, dev, how) for _ in range(copies)]
    return torch.cat(feats), y.repeat(copies + 1)


def linear_probe(
    ctx: RunContext,
    info: PhaseRef,
    cfg: LinearConfig,
    bundle: DataBundle,
    subset: torch.Tensor,
    encoder: ResNet20,
    features: dict[str, torch.Tensor] | None = None,
) -> dict:
    """Train a linear layer on frozen features of `subset`; return test and validation accuracy.

    The encoder is only run in eval mode under no_grad, so neither its weights nor its
    BatchNorm statistics can change. `features` may hold precomputed "val" and "test" features,
    read the probe's way (`readout(cfg)`).
    """
    dev = ctx.dev
    gen = ctx.generator(info.seed, info.phase)
    feats, how = dict(features or {}), readout(cfg)
    if "val" not in feats:
        feats["val"] = encode(encoder, bundle.train_x[bundle.val_idx], bundle, dev, how)
    if "test" not in feats:
        feats["test"] = encode(encoder, bundle.test_x, bundle, dev, how)
    train_f, train_y = training_features(encoder, bundle.train_x[subset], bundle.train_y[subset], cfg, bundle, dev, gen)
    if cfg.standardize:
        mean, std = train_f.mean(0, keepdim=True), train_f.std(0, keepdim=True) + 1e-6
    else:
        mean, std = torch.zeros_like(train_f[:1]), torch.ones_like(train_f[:1])

    def norm(f: torch.Tensor) -> torch.Tensor:
        return (f - mean) / std

    head = nn.Linear(train_f.shape[1], bundle.num_classes).to(dev.device)
    optimizer = build_optimizer(cfg, [head])
    xs = norm(train_f)
    val_y = bundle.train_y[bundle.val_idx]

    @torch.no_grad()
    def acc(f: torch.Tensor, y: torch.Tensor) -> float:
        return float((head(norm(f)).argmax(1) == y).float().mean()) if len(y) else float("nan")

    def step(pos: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(head(xs[pos]), train_y[pos])

    def epoch_end(epoch: int) -> dict:
        return {"val_acc": acc(feats["val"], val_y)}

    phase = Phase(ctx, info, cfg, len(train_y), {"head": head}, optimizer, gen)
    out = phase.run(step, head.train, epoch_end)
    return {
        "test_acc": acc(feats["test"], bundle.test_y),
        "val_acc": acc(feats["val"], val_y),
        "seconds": out["seconds"],
        "probe": probe_name(cfg),
    }


def evaluate(job: EvalJob) -> dict:
    """The linear evaluation of a pretrained encoder (its features read as `readout` asks)."""
    return linear_probe(
        job.ctx, job.ref, job.settings, job.bundle, job.subset, job.encoder, job.features(readout(job.settings))
    )
