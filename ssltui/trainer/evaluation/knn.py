"""Weighted k-nearest-neighbour classification on L2-normalised features (Wu et al. 2018)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ssltui.core.events import PhaseStart
from ssltui.trainer.evaluation.common import EvalJob, encode


@torch.no_grad()
def knn_predict(
    query: torch.Tensor,
    bank: torch.Tensor,
    bank_labels: torch.Tensor,
    num_classes: int,
    k: int = 200,
    temperature: float = 0.1,
    chunk: int = 1024,
) -> torch.Tensor:
    """Class predictions for `query` by cosine-similarity votes of the k nearest bank items,
    each weighted by exp(similarity / temperature)."""
    q = F.normalize(query.float(), dim=1)
    b = F.normalize(bank.float(), dim=1)
    k = min(k, len(b))
    preds = []
    for i in range(0, len(q), chunk):
        sim = q[i : i + chunk] @ b.T  # (c, M)
        top_sim, top_idx = sim.topk(k, dim=1)
        weights = (top_sim / temperature).exp()
        votes = torch.zeros(len(sim), num_classes, device=q.device)
        votes.scatter_add_(1, bank_labels[top_idx], weights)
        preds.append(votes.argmax(1))
    return torch.cat(preds) if preds else torch.zeros(0, dtype=torch.long, device=q.device)


def knn_accuracy(
    query: torch.Tensor,
    query_labels: torch.Tensor,
    bank: torch.Tensor,
    bank_labels: torch.Tensor,
    num_classes: int,
    k: int = 200,
    temperature: float = 0.1,
) -> float:
    if len(query) == 0:
        return float("nan")
    pred = knn_predict(query, bank, bank_labels, num_classes, k, temperature)
    return float((pred == query_labels).float().mean())


def evaluate(job: EvalJob) -> dict:
    """kNN classification of the validation and test features against a bank of the labelled
    images' features."""
    b, cfg = job.bundle, job.settings
    job.ctx.emit(PhaseStart(**job.ref.model_dump(), epochs=1, steps_per_epoch=1))
    bank = encode(job.encoder, b.train_x[job.subset], b, job.ctx.dev)
    labels = b.train_y[job.subset]
    feats = job.features(None)

    def acc(query: torch.Tensor, query_labels: torch.Tensor) -> float:
        return knn_accuracy(query, query_labels, bank, labels, b.num_classes, cfg.k, cfg.temperature)

    return {"test_acc": acc(feats["test"], b.test_y), "val_acc": acc(feats["val"], b.train_y[b.val_idx])}
