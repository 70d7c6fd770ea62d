"""RotNet (Gidaris et al. 2018): predict which of four rotations an image was given."""

from __future__ import annotations

from pydantic import Field

from ssltui.core.registry import Method
from ssltui.core.settings import Section


class RotNetConfig(Section):
    crop_flip: bool = Field(True, description="random crop (padding 4) and flip before rotating")


METHOD = Method(
    name="rotnet",
    title="RotNet",
    summary="pretext task: classify the rotation (0, 90, 180, 270 degrees)",
    settings=RotNetConfig,
    evaluations=("linear", "semi", "knn"),
    default_evaluations=("linear", "semi"),
    reads=("pretrain", "rotnet"),
    order=20,
    short="rot",
)
