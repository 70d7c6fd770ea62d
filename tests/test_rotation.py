"""Batched rotations for RotNet: exact, labelled by the rotation applied, counter-clockwise."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from ssltui.trainer.rotation import all_rotations, rotate, rotation_labels


def _images(dtype: torch.dtype, n: int = 5) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (n, 3, 8, 8), generator=g, dtype=torch.uint8)
    return x if dtype == torch.uint8 else x.to(dtype) / 255.0


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32, torch.bfloat16])
def test_four_quarter_turns_are_the_identity(dtype):
    x = _images(dtype)
    y = x
    for _ in range(4):
        y = rotate(y, 1)
    assert y.dtype == x.dtype and torch.equal(y, x)
    # and no smaller number of quarter turns is (random images have no symmetry)
    for k in (1, 2, 3):
        assert not torch.equal(rotate(x, k), x)


def test_counter_clockwise_on_a_hand_made_image():
    x = torch.tensor([[1, 2], [3, 4]]).view(1, 1, 2, 2)
    # 90 degrees counter-clockwise: the right column becomes the top row.
    assert rotate(x, 1).view(2, 2).tolist() == [[2, 4], [1, 3]]
    assert rotate(x, 2).view(2, 2).tolist() == [[4, 3], [2, 1]]
    assert rotate(x, 3).view(2, 2).tolist() == [[3, 1], [4, 2]]


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_all_rotations_match_rot90_per_image_and_labels(dtype):
    x = _images(dtype, n=6)
    out, labels = all_rotations(x)
    assert out.shape == (24, 3, 8, 8) and out.dtype == dtype
    assert labels.dtype == torch.int64 and labels.tolist() == [k for k in range(4) for _ in range(6)]
    assert torch.equal(labels, rotation_labels(6))
    for row in range(len(out)):
        k, i = int(labels[row]), row % 6
        assert torch.equal(out[row], torch.rot90(x[i], k, dims=(1, 2)))


def test_rotation_direction_matches_pil_and_numpy():
    x = _images(torch.uint8, n=2)
    out, labels = all_rotations(x)
    img = x[1].permute(1, 2, 0).numpy()  # HWC for PIL/numpy
    pil_ops = {1: Image.Transpose.ROTATE_90, 2: Image.Transpose.ROTATE_180, 3: Image.Transpose.ROTATE_270}
    for k in range(4):
        ours = out[k * 2 + 1].permute(1, 2, 0).numpy()
        assert int(labels[k * 2 + 1]) == k
        assert np.array_equal(ours, np.rot90(img, k, axes=(0, 1)))
        pil = Image.fromarray(img)
        if k:
            pil = pil.transpose(pil_ops[k])  # PIL documents ROTATE_90 as counter-clockwise
            assert np.array_equal(ours, np.asarray(Image.fromarray(img).rotate(90 * k)))
        assert np.array_equal(ours, np.asarray(pil))


def test_all_rotations_rejects_non_square_batches():
    with pytest.raises(ValueError):
        all_rotations(torch.zeros(2, 3, 8, 6))
