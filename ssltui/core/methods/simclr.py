"""SimCLR (Chen et al. 2020): two augmented views, NT-Xent over the batch, a projection head."""

from __future__ import annotations

from pydantic import Field

from ssltui.core.registry import Method
from ssltui.core.settings import Section


class SimCLRConfig(Section):
    temperature: float = Field(0.5, gt=0.0, description="NT-Xent temperature")
    proj_hidden_dim: int = Field(512, ge=1, description="projection head hidden width")
    proj_out_dim: int = Field(128, ge=1, description="projection head output width")
    crop_min_scale: float = Field(0.08, gt=0.0, le=1.0, description="RandomResizedCrop smallest area fraction")
    jitter_strength: float = Field(0.5, ge=0.0, le=2.0, description="colour distortion strength s (SimCLR paper)")
    jitter_p: float = Field(0.8, ge=0.0, le=1.0, description="probability of colour jitter")
    grayscale_p: float = Field(0.2, ge=0.0, le=1.0, description="probability of grayscale")


METHOD = Method(
    name="simclr",
    title="SimCLR",
    summary="contrastive: two augmented views of each image, NT-Xent",
    settings=SimCLRConfig,
    evaluations=("linear", "semi", "knn"),
    default_evaluations=("linear",),
    reads=("pretrain", "simclr", "knn"),
    order=10,
)
