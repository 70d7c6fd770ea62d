"""The guard rail of a pretraining: at a fifth of its epochs, is the encoder barely training? Its
kNN accuracy against its random initialisation's, how far its convolutions have moved, and the
warning that says so; the kNN bank and BatchNorm statistics the check reads. Shared by every
two-view method (ssltui/trainer/twoview.py)."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from ssltui.core.config import TrainConfig
from ssltui.trainer.augment import SimCLRAugment, normalizer
from ssltui.trainer.data.bundle import DataBundle
from ssltui.trainer.device import DeviceSettings
from ssltui.trainer.loop import derive_seed
from ssltui.trainer.models.resnet import ResNet20
from ssltui.trainer.optim import peak_lr

# The guard rail: at a fifth of its epochs, an encoder whose kNN accuracy is within GUARD_MARGIN
# of its random initialisation's, or whose convolutions have moved less than GUARD_MIN_MOTION of
# their norm, is barely training. The case it is for is a learning rate far too small for LARS
# (the paper's "lr 0.012" read literally): the thresholds sit between what that reading and
# SimCLR's rate were measured to do (docs/results.md, the SimCLR rows).
GUARD_MARGIN = 0.05
GUARD_MIN_MOTION = 0.02


def knn_bank(bundle: DataBundle, max_bank: int, seed: int) -> torch.Tensor:
    """A fixed random subset (at most `max_bank`) of the non-validation training indices."""
    g = torch.Generator()
    g.manual_seed(derive_seed(seed, "simclr-knn-bank"))
    n = len(bundle.train_idx)
    pick = torch.randperm(n, generator=g)[: min(max_bank, n)].to(bundle.device)
    return bundle.train_idx[pick]


def guard_epoch(epochs: int) -> int:
    """The first epoch (1-based) at or after 20% of `epochs`: where the guard rail checks."""
    return max(1, -(-epochs // 5))


@torch.no_grad()
def with_view_bn_statistics(
    encoder: ResNet20, images: torch.Tensor, augment: SimCLRAugment, bundle: DataBundle, dev: DeviceSettings, seed: int
) -> ResNet20:
    """A copy of `encoder` whose BatchNorm statistics are those of SimCLR views of `images`.

    The guard rail's random reference: a pretraining whose weights barely move still replaces
    its initial BN statistics by those of the views it trains on, and they alone shift kNN
    accuracy by several points. A generator of its own leaves the training draws unchanged.
    """
    model = copy.deepcopy(encoder)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # a cumulative average over every batch
    model.train()
    gen = torch.Generator(device=images.device)
    gen.manual_seed(seed)
    normalize = normalizer(bundle.mean, bundle.std)
    for i in range(0, len(images), dev.eval_batch_size):
        views = normalize(augment(images[i : i + dev.eval_batch_size], gen, channels_last=dev.channels_last))
        with dev.autocast():
            model(views)
    return model.eval()


@dataclass
class GuardCheck:
    """What the guard rail measures at its epoch."""

    knn: float
    knn_random: float
    conv_motion: float  # median over the convolutions of ||w - w0|| / ||w0||
    epoch: int
    epochs: int
    steps: int


def conv_motion(encoder: nn.Module, initial: dict[str, torch.Tensor]) -> float:
    """Median over the convolutions of how far training has moved them, relative to their norm."""
    state = encoder.state_dict()
    moved = torch.stack([(state[k].float() - w0).norm() / w0.norm() for k, w0 in initial.items()])
    return float(moved.median())


def barely_training_warning(check: GuardCheck, cfg: TrainConfig) -> str | None:
    """The guard rail's warning, naming the likely cause; None for an encoder that trains."""
    knn_low = check.knn < check.knn_random + GUARD_MARGIN
    still = check.conv_motion < GUARD_MIN_MOTION
    if not (knn_low or still):
        return None
    lr = f"pretrain.lr={cfg.lr:g}" + (
        f", {peak_lr(cfg):g} after {cfg.lr_scaling} scaling" if cfg.lr_scaling != "none" else ""
    )
    relative_step = peak_lr(cfg) * cfg.lars_trust_coefficient
    simclr_step = 0.3 * cfg.batch_size / 256 * 0.001  # SimCLR's rule with its trust coefficient
    if cfg.optimizer == "lars" and (still or relative_step < 0.1 * simclr_step):
        cause = (
            f"with LARS the learning rate is likely far too small ({lr}: each adapted layer moves "
            f"~lr x trust coefficient = {relative_step:.1e} of its norm a step; SimCLR's 0.3 x "
            f"batch/256 = {0.3 * cfg.batch_size / 256:g} moves {simclr_step:.1e})"
        )
    elif still:
        cause = f"the learning rate is likely far too small ({lr})"
    else:
        cause = f"check the learning rate ({lr}) and the length of the run ({check.steps} steps so far)"
    relation = (
        f"is within {100 * GUARD_MARGIN:g} points of a random encoder's {check.knn_random:.1%} (or below it)"
        if knn_low
        else f"(a random encoder's: {check.knn_random:.1%})"
    )
    return (
        f"kNN accuracy {check.knn:.1%} after {check.epoch} of {check.epochs} epochs {relation}, "
        f"its convolutions moved a median {check.conv_motion:.1%} of their norm: the encoder is barely "
        f"training; {cause}"
    )
