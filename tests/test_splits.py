"""Validation hold-out and stratified label subsets: exact counts, determinism, no overlap."""

from __future__ import annotations

import numpy as np
import pytest

from ssltui.core.errors import ConfigError
from ssltui.trainer.data.splits import label_subset, validation_split

# CIFAR-10's training split: 10 classes x 5000 images, in a shuffled order.
LABELS = np.random.default_rng(7).permutation(np.repeat(np.arange(10), 5000))


def test_validation_split_is_stratified_fixed_and_disjoint():
    train, val = validation_split(LABELS, 0.1, seed=0)
    assert len(val) == 5000 and len(train) == 45000
    assert np.bincount(LABELS[val]).tolist() == [500] * 10
    assert not set(train) & set(val)
    again_train, again_val = validation_split(LABELS, 0.1, seed=0)
    assert np.array_equal(val, again_val) and np.array_equal(train, again_train)
    _, other = validation_split(LABELS, 0.1, seed=1)
    assert not np.array_equal(val, other)


@pytest.mark.parametrize("fraction, per_class", [(0.01, 50), (0.1, 500)])
def test_label_subset_counts_match_the_paper(fraction, per_class):
    train, val = validation_split(LABELS, 0.1, seed=0)
    subset = label_subset(LABELS, train, fraction, seed=0)
    assert np.bincount(LABELS[subset], minlength=10).tolist() == [per_class] * 10
    assert set(subset) <= set(train)
    assert not set(subset) & set(val)


def test_label_subsets_are_seeded_and_nested():
    train, _ = validation_split(LABELS, 0.1, seed=0)
    a = label_subset(LABELS, train, 0.01, seed=3)
    assert np.array_equal(a, label_subset(LABELS, train, 0.01, seed=3))
    assert not np.array_equal(a, label_subset(LABELS, train, 0.01, seed=4))
    big = label_subset(LABELS, train, 0.1, seed=3)
    assert set(a) <= set(big)


def test_label_subset_limits():
    train, _ = validation_split(LABELS, 0.1, seed=0)
    assert len(label_subset(LABELS, train, 1.0, seed=0)) == 45000
    with pytest.raises(ConfigError, match="only 4500 are outside the validation split"):
        label_subset(LABELS, train, 0.95, seed=0)
    with pytest.raises(ConfigError, match="gives 0 images"):
        label_subset(LABELS, train, 0.00001, seed=0)
    with pytest.raises(ConfigError, match="outside"):
        label_subset(LABELS, train, 0.0, seed=0)
