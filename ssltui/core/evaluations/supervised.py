"""The supervised baseline: a ResNet-20 classifier trained from scratch on the labelled subset."""

from __future__ import annotations

from ssltui.core.registry import Evaluation
from ssltui.core.settings import ClassifierConfig

EVALUATION = Evaluation(
    name="supervised",
    title="Supervised",
    summary="train a classifier from scratch on the labels",
    settings=ClassifierConfig,
    order=0,
    needs_encoder=False,
)
