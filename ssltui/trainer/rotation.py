"""Image rotations by multiples of 90 degrees as batched tensor ops (the RotNet pretext task).

Convention: label k means the image was rotated by k * 90 degrees counter-clockwise, as
`torch.rot90(x, k, dims=(-2, -1))`, `numpy.rot90` and PIL's `Image.rotate(90 * k)` do.
Rotations of square images are exact permutations of pixels, so they work on any dtype
(rotating uint8 before `to_float` moves a quarter of the bytes).
"""

from __future__ import annotations

import torch

NUM_ROTATIONS = 4


def rotate(x: torch.Tensor, k: int) -> torch.Tensor:
    """Rotate a batch (..., H, W) by k * 90 degrees counter-clockwise."""
    return torch.rot90(x, k % NUM_ROTATIONS, dims=(-2, -1))


def rotation_labels(n: int, device: torch.device | str | None = None) -> torch.Tensor:
    """Labels of `all_rotations` of n images: n zeros, n ones, n twos, n threes (int64)."""
    return torch.arange(NUM_ROTATIONS, device=device).repeat_interleave(n)


def all_rotations(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Every image of a batch (N, C, H, W) in all four rotations: (4N, C, H, W) and labels (4N,).

    The output is grouped by rotation (rows k*N .. k*N+N-1 are the batch rotated by k*90),
    so the whole thing is four `rot90` calls and one concatenation, whatever N is.
    """
    if x.ndim != 4 or x.shape[-1] != x.shape[-2]:
        raise ValueError(f"all_rotations needs square images (N, C, H, H), got {tuple(x.shape)}")
    out = torch.cat([rotate(x, k) for k in range(NUM_ROTATIONS)])
    return out, rotation_labels(len(x), x.device)
