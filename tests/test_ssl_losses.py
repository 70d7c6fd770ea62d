"""The five methods' losses against their papers' formulas written out with loops, on fixed
inputs, and the parts each method stops the gradient of."""

from __future__ import annotations

import math

import pytest
import torch

from ssltui.trainer.ssl_losses import barlow_twins_loss, byol_loss, moco_loss, simsiam_loss, vicreg_loss

N, D, K = 6, 5, 7


def _inputs(*shapes, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(*s, generator=g, dtype=torch.float64) for s in shapes]


def _norm(v: list[float]) -> list[float]:
    length = math.sqrt(sum(x * x for x in v))
    return [x / length for x in v]


def _dot(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b))


def _rows(t: torch.Tensor) -> list[list[float]]:
    return t.tolist()


def _cos(a, b) -> float:
    return _dot(_norm(a), _norm(b))


def test_byol_is_normalised_mse_both_ways():
    p1, p2, z1, z2 = map(_rows, _inputs((N, D), (N, D), (N, D), (N, D)))
    want = 0.0
    for i in range(N):
        for p, z in ((p1[i], z2[i]), (p2[i], z1[i])):
            pn, zn = _norm(p), _norm(z)
            want += sum((a - b) ** 2 for a, b in zip(pn, zn))
    want /= N
    got = byol_loss(*map(torch.tensor, (p1, p2, z1, z2)))
    assert got.item() == pytest.approx(want, abs=1e-6)


def test_simsiam_is_symmetric_negative_cosine():
    p1, p2, z1, z2 = map(_rows, _inputs((N, D), (N, D), (N, D), (N, D), seed=1))
    d12 = -sum(_cos(p1[i], z2[i]) for i in range(N)) / N
    d21 = -sum(_cos(p2[i], z1[i]) for i in range(N)) / N
    got = simsiam_loss(*map(torch.tensor, (p1, p2, z1, z2)))
    assert got.item() == pytest.approx(d12 / 2 + d21 / 2, abs=1e-6)


def test_moco_is_infonce_against_the_queue():
    q, k, queue = _inputs((N, D), (N, D), (K, D), seed=2)
    queue = torch.nn.functional.normalize(queue, dim=1)
    tau = 0.2
    want = 0.0
    for i in range(N):
        pos = math.exp(_cos(q[i].tolist(), k[i].tolist()) / tau)
        neg = sum(math.exp(_dot(_norm(q[i].tolist()), queue[j].tolist()) / tau) for j in range(K))
        want += -math.log(pos / (pos + neg))
    got = moco_loss(q, k, queue, tau)
    assert got.item() == pytest.approx(want / N, abs=1e-6)


def test_barlow_twins_is_cross_correlation_to_identity():
    z1, z2 = _inputs((N, D), (N, D), seed=3)
    lambd = 0.005

    def standardise(z: list[list[float]]) -> list[list[float]]:
        cols = list(zip(*z))
        mean = [sum(c) / N for c in cols]
        std = [math.sqrt(sum((x - m) ** 2 for x in c) / N + 1e-5) for c, m in zip(cols, mean)]
        return [[(row[j] - mean[j]) / std[j] for j in range(D)] for row in z]

    a, b = standardise(z1.tolist()), standardise(z2.tolist())
    want = 0.0
    for i in range(D):
        for j in range(D):
            c = sum(a[n][i] * b[n][j] for n in range(N)) / N
            want += (1 - c) ** 2 if i == j else lambd * c**2
    assert barlow_twins_loss(z1, z2, lambd).item() == pytest.approx(want, abs=1e-6)


def test_vicreg_is_invariance_variance_covariance():
    z1, z2 = _inputs((N, D), (N, D), seed=4)
    z1 = z1 * 0.3  # some dimensions below the variance target of 1, so the hinge is active
    lam, mu, nu, eps = 25.0, 25.0, 1.0, 1e-4

    def v(z: list[list[float]]) -> float:
        total = 0.0
        for j in range(D):
            col = [row[j] for row in z]
            m = sum(col) / N
            var = sum((x - m) ** 2 for x in col) / (N - 1)
            total += max(0.0, 1 - math.sqrt(var + eps))
        return total / D

    def c(z: list[list[float]]) -> float:
        means = [sum(row[j] for row in z) / N for j in range(D)]
        total = 0.0
        for i in range(D):
            for j in range(D):
                if i != j:
                    cij = sum((row[i] - means[i]) * (row[j] - means[j]) for row in z) / (N - 1)
                    total += cij**2
        return total / D

    a, b = z1.tolist(), z2.tolist()
    s = sum((x - y) ** 2 for ra, rb in zip(a, b) for x, y in zip(ra, rb)) / (N * D)
    want = lam * s + mu * (v(a) + v(b)) + nu * (c(a) + c(b))
    total, terms = vicreg_loss(z1, z2, lam, mu, nu, eps)
    assert total.item() == pytest.approx(want, abs=1e-6)
    assert terms["invariance"].item() == pytest.approx(s, abs=1e-9)
    assert terms["variance"].item() == pytest.approx(v(a) + v(b), abs=1e-9)
    assert terms["covariance"].item() == pytest.approx(c(a) + c(b), abs=1e-9)
    assert terms["variance"].item() > 0.1  # the hinge was exercised


def _leaves(*shapes, seed: int = 5) -> list[torch.Tensor]:
    return [t.float().requires_grad_() for t in _inputs(*shapes, seed=seed)]


def test_byol_targets_receive_no_gradient():
    p1, p2, z1, z2 = _leaves((N, D), (N, D), (N, D), (N, D))
    byol_loss(p1, p2, z1, z2).backward()
    assert z1.grad is None and z2.grad is None
    assert p1.grad.abs().sum() > 0 and p2.grad.abs().sum() > 0


def test_simsiam_stop_gradient_and_its_absence():
    p1, p2, z1, z2 = _leaves((N, D), (N, D), (N, D), (N, D))
    simsiam_loss(p1, p2, z1, z2).backward()
    assert z1.grad is None and z2.grad is None and p1.grad.abs().sum() > 0
    p1, p2, z1, z2 = _leaves((N, D), (N, D), (N, D), (N, D))
    simsiam_loss(p1, p2, z1, z2, stop_gradient=False).backward()
    assert z1.grad.abs().sum() > 0 and z2.grad.abs().sum() > 0


def test_moco_keys_and_queue_receive_no_gradient():
    q, k, queue = _leaves((N, D), (N, D), (K, D))
    moco_loss(q, k, queue, 0.2).backward()
    assert k.grad is None and queue.grad is None and q.grad.abs().sum() > 0


def test_barlow_and_vicreg_train_both_branches():
    # Neither method stops a gradient: both branches are the same network.
    z1, z2 = _leaves((N, D), (N, D))
    barlow_twins_loss(z1, z2, 0.005).backward()
    assert z1.grad.abs().sum() > 0 and z2.grad.abs().sum() > 0
    z1, z2 = _leaves((N, D), (N, D))
    vicreg_loss(z1, z2, 25.0, 25.0, 1.0)[0].backward()
    assert z1.grad.abs().sum() > 0 and z2.grad.abs().sum() > 0


def test_losses_at_their_known_optima():
    z = _inputs((N, D), seed=6)[0]
    assert byol_loss(z, z, z, z).item() == pytest.approx(0.0, abs=1e-9)
    assert simsiam_loss(z, z, z, z).item() == pytest.approx(-1.0, abs=1e-9)
    # Standardised, decorrelated dimensions: C is the identity.
    white = torch.linalg.qr(torch.randn(64, D, dtype=torch.float64, generator=torch.Generator().manual_seed(7)))[0]
    assert barlow_twins_loss(white, white, 0.005).item() < 1e-2
