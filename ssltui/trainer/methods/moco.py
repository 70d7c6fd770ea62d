"""MoCo v2 pretraining (He et al. 2020; Chen et al. 2020): queries from one view against the
momentum key encoder's key of the other view (the positive) and a queue of earlier keys (the
negatives), InfoNCE with a temperature; an MLP head (v2).

BatchNorm on one device: with MoCo's per-GPU BatchNorm, a batch's keys share statistics that
the queue's keys (from earlier batches) do not, a cue that tells the positive from the
negatives without learning anything; MoCo breaks it with shuffled BN across GPUs. Here, as in
MoCo's own CIFAR-10 demo (SplitBatchNorm), the key encoder sees the view-2 batch in a random
order split into `bn_splits` groups, each normalised by its own statistics, and the keys are
put back in order: each key is normalised with a random subset of the batch, not with the
queries' statistics. The order is drawn from the global generator (checkpointed; the default
CUDA generator is graph-safe).

The key encoder's momentum update (constant rate, as MoCo) is made at the start of each step,
as in MoCo's code, and the keys are enqueued at its end; both are in-place device ops, so a
captured CUDA-graph step holds them, and the key encoder, the queue and its pointer are in the
phase checkpoint.
"""

from __future__ import annotations

import torch
from torch import nn

from ssltui.core.config import RunConfig
from ssltui.core.errors import ConfigError
from ssltui.core.events import PhaseRef
from ssltui.trainer.augment import SimCLRAugment
from ssltui.trainer.data.bundle import DataBundle
from ssltui.trainer.loop import RunContext
from ssltui.trainer.models.resnet import ResNet20
from ssltui.trainer.ssl_losses import moco_loss
from ssltui.trainer.ssl_parts import KeyQueue, MomentumTarget, mlp
from ssltui.trainer.twoview import pretrain_views


class MoCoModel(nn.Module):
    """Query encoder and MLP head, the momentum key encoder, the queue."""

    guards_collapse = False  # contrastive: the queue's negatives keep the queries apart

    def __init__(
        self,
        encoder: ResNet20,
        proj_hidden_dim: int,
        proj_out_dim: int,
        queue_size: int,
        temperature: float,
        ema_rate: float,
        bn_splits: int,
    ):
        super().__init__()
        self.online = nn.Sequential(encoder, mlp(encoder.feature_dim, proj_hidden_dim, proj_out_dim, hidden_bn=False))
        self.key = MomentumTarget(self.online, ema_rate, cosine=False)
        self.queue = KeyQueue(queue_size, proj_out_dim)
        self.temperature = temperature
        self.bn_splits = bn_splits

    @property
    def encoder(self) -> ResNet20:
        return self.online[0]

    @torch.no_grad()
    def keys(self, x: torch.Tensor) -> torch.Tensor:
        """The key encoder's output for `x`, BatchNorm in `bn_splits` random groups (shuffled BN)."""
        order = torch.rand(x.shape[0], device=x.device).argsort()
        shuffled = torch.cat([self.key(part) for part in x[order].tensor_split(self.bn_splits)])
        return torch.empty_like(shuffled).index_copy_(0, order, shuffled)

    def views_loss(self, views: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.key.update(self.online)
        x_q, x_k = views.chunk(2)
        q = self.online(x_q)
        k = self.keys(x_k)
        # The loss reads the queue as it was before this batch's keys go in (a copy: autograd
        # keeps what it read, and the queue changes in place below).
        loss = moco_loss(q, k, self.queue.keys.clone(), self.temperature)
        self.queue.enqueue(k)
        return loss, q


def pretrain(ctx: RunContext, info: PhaseRef, cfg: RunConfig, bundle: DataBundle) -> ResNet20:
    """Pretrain a ResNet-20 with MoCo v2 on the training split's non-validation images."""
    s = cfg.method_settings
    images = len(bundle.train_idx)
    if s.queue_size > images:  # the CLI refuses it before a run folder exists; a resumed run lands here
        raise ConfigError(
            f"{cfg.method}.queue_size: {s.queue_size} is larger than the data ({images} pretraining images)"
        )
    return pretrain_views(
        ctx,
        info,
        cfg,
        bundle,
        lambda: MoCoModel(
            ResNet20(), s.proj_hidden_dim, s.proj_out_dim, s.queue_size, s.temperature, s.ema_rate, s.bn_splits
        ),
        SimCLRAugment.from_config(s),
    )
