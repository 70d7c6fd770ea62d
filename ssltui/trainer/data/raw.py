"""RawData: a decoded data set as uint8 arrays, before it moves onto the training device."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

IMAGE_SHAPE = (32, 32, 3)


@dataclass
class RawData:
    """A decoded data set: uint8 NHWC images and int64 labels."""

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    classes: list[str]
    source: str
    decode_seconds: float = 0.0  # time spent decoding (0 when read from the cache)
    load_seconds: float = 0.0
    from_cache: bool = False
    notes: list[str] = field(default_factory=list)  # what the load logged (cache stale, not saved...)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def problem(self) -> str | None:
        """Why these arrays cannot be a data set (None when they can): a damaged cache must never
        reach training as images of the wrong shape or labels outside the classes."""
        if (
            not isinstance(self.classes, list)
            or len(self.classes) < 2
            or not all(isinstance(c, str) for c in self.classes)
        ):
            return "fewer than 2 class names"
        for split, x, y in (("train", self.train_x, self.train_y), ("test", self.test_x, self.test_y)):
            if x.dtype != np.uint8 or x.ndim != 4 or x.shape[1:] != IMAGE_SHAPE or len(x) == 0:
                return f"{split} images are {x.dtype} {x.shape}, not uint8 (N, 32, 32, 3)"
            if y.dtype != np.int64 or y.shape != (len(x),):
                return f"{split} labels are {y.dtype} {y.shape} for {len(x)} images"
            if y.min() < 0 or y.max() >= len(self.classes):
                return f"{split} labels outside 0..{len(self.classes) - 1}"
        return None
