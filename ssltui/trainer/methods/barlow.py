"""Barlow Twins pretraining (Zbontar et al. 2021): encoder and 3-layer projector on both views,
the cross-correlation of the two embeddings pushed to the identity."""

from __future__ import annotations

import torch
from torch import nn

from ssltui.core.config import RunConfig
from ssltui.core.events import PhaseRef
from ssltui.core.methods.barlow import METHOD as DECLARED
from ssltui.trainer.augment import SimCLRAugment
from ssltui.trainer.data.bundle import DataBundle
from ssltui.trainer.loop import RunContext
from ssltui.trainer.models.resnet import ResNet20
from ssltui.trainer.ssl_losses import barlow_twins_parts
from ssltui.trainer.ssl_parts import TermMeter, mlp
from ssltui.trainer.twoview import pretrain_views


class BarlowModel(nn.Module):
    def __init__(self, encoder: ResNet20, proj_hidden_dim: int, proj_out_dim: int, lambd: float):
        super().__init__()
        self.encoder = encoder
        self.projector = mlp(encoder.feature_dim, proj_hidden_dim, proj_out_dim, layers=3)
        self.lambd = lambd
        self.terms = TermMeter(DECLARED.loss_terms)  # invariance, redundancy

    def views_loss(self, views: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.projector(self.encoder(views))
        z1, z2 = z.chunk(2)
        on, off = barlow_twins_parts(z1, z2)
        off = self.lambd * off
        self.terms.add([on, off])
        return on + off, z


def pretrain(ctx: RunContext, info: PhaseRef, cfg: RunConfig, bundle: DataBundle) -> ResNet20:
    """Pretrain a ResNet-20 with Barlow Twins on the training split's non-validation images."""
    s = cfg.method_settings
    return pretrain_views(
        ctx,
        info,
        cfg,
        bundle,
        lambda: BarlowModel(ResNet20(), s.proj_hidden_dim, s.proj_out_dim, s.lambd),
        SimCLRAugment.from_config(s),
    )
