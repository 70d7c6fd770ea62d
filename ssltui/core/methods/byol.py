"""BYOL (Grill et al. 2020): an online network with a predictor regresses a momentum target's
projection of the other view; no negatives."""

from __future__ import annotations

from pydantic import Field

from ssltui.core.methods._views import ViewSettings
from ssltui.core.registry import Method


class BYOLConfig(ViewSettings):
    # Augmentation: BYOL's colour jitter (brightness 0.4, contrast 0.4, saturation 0.2, hue 0.1,
    # p 0.8), grayscale 0.2, crops of 8-100% (solo-learn's CIFAR byol.yaml; blur off on CIFAR).
    saturation: float = Field(0.2, ge=0.0, le=2.0, description="saturation jitter (BYOL: 0.2)")
    pred_hidden_dim: int = Field(512, ge=1, description="predictor hidden width")
    ema_rate: float = Field(
        0.99,
        ge=0.0,
        le=1.0,
        description=("target EMA rate tau at the start, raised to 1 by a cosine schedule over the steps"),
    )


METHOD = Method(
    name="byol",
    title="BYOL",
    summary="online network predicts a momentum target's projection; no negatives",
    settings=BYOLConfig,
    evaluations=("linear", "semi", "knn"),
    default_evaluations=("linear",),
    reads=("pretrain", "byol", "knn"),
    order=30,
)
