"""MoCo v2 (He et al. 2020; Chen et al. 2020): a query encoder against a momentum key encoder
and a queue of earlier keys as negatives."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from ssltui.core.errors import ConfigError
from ssltui.core.methods._views import ViewSettings
from ssltui.core.registry import Method


class MoCoConfig(ViewSettings):
    # MoCo v2's augmentation: crops of 20-100%, colour jitter (0.4, 0.4, 0.4, 0.1) p 0.8,
    # grayscale 0.2 (blur off on 32x32 images, as in MoCo's CIFAR-10 demo). Queue, temperature,
    # momentum and BatchNorm splits: facebookresearch/moco's CIFAR-10 demo (colab).
    crop_min_scale: float = Field(0.2, gt=0.0, le=1.0, description="RandomResizedCrop smallest area fraction")
    queue_size: int = Field(4096, ge=1, description="negatives kept in the queue (K)")
    temperature: float = Field(0.1, gt=0.0, description="InfoNCE temperature")
    ema_rate: float = Field(0.99, ge=0.0, le=1.0, description="key encoder momentum m (constant)")
    bn_splits: int = Field(
        8,
        ge=1,
        description=("the key encoder's batch runs shuffled in this many BatchNorm groups (shuffled BN on one device)"),
    )

    def check(self, cfg: Any) -> None:
        if self.bn_splits > cfg.pretrain.batch_size:
            raise ConfigError(
                f"moco.bn_splits: {self.bn_splits} is more than a batch (pretrain.batch_size={cfg.pretrain.batch_size})"
            )
        if self.queue_size < cfg.pretrain.batch_size:
            raise ConfigError(
                f"moco.queue_size: {self.queue_size} is smaller than a batch "
                f"(pretrain.batch_size={cfg.pretrain.batch_size})"
            )

    def check_data(self, images: int, cfg: Any) -> None:
        if self.queue_size > images:
            raise ConfigError(
                f"moco.queue_size: {self.queue_size} is larger than the data ({images} pretraining images)"
            )


METHOD = Method(
    name="moco",
    title="MoCo v2",
    summary="contrastive against a momentum encoder's queue of negatives",
    settings=MoCoConfig,
    evaluations=("linear", "semi", "knn"),
    default_evaluations=("linear",),
    reads=("pretrain", "moco", "knn"),
    order=50,
)
