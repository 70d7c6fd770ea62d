"""Weighted kNN classification on the frozen encoder's features; its settings also drive the
kNN monitor of pretraining."""

from __future__ import annotations

from pydantic import Field

from ssltui.core.registry import Evaluation
from ssltui.core.settings import Section


class KnnConfig(Section):
    k: int = Field(200, ge=1, description="neighbours")
    temperature: float = Field(0.1, gt=0.0, description="vote temperature")
    every_epochs: int = Field(10, ge=0, description="kNN monitor on the validation split every N epochs (0: off)")
    max_bank: int = Field(10000, ge=1, description="most training images in the kNN feature bank")
    guard_min_steps: int = Field(
        250,
        ge=1,
        description="SimCLR guard rail: judge the encoder at 20% of the "
        "epochs only when at least this many steps precede it",
    )


EVALUATION = Evaluation(
    name="knn", title="kNN", summary="weighted k nearest neighbours on frozen features", settings=KnnConfig, order=30
)
