"""VICReg pretraining (Bardes et al. 2022): encoder and 3-layer projector on both views;
invariance, variance and covariance terms with their weights."""

from __future__ import annotations

import torch
from torch import nn

from ssltui.core.config import RunConfig
from ssltui.core.events import PhaseRef
from ssltui.core.methods.vicreg import METHOD as DECLARED
from ssltui.trainer.augment import SimCLRAugment
from ssltui.trainer.data.bundle import DataBundle
from ssltui.trainer.loop import RunContext
from ssltui.trainer.models.resnet import ResNet20
from ssltui.trainer.ssl_losses import vicreg_loss
from ssltui.trainer.ssl_parts import TermMeter, mlp
from ssltui.trainer.twoview import pretrain_views

TERMS = DECLARED.loss_terms  # invariance, variance, covariance


class VICRegModel(nn.Module):
    def __init__(self, encoder: ResNet20, proj_hidden_dim: int, proj_out_dim: int, weights: tuple[float, float, float]):
        super().__init__()
        self.encoder = encoder
        self.projector = mlp(encoder.feature_dim, proj_hidden_dim, proj_out_dim, layers=3)
        self.weights = weights
        self.terms = TermMeter(TERMS)

    def views_loss(self, views: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.projector(self.encoder(views))
        z1, z2 = z.chunk(2)
        total, terms = vicreg_loss(z1, z2, *self.weights)
        self.terms.add([w * terms[t] for w, t in zip(self.weights, TERMS)])
        return total, z


def pretrain(ctx: RunContext, info: PhaseRef, cfg: RunConfig, bundle: DataBundle) -> ResNet20:
    """Pretrain a ResNet-20 with VICReg on the training split's non-validation images."""
    s = cfg.method_settings
    weights = (s.invariance_weight, s.variance_weight, s.covariance_weight)
    return pretrain_views(
        ctx,
        info,
        cfg,
        bundle,
        lambda: VICRegModel(ResNet20(), s.proj_hidden_dim, s.proj_out_dim, weights),
        SimCLRAugment.from_config(s),
    )
