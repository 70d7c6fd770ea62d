"""Barlow Twins (Zbontar et al. 2021): the cross-correlation of the two views' embeddings
pushed to the identity; no negatives, no asymmetry."""

from __future__ import annotations

from pydantic import Field

from ssltui.core.methods._views import ViewSettings
from ssltui.core.registry import Method


class BarlowConfig(ViewSettings):
    # Augmentation as BYOL's (brightness 0.4, contrast 0.4, saturation 0.2, hue 0.1), crops of
    # 8-100% (solo-learn's CIFAR barlow.yaml); a 3-layer projector (the paper's).
    saturation: float = Field(0.2, ge=0.0, le=2.0, description="saturation jitter (Barlow Twins: 0.2)")
    proj_out_dim: int = Field(512, ge=1, description="projector output width (the embedding the loss reads)")
    lambd: float = Field(0.005, ge=0.0, description="weight of the off-diagonal (redundancy) term (paper: 5e-3)")


METHOD = Method(
    name="barlow",
    title="Barlow Twins",
    summary="cross-correlation of two views' embeddings to the identity",
    settings=BarlowConfig,
    evaluations=("linear", "semi", "knn"),
    default_evaluations=("linear",),
    reads=("pretrain", "barlow", "knn"),
    order=60,
    loss_terms=("invariance", "redundancy"),
)
