"""Semi-supervised fine-tuning: the pretrained encoder (first stages frozen) and a classifier trained on the labels."""

from __future__ import annotations

from pydantic import Field

from ssltui.core.registry import Evaluation
from ssltui.core.settings import ClassifierConfig


class SemiConfig(ClassifierConfig):
    """Semi-supervised fine-tuning of a pretrained encoder: the paper freezes two stages."""

    frozen_stages: int = Field(2, ge=0, le=3, description="stem and first N stages frozen (weights and BN statistics)")


EVALUATION = Evaluation(
    name="semi", title="Semi-supervised", summary="fine-tune the encoder on the labels", settings=SemiConfig, order=20
)
