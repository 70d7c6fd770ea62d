"""BYOL pretraining (Grill et al. 2020): the online encoder, projector and predictor regress
the momentum target's projection of the other view (normalised MSE, both ways round).

The target (encoder and projector) follows the online weights by an EMA whose rate rises from
`ema_rate` to 1 on BYOL's cosine schedule. The update is made at the start of each step from
the weights the previous step left (the same sequence as BYOL's update after each step), in
place on the device, so it is part of a captured CUDA-graph step; the target, its step counter
and the predictor are in the phase checkpoint with the rest of the model.
"""

from __future__ import annotations

import torch
from torch import nn

from ssltui.core.config import RunConfig
from ssltui.core.events import PhaseRef
from ssltui.trainer.augment import SimCLRAugment
from ssltui.trainer.data.bundle import DataBundle
from ssltui.trainer.loop import RunContext
from ssltui.trainer.models.resnet import ResNet20
from ssltui.trainer.ssl_losses import byol_loss
from ssltui.trainer.ssl_parts import MomentumTarget, mlp
from ssltui.trainer.twoview import pretrain_views


class BYOLModel(nn.Module):
    """Online network (encoder, projector), predictor, and the momentum target."""

    def __init__(
        self, encoder: ResNet20, proj_hidden_dim: int, proj_out_dim: int, pred_hidden_dim: int, ema_rate: float
    ):
        super().__init__()
        self.online = nn.Sequential(encoder, mlp(encoder.feature_dim, proj_hidden_dim, proj_out_dim))
        self.predictor = mlp(proj_out_dim, pred_hidden_dim, proj_out_dim)
        self.target = MomentumTarget(self.online, ema_rate)

    @property
    def encoder(self) -> ResNet20:
        return self.online[0]

    def set_total_steps(self, total_steps: int) -> None:
        self.target.set_total_steps(total_steps)

    def views_loss(self, views: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.target.update(self.online)
        z = self.online(views)
        p1, p2 = self.predictor(z).chunk(2)
        t1, t2 = self.target(views).chunk(2)
        return byol_loss(p1, p2, t1, t2), z


def pretrain(ctx: RunContext, info: PhaseRef, cfg: RunConfig, bundle: DataBundle) -> ResNet20:
    """Pretrain a ResNet-20 with BYOL on the training split's non-validation images."""
    s = cfg.method_settings
    return pretrain_views(
        ctx,
        info,
        cfg,
        bundle,
        lambda: BYOLModel(ResNet20(), s.proj_hidden_dim, s.proj_out_dim, s.pred_hidden_dim, s.ema_rate),
        SimCLRAugment.from_config(s),
    )
