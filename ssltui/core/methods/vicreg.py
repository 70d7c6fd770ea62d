"""VICReg (Bardes et al. 2022): invariance between views, variance kept above a margin and
covariance pushed to zero in each branch."""

from __future__ import annotations

from pydantic import Field

from ssltui.core.methods._views import ViewSettings
from ssltui.core.registry import Method


class VICRegConfig(ViewSettings):
    # Augmentation: brightness 0.4, contrast 0.4, saturation 0.2, hue 0.1, crops of 20-100%
    # (solo-learn's CIFAR vicreg.yaml); a 3-layer projector; the paper's weights 25 / 25 / 1.
    crop_min_scale: float = Field(0.2, gt=0.0, le=1.0, description="RandomResizedCrop smallest area fraction")
    saturation: float = Field(0.2, ge=0.0, le=2.0, description="saturation jitter (VICReg: 0.2)")
    proj_out_dim: int = Field(512, ge=1, description="projector output width (the embedding the loss reads)")
    invariance_weight: float = Field(25.0, ge=0.0, description="lambda: weight of the invariance term")
    variance_weight: float = Field(25.0, ge=0.0, description="mu: weight of the variance term")
    covariance_weight: float = Field(1.0, ge=0.0, description="nu: weight of the covariance term")


METHOD = Method(
    name="vicreg",
    title="VICReg",
    summary="invariance, variance and covariance terms on two views' embeddings",
    settings=VICRegConfig,
    evaluations=("linear", "semi", "knn"),
    default_evaluations=("linear",),
    reads=("pretrain", "vicreg", "knn"),
    order=70,
    loss_terms=("invariance", "variance", "covariance"),
)
