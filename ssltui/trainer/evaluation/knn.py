"""Weighted k-nearest-neighbour classification on L2-normalised features (Wu et al. 2018)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


@torch.no_grad()
def knn_predict(query: torch.Tensor, bank: torch.Tensor, bank_labels: torch.Tensor, num_classes: int,
                k: int = 200, temperature: float = 0.1, chunk: int = 1024) -> torch.Tensor:
    """Class predictions for `query` by cosine-similarity votes of the k nearest bank items,
    each weighted by exp(similarity / temperature)."""
    q = F.normalize(query.float(), dim=1)
    b = F.normalize(bank.float(), dim=1)
    k = min(k, len(b))
    preds = []
    for i in range(0, len(q), chunk):
        sim = q[i:i + chunk] @ b.T  # (c, M)
        top_sim, top_idx = sim.topk(k, dim=1)
        weights = (top_sim / temperature).exp()
        votes = torch.zeros(len(sim), num_classes, device=q.device)
        votes.scatter_add_(1, bank_labels[top_idx], weights)
        preds.append(votes.argmax(1))
    return torch.cat(preds) if preds else torch.zeros(0, dtype=torch.long, device=q.device)


def knn_accuracy(query: torch.Tensor, query_labels: torch.Tensor, bank: torch.Tensor,
                 bank_labels: torch.Tensor, num_classes: int, k: int = 200, temperature: float = 0.1) -> float:
    if len(query) == 0:
        return float("nan")
    pred = knn_predict(query, bank, bank_labels, num_classes, k, temperature)
    return float((pred == query_labels).float().mean())
