"""The validation hold-out and stratified label subsets, both seeded and saved with the run."""

from __future__ import annotations

import numpy as np

from ssltui.core.errors import ConfigError


def validation_split(labels: np.ndarray, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train_idx, val_idx): a stratified, seeded `val_fraction` of each class held out."""
    rng = np.random.default_rng([seed, 0x5A11])
    train_idx, val_idx = [], []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        idx = idx[rng.permutation(len(idx))]
        n_val = int(round(len(idx) * val_fraction))
        if n_val < 1 or n_val >= len(idx):
            raise ConfigError(
                f"data.val_fraction: {val_fraction} leaves class {int(c)} with {n_val} validation "
                f"and {len(idx) - n_val} training images"
            )
        val_idx.append(idx[:n_val])
        train_idx.append(idx[n_val:])
    return np.sort(np.concatenate(train_idx)), np.sort(np.concatenate(val_idx))


def label_subset(labels: np.ndarray, pool: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """A stratified, seeded subset of `pool` (indices into `labels`).

    Per class it takes round(fraction * images of that class in the whole training split),
    so on CIFAR-10 1% is 50 per class and 10% is 500, as in the paper. The subsets of one seed
    are nested (1% is inside 10%). fraction=1 takes the whole pool.
    """
    if not 0.0 < fraction <= 1.0:
        raise ConfigError(f"labels: {fraction!r} is outside (0, 1]")
    rng = np.random.default_rng([seed, 0x1ABE1])
    chosen = []
    pool_labels = labels[pool]
    for c in np.unique(labels):
        cls_pool = pool[pool_labels == c]
        cls_pool = cls_pool[rng.permutation(len(cls_pool))]
        n = int(round(fraction * int((labels == c).sum())))
        if fraction == 1.0:
            n = len(cls_pool)
        if n < 1:
            raise ConfigError(f"labels: {fraction!r} gives 0 images of class {int(c)}; use a larger fraction")
        if n > len(cls_pool):
            raise ConfigError(
                f"labels: {fraction!r} asks {n} images of class {int(c)} but only {len(cls_pool)} are "
                f"outside the validation split"
            )
        chosen.append(cls_pool[:n])
    return np.sort(np.concatenate(chosen))
