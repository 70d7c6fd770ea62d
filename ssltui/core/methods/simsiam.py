"""SimSiam (Chen & He 2021): a predictor and a stop-gradient on the other branch; no target
network, no negatives."""

from __future__ import annotations

from pydantic import Field

from ssltui.core.methods._views import ViewSettings
from ssltui.core.registry import Method


class SimSiamConfig(ViewSettings):
    # The SimSiam paper's CIFAR set-up (appendix D): crops of 20-100%, colour jitter (0.4, 0.4,
    # 0.4, 0.1) p 0.8, grayscale 0.2; a 2-layer projector with BatchNorm on its output and a
    # bottleneck predictor (hidden = output / 4).
    crop_min_scale: float = Field(0.2, gt=0.0, le=1.0, description="RandomResizedCrop smallest area fraction")
    proj_out_dim: int = Field(512, ge=1, description="projector output width (the embedding the loss reads)")
    pred_hidden_dim: int = Field(128, ge=1, description="predictor hidden (bottleneck) width")
    stop_gradient: bool = Field(
        True,
        description="stop the gradient through the target branch (false: the paper's Fig. 2 ablation, which collapses)",
    )


METHOD = Method(
    name="simsiam",
    title="SimSiam",
    summary="predictor and stop-gradient between two views; no target, no negatives",
    settings=SimSiamConfig,
    evaluations=("linear", "semi", "knn"),
    default_evaluations=("linear",),
    reads=("pretrain", "simsiam", "knn"),
    order=40,
)
