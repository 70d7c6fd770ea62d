"""How long a training phase runs: its epochs, steps per epoch and total steps, from its settings
and the number of items it trains on. One function, read by the training loop and by the dry run,
so what the dry run prints is what trains; it also names the setting that decided the length
(`epochs`, or `min_steps` stretching them on a small labelled subset)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from ssltui.core.settings import TrainConfig


@dataclass(frozen=True)
class PhaseLength:
    epochs: int
    steps_per_epoch: int
    batch_size: int
    decided_by: str  # "epochs" or "min_steps"

    @property
    def steps(self) -> int:
        return self.epochs * self.steps_per_epoch


def phase_length(cfg: TrainConfig, n_items: int) -> PhaseLength:
    """The epochs and steps a phase with settings `cfg` trains on `n_items` items: the last partial
    batch is dropped, and `min_steps` stretches the epochs when they give fewer steps."""
    batch_size = min(cfg.batch_size, n_items)
    steps_per_epoch = n_items // batch_size
    stretched = math.ceil(cfg.min_steps / steps_per_epoch)
    epochs = max(cfg.epochs, stretched)
    return PhaseLength(epochs, steps_per_epoch, batch_size, "min_steps" if stretched > cfg.epochs else "epochs")


def split_counts(class_counts: Sequence[int], val_fraction: float) -> list[int]:
    """Training images per class left outside the validation split (data/splits.py's rule)."""
    return [n - int(round(n * val_fraction)) for n in class_counts]


def subset_size(class_counts: Sequence[int], val_fraction: float, fraction: float) -> int:
    """Images in a label subset of `fraction` (data/splits.py's `label_subset` rule)."""
    if fraction == 1.0:
        return sum(split_counts(class_counts, val_fraction))
    return sum(int(round(fraction * n)) for n in class_counts)
