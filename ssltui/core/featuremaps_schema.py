"""featuremaps.json as one declared model, shared by its writer (trainer/featuremaps.py) and
every reader (`ssltui maps`, the results screen): a hand-edited or foreign file is refused with
its first problem instead of failing deep inside the drawing code. Pure Python (no torch).

{"images": [{"index", "class", "rgb": H x W x 3 ints 0-255}],
 "models": [{"name", "method", "seed", "maps": [per image: [per stage:
             {"stage", "channels", "values": channels x h x w ints 0-255}]]}]}
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from ssltui.core.errors import validation_problem

Byte = Annotated[int, Field(ge=0, le=255)]


def _rectangular(grid: list[list[int]]) -> list[list[int]]:
    """A thumbnail is drawn row by row, column by column: rows must exist and agree in length."""
    if not grid or not grid[0] or any(len(row) != len(grid[0]) for row in grid):
        raise ValueError("must be a non-empty grid whose rows have the same length")
    return grid


Grid = Annotated[list[list[Byte]], AfterValidator(_rectangular)]
RGB = Annotated[list[list[tuple[Byte, Byte, Byte]]], AfterValidator(_rectangular)]


class MapImage(BaseModel):
    """One test image the maps were computed on."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    index: int | None = None
    class_name: str = Field("", alias="class")
    rgb: RGB


class StageMaps(BaseModel):
    """The most active channels at the end of one ResNet stage."""

    model_config = ConfigDict(extra="allow")

    stage: int = Field(ge=1)
    channels: list[int] = []
    values: list[Grid] = Field(min_length=1)


class ModelMaps(BaseModel):
    """One encoder's maps: per image, per stage."""

    model_config = ConfigDict(extra="allow")

    name: str = "?"
    method: str = ""
    seed: int | None = None
    maps: list[list[StageMaps]] = []


class FeatureMaps(BaseModel):
    model_config = ConfigDict(extra="allow")

    images: list[MapImage] = []
    models: list[ModelMaps] = []

    def drawable(self) -> bool:
        """Something to draw: at least one image and one model."""
        return bool(self.images and self.models)


class FeatureMapsDamaged(ValueError):
    """featuremaps.json exists but cannot be drawn; the message says why, in one line."""


def parse_featuremaps(data: bytes | str) -> FeatureMaps:
    """Validate featuremaps.json's text; FeatureMapsDamaged with the first problem otherwise."""
    try:
        return FeatureMaps.model_validate_json(data)
    except ValidationError as exc:
        raise FeatureMapsDamaged(validation_problem(exc)) from None


def as_featuremaps(doc: FeatureMaps | dict[str, Any]) -> FeatureMaps:
    """A validated document from either a model or a plain dict (tests, older callers)."""
    if isinstance(doc, FeatureMaps):
        return doc
    try:
        return FeatureMaps.model_validate(doc)
    except ValidationError as exc:
        raise FeatureMapsDamaged(validation_problem(exc)) from None
