"""What every two-view method's settings share: the strengths of its augmentation (SimCLR's
pipeline, `trainer.augment.SimCLRAugment`) and its projector's widths. Not a method itself (the
registry skips modules whose name starts with an underscore)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from ssltui.core.settings import Section


class ViewSettings(Section):
    """Augmentation strengths and projector widths; each method's defaults are its paper's CIFAR
    choices (or solo-learn's), set in its own subclass."""

    crop_min_scale: float = Field(0.08, gt=0.0, le=1.0, description="RandomResizedCrop smallest area fraction")
    jitter_strength: float = Field(
        0.5,
        ge=0.0,
        le=2.0,
        description=(
            "colour distortion strength s: brightness and contrast 0.8 s, hue 0.2 s (SimCLR's parametrisation)"
        ),
    )
    saturation: float = Field(0.4, ge=0.0, le=2.0, description="saturation jitter (SimCLR's 0.8 s; BYOL's 0.2)")
    jitter_p: float = Field(0.8, ge=0.0, le=1.0, description="probability of colour jitter")
    grayscale_p: float = Field(0.2, ge=0.0, le=1.0, description="probability of grayscale")
    proj_hidden_dim: int = Field(512, ge=1, description="projector hidden width")
    proj_out_dim: int = Field(128, ge=1, description="projector output width (the embedding the loss reads)")

    def check(self, cfg: Any) -> None:
        """Cross-section checks against the run's configuration (none by default)."""

    def check_data(self, images: int, cfg: Any) -> None:
        """Checks against the number of pretraining images (none by default)."""
