"""Batched augmentation as tensor code on the training device, one random draw per image.

Input batches are uint8 (N, 3, H, W) on the device; outputs are float. All randomness comes
from an explicit torch.Generator so a checkpoint can restore it exactly.
"""

from __future__ import annotations

import torch


def to_float(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """uint8 (N, 3, H, W) -> normalised float32."""
    return (x.float().div_(255.0) - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)


def random_crop_flip(x: torch.Tensor, generator: torch.Generator, padding: int = 4,
                     flip: bool = True) -> torch.Tensor:
    """Per-image random crop from a zero-padded image plus horizontal flip (p 0.5), in one gather.

    Works on any dtype; returns the same dtype and shape as `x`.
    """
    n, c, h, w = x.shape
    dev = x.device
    padded = torch.nn.functional.pad(x, (padding, padding, padding, padding))
    oy = torch.randint(0, 2 * padding + 1, (n,), device=dev, generator=generator)
    ox = torch.randint(0, 2 * padding + 1, (n,), device=dev, generator=generator)
    rows = oy[:, None] + torch.arange(h, device=dev)[None, :]  # (n, h)
    cols = torch.arange(w, device=dev)[None, :].expand(n, w)
    if flip:
        do_flip = torch.rand(n, device=dev, generator=generator) < 0.5
        cols = torch.where(do_flip[:, None], cols.flip(1), cols)
    cols = ox[:, None] + cols  # (n, w)
    batch = torch.arange(n, device=dev)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]  # (n, h, w, c)
    return out.permute(0, 3, 1, 2).contiguous()
