"""SimCLR pretraining (Chen et al. 2020): two augmented views per image, NT-Xent, LARS.

The whole training split sits on the device as uint8; each step indexes a batch, draws both
views of every image in one batched pass (`augment.SimCLRAugment`), runs the encoder and the
projection head on the 2N views at once (BatchNorm sees both views, as in SimCLR) and
minimises NT-Xent. Labels are not used, except by the kNN monitor on the validation split.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ssltui.core.config import RunConfig
from ssltui.core.events import PhaseRef
from ssltui.trainer.augment import SimCLRAugment, normalizer
from ssltui.trainer.data.bundle import DataBundle
from ssltui.trainer.device import DeviceSettings
from ssltui.trainer.loop import RunContext
from ssltui.trainer.losses import nt_xent
from ssltui.trainer.models.resnet import ResNet20
from ssltui.trainer.ssl_parts import CollapseMonitor, mlp
from ssltui.trainer.twoview import pretrain_views


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
