"""Linear evaluation: a linear layer on the frozen encoder's features."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from ssltui.core.registry import Evaluation
from ssltui.core.settings import CommaList, TrainConfig


class LinearConfig(TrainConfig):
    """Linear probe on frozen features computed once."""

    standardize: bool = Field(True, description="standardize features with the labelled subset's mean/std")
    augment_copies: int = Field(
        0,
        ge=0,
        le=64,
        description="random crop/flip copies of each labelled image whose features join the plain ones (0: plain only)",
    )
    feature_stages: CommaList[Literal[1, 2, 3]] = Field(
        [3],
        min_length=1,
        description="encoder stages whose outputs the probe reads, concatenated ([3]: the encoder's own feature)",
    )
    feature_grid: Literal[1, 2, 4] = Field(
        1,
        description="each stage's output average-pooled to grid x grid (1: global pooling, the encoder's own feature)",
    )

    @field_validator("feature_stages")
    @classmethod
    def _stages_once_in_order(cls, v: list[int]) -> list[int]:
        if len(set(v)) != len(v):
            raise ValueError("names a stage twice")
        return sorted(v)

    def items_per_image(self) -> int:
        return 1 + self.augment_copies

    def default_readout(self) -> bool:
        """Whether the probe reads the encoder's own feature (stage 3, globally pooled)."""
        return self.feature_stages == [3] and self.feature_grid == 1


EVALUATION = Evaluation(
    name="linear",
    title="Linear",
    summary="a linear probe on frozen features",
    settings=LinearConfig,
    order=10,
    short="lin",
    default_probe="plain",
)
