"""Contrastive losses."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """SimCLR's NT-Xent loss for N positive pairs (row i of `z1` with row i of `z2`).

    For each of the 2N anchors, the cross-entropy of picking its positive among the other
    2N - 1 projections by cosine similarity / `temperature` (the anchor itself is excluded from
    the denominator); the mean over all 2N anchors. Computed in float32 in matrix form.
    """
    n, dev = z1.shape[0], z1.device
    with torch.autocast(device_type=dev.type, enabled=False):  # similarities in fp32 under AMP
        z = F.normalize(torch.cat([z1, z2]).float(), dim=1)
        logits = z @ z.T / temperature  # (2N, 2N) cosine similarities / tau
        self_mask = torch.eye(2 * n, dtype=torch.bool, device=dev)
        logits = logits.masked_fill(self_mask, float("-inf"))
        positive = torch.arange(2 * n, device=dev).add_(n).remainder_(2 * n)  # i <-> i + N
        return F.cross_entropy(logits, positive)
