"""SimSiam pretraining (Chen & He 2021): encoder and projector on both views, a predictor on
one branch and a stop-gradient on the other, symmetrised; no target network, no negatives."""

from __future__ import annotations

import torch
from torch import nn

from ssltui.core.config import RunConfig
from ssltui.core.events import PhaseRef
from ssltui.trainer.augment import SimCLRAugment
from ssltui.trainer.data.bundle import DataBundle
from ssltui.trainer.loop import RunContext
from ssltui.trainer.models.resnet import ResNet20
from ssltui.trainer.ssl_losses import simsiam_loss
from ssltui.trainer.ssl_parts import mlp
from ssltui.trainer.twoview import pretrain_views


class SimSiamModel(nn.Module):
    """Encoder, projector (BatchNorm on its output, as SimSiam's) and bottleneck predictor."""

    def __init__(
        self,
        encoder: ResNet20,
        proj_hidden_dim: int,
        proj_out_dim: int,
        pred_hidden_dim: int,
        stop_gradient: bool = True,
    ):
        super().__init__()
        self.encoder = encoder
        self.projector = mlp(encoder.feature_dim, proj_hidden_dim, proj_out_dim, out_bn=True)
        self.predictor = mlp(proj_out_dim, pred_hidden_dim, proj_out_dim)
        self.stop_gradient = stop_gradient

    def views_loss(self, views: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.projector(self.encoder(views))
        p1, p2 = self.predictor(z).chunk(2)
        z1, z2 = z.chunk(2)
        return simsiam_loss(p1, p2, z1, z2, self.stop_gradient), z


def pretrain(ctx: RunContext, info: PhaseRef, cfg: RunConfig, bundle: DataBundle) -> ResNet20:
    """Pretrain a ResNet-20 with SimSiam on the training split's non-validation images."""
    s = cfg.method_settings
    return pretrain_views(
        ctx,
        info,
        cfg,
        bundle,
        lambda: SimSiamModel(ResNet20(), s.proj_hidden_dim, s.proj_out_dim, s.pred_hidden_dim, s.stop_gradient),
        SimCLRAugment.from_config(s),
    )
