"""The losses of the two-view self-supervised methods, each as its paper writes it.

Every loss takes the projections (and predictions) of both views of a batch and returns the
scalar to minimise; the ones with several weighted parts also return them (`Terms`) for the
log. All are computed in float32 (under autocast too): they are reductions over the batch
and the feature dimension, where bf16 loses the small differences they measure. What a
method stops the gradient of is detached here, so no caller can forget it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

Terms = dict[str, torch.Tensor]


def _fp32(*xs: torch.Tensor) -> list[torch.Tensor]:
    """At least float32 (float64 stays float64: the reference tests compare in double)."""
    return [x if x.dtype == torch.float64 else x.float() for x in xs]


def byol_loss(p1: torch.Tensor, p2: torch.Tensor, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """BYOL (Grill et al. 2020, eq. 2): the mean squared error of the L2-normalised online
    prediction of one view and target projection of the other, 2 - 2 cos(p, z'), symmetrised
    (L + L~, each a mean over the batch). The target projections `z1`, `z2` get no gradient."""
    with torch.autocast(device_type=p1.device.type, enabled=False):
        p1, p2, z1, z2 = _fp32(p1, p2, z1.detach(), z2.detach())
        one = 2 - 2 * F.cosine_similarity(p1, z2, dim=1)
        two = 2 - 2 * F.cosine_similarity(p2, z1, dim=1)
        return (one + two).mean()


def simsiam_loss(
    p1: torch.Tensor, p2: torch.Tensor, z1: torch.Tensor, z2: torch.Tensor, stop_gradient: bool = True
) -> torch.Tensor:
    """SimSiam (Chen & He 2021, eq. 3-4): D(p1, sg(z2)) / 2 + D(p2, sg(z1)) / 2 with D the
    negative cosine similarity averaged over the batch. `stop_gradient=False` lets the gradient
    through the projections: the setting the paper shows collapses (for tests of the guard)."""
    with torch.autocast(device_type=p1.device.type, enabled=False):
        if stop_gradient:
            z1, z2 = z1.detach(), z2.detach()
        p1, p2, z1, z2 = _fp32(p1, p2, z1, z2)
        return -(F.cosine_similarity(p1, z2, dim=1).mean() + F.cosine_similarity(p2, z1, dim=1).mean()) / 2


def moco_loss(q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor, temperature: float) -> torch.Tensor:
    """MoCo (He et al. 2020, eq. 1; v2: Chen et al. 2020): InfoNCE of each query against its
    key (the positive) and the queue's keys (the negatives), cosine similarities / temperature,
    the positive at logit 0. Keys and queue get no gradient; `queue` is (K, d), L2-normalised."""
    with torch.autocast(device_type=q.device.type, enabled=False):
        q, k, queue = _fp32(q, k.detach(), queue.detach())
        q, k = F.normalize(q, dim=1), F.normalize(k, dim=1)
        positive = (q * k).sum(1, keepdim=True)
        negative = q @ queue.T
        logits = torch.cat([positive, negative], dim=1) / temperature
        target = torch.zeros(len(q), dtype=torch.long, device=q.device)
        return F.cross_entropy(logits, target)


def barlow_twins_loss(z1: torch.Tensor, z2: torch.Tensor, lambd: float) -> torch.Tensor:
    """Barlow Twins (Zbontar et al. 2021, eq. 1-2): each projection standardised along the batch
    (as its code's affine-free BatchNorm: biased variance, eps 1e-5), C = z1^T z2 / N, and
    sum_i (1 - C_ii)^2 + lambda * sum_{i != j} C_ij^2."""
    on, off = barlow_twins_parts(z1, z2)
    return on + lambd * off


def barlow_twins_parts(z1: torch.Tensor, z2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Barlow Twins' two sums, unweighted: the invariance term sum_i (1 - C_ii)^2 and the
    redundancy-reduction term sum_{i != j} C_ij^2."""
    with torch.autocast(device_type=z1.device.type, enabled=False):
        z1, z2 = _fp32(z1, z2)
        n = z1.shape[0]
        a = F.batch_norm(z1, None, None, training=True, eps=1e-5)
        b = F.batch_norm(z2, None, None, training=True, eps=1e-5)
        c = a.T @ b / n
        diagonal = torch.diagonal(c)
        on = (1 - diagonal).pow(2).sum()
        off = c.pow(2).sum() - diagonal.pow(2).sum()
        return on, off


def vicreg_loss(
    z1: torch.Tensor,
    z2: torch.Tensor,
    invariance_weight: float,
    variance_weight: float,
    covariance_weight: float,
    eps: float = 1e-4,
) -> tuple[torch.Tensor, Terms]:
    """VICReg (Bardes et al. 2022, eq. 1-6): lambda s(Z, Z') + mu [v(Z) + v(Z')] + nu [c(Z) + c(Z')].

    s: the mean squared distance of the pairs (over the batch and the d dimensions, as its code);
    v(Z) = 1/d sum_j max(0, 1 - sqrt(Var(z_j) + eps)) with the unbiased variance;
    c(Z) = 1/d sum_{i != j} C(Z)_ij^2 with C the unbiased covariance. Returns the weighted sum
    and the three unweighted terms (variance and covariance summed over both branches)."""
    with torch.autocast(device_type=z1.device.type, enabled=False):
        z1, z2 = _fp32(z1, z2)
        invariance = F.mse_loss(z1, z2)
        variance = _variance_term(z1, eps) + _variance_term(z2, eps)
        covariance = _covariance_term(z1) + _covariance_term(z2)
        total = invariance_weight * invariance + variance_weight * variance + covariance_weight * covariance
        return total, {
            "invariance": invariance.detach(),
            "variance": variance.detach(),
            "covariance": covariance.detach(),
        }


def _variance_term(z: torch.Tensor, eps: float) -> torch.Tensor:
    return F.relu(1 - torch.sqrt(z.var(dim=0) + eps)).mean()


def _covariance_term(z: torch.Tensor) -> torch.Tensor:
    n, d = z.shape
    centred = z - z.mean(dim=0)
    cov = centred.T @ centred / (n - 1)
    return (cov.pow(2).sum() - torch.diagonal(cov).pow(2).sum()) / d
