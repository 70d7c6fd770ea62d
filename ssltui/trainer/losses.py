"""Training losses: NT-Xent (SimCLR) and a classifier's cross-entropy on augmented views."""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
import torch.nn.functional as F

from ssltui.trainer.augment import crop_flip_rotations, cutout, normalizer


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """SimCLR's NT-Xent loss for N positive pairs (row i of `z1` with row i of `z2`).

    For each of the 2N anchors, the cross-entropy of picking its positive among the other
    2N - 1 projections by cosine similarity / `temperature` (the anchor itself is excluded from
    the denominator); the mean over all 2N anchors. Computed in float32 in matrix form.
    """
    self_mask, positive = _pairs(z1.shape[0], z1.device)
    with torch.autocast(device_type=z1.device.type, enabled=False):  # similarities in fp32 under AMP
        z = F.normalize(torch.cat([z1, z2]).float(), dim=1)
        logits = z @ z.T / temperature  # (2N, 2N) cosine similarities / tau
        return F.cross_entropy(logits.masked_fill(self_mask, float("-inf")), positive)


@functools.lru_cache(maxsize=16)
def _pairs(n: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """NT-Xent's constants for N pairs, made once (not a few kernels every step): the (2N, 2N)
    diagonal that masks each anchor itself, and each anchor's positive (i <-> i + N)."""
    return (
        torch.eye(2 * n, dtype=torch.bool, device=device),
        torch.arange(2 * n, device=device).add_(n).remainder_(2 * n),
    )


def classifier_loss(
    forward: Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    stats,
    dev,
    gen: torch.Generator,
    targets: Callable[[torch.Tensor], torch.Tensor],
    crop_flip: bool,
    rotations: int = 1,
    cutout_size: int = 0,
    label_smoothing: float = 0.0,
) -> Callable[[torch.Tensor], torch.Tensor]:
    """The cross-entropy of `forward` on views of batch positions into `images` (uint8 on the
    device): random crop (padding 4) and flip when `crop_flip`, each image in `rotations`
    rotations, normalised by `stats` (mean/std); `targets(pos)` gives the labels. The images
    are zero-padded once here, so a step's views are one gather and one multiply-add. With
    `cutout_size` a square of the normalised views is zeroed (the mean colour)."""
    padding = 4 if crop_flip else 0
    source = F.pad(images, (padding,) * 4) if padding else images
    normalize = normalizer(stats.mean, stats.std, 1.0 / 255.0)

    def loss(pos: torch.Tensor) -> torch.Tensor:
        views = crop_flip_rotations(source, pos, gen, padding, crop_flip, rotations, dev.channels_last)
        with dev.autocast():
            views = normalize(views)
            if cutout_size:
                views = cutout(views, cutout_size, gen)
            logits = forward(views)
        return F.cross_entropy(logits.float(), targets(pos), label_smoothing=label_smoothing)

    return loss
