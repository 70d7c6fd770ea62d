"""SimCLR pretraining (Chen et al. 2020): two augmented views per image, NT-Xent, LARS.

The whole training split sits on the device as uint8; each step indexes a batch, draws both
views of every image in one batched pass (`augment.SimCLRAugment`), runs the encoder and the
projection head on the 2N views at once (BatchNorm sees both views, as in SimCLR) and
minimises NT-Xent. Labels are not used, except by the kNN monitor on the validation split.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from ssltui.core.config import RunConfig, TrainConfig
from ssltui.core.events import PhaseRef
from ssltui.trainer.augment import SimCLRAugment, normalizer
from ssltui.trainer.data.bundle import DataBundle
from ssltui.trainer.device import DeviceSettings
from ssltui.trainer.loop import RunContext, derive_seed
from ssltui.trainer.losses import nt_xent
from ssltui.trainer.models.resnet import ResNet20
from ssltui.trainer.optim import peak_lr
from ssltui.trainer.ssl_parts import CollapseMonitor, mlp
from ssltui.trainer.twoview import pretrain_views

# The guard rail: at a fifth of its epochs, an encoder whose kNN accuracy is within GUARD_MARGIN
# of its random initialisation's, or whose convolutions have moved less than GUARD_MIN_MOTION of
# their norm, is barely training. The case it is for is a learning rate far too small for LARS
# (the paper's "lr 0.012" read literally): the thresholds sit between what that reading and
# SimCLR's rate were measured to do (docs/results.md, the SimCLR rows).
GUARD_MARGIN = 0.05
GUARD_MIN_MOTION = 0.02


class ProjectionHead(nn.Module):
    """G(h): the 2-layer MLP of SimCLR, Linear -> BatchNorm -> ReLU -> Linear.

    BatchNorm in the hidden layer follows SimCLR's code (its paper writes W2 relu(W1 h)).
    """

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int):
        super().__init__()
        self.net = mlp(in_dim, hidden_dim, out_dim)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.net(h)


class SimCLRModel(nn.Module):
    """Encoder F and projection head G: image -> z = G(F(image))."""

    guards_collapse = False  # contrastive: the negatives keep the projections apart

    def __init__(self, encoder: ResNet20, head: ProjectionHead):
        super().__init__()
        self.encoder = encoder
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x))


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


def make_loss(
    model: nn.Module,
    augment: SimCLRAugment,
    images: torch.Tensor,
    mean: torch.Tensor,
    std: torch.Tensor,
    dev: DeviceSettings,
    gen: torch.Generator,
    temperature: float,
    monitor: CollapseMonitor | None = None,
) -> Callable[[torch.Tensor], torch.Tensor]:
    """The training step's loss for batch positions into `images` (uint8 on the device); the
    benchmark times this same function. `monitor` records the projections' spread."""
    normalize = normalizer(mean, std)

    def loss(pos: torch.Tensor) -> torch.Tensor:
        # Both views of every image in one pass, straight from the image store (each of the 2N
        # draws is independent), laid out as the model wants them.
        views = normalize(augment(images, gen, torch.cat([pos, pos]), dev.channels_last))
        with dev.autocast():
            z = model(views)
        if monitor is not None:
            monitor.record(z)
        z1, z2 = z.float().chunk(2)
        return nt_xent(z1, z2, temperature)

    return loss


def pretrain(ctx: RunContext, info: PhaseRef, cfg: RunConfig, bundle: DataBundle) -> ResNet20:
    """Pretrain a ResNet-20 with SimCLR on the training split's non-validation images."""
    sc = cfg.method_settings
    augment = SimCLRAugment.from_config(sc)

    def build() -> SimCLRModel:
        encoder = ResNet20()
        return SimCLRModel(encoder, ProjectionHead(encoder.feature_dim, sc.proj_hidden_dim, sc.proj_out_dim))

    def make_step(model: nn.Module, images: torch.Tensor, gen: torch.Generator, monitor: CollapseMonitor):
        return make_loss(
            ctx.dev.training_forward(model),
            augment,
            images,
            bundle.mean,
            bundle.std,
            ctx.dev,
            gen,
            sc.temperature,
            monitor,
        )

    return pretrain_views(ctx, info, cfg, bundle, build, augment, make_step)
