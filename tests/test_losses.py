"""NT-Xent against a hand-computed value and a plain-loop reference."""

from __future__ import annotations

import math

import torch

from ssltui.trainer.losses import nt_xent


def _loop_reference(z1: torch.Tensor, z2: torch.Tensor, tau: float) -> float:
    """The paper's formula, one anchor at a time, in float64."""
    z = torch.cat([z1, z2]).double()
    n2 = len(z)
    n = n2 // 2
    total = 0.0
    for i in range(n2):
        j = (i + n) % n2

        def sim(a, b):
            return float(z[a] @ z[b] / (z[a].norm() * z[b].norm()))

        num = math.exp(sim(i, j) / tau)
        den = sum(math.exp(sim(i, k) / tau) for k in range(n2) if k != i)
        total += -math.log(num / den)
    return total / n2


def test_hand_computed_two_pairs():
    # Two pairs of 2-d vectors: z1 = (e1, e2), z2 = (e1, -e2) scaled (cosine ignores length).
    z1 = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    z2 = torch.tensor([[3.0, 0.0], [0.0, -1.0]])
    tau = 0.5
    # Anchor e1 (either copy): positive sim 1, others e2 and -e2 with sim 0 -> the same loss.
    l_e1 = -math.log(math.exp(2) / (math.exp(2) + 2 * math.exp(0)))
    # Anchor e2: positive -e2 has sim -1; the others (two copies of e1) sim 0.
    l_e2 = -math.log(math.exp(-2) / (math.exp(-2) + 2 * math.exp(0)))
    expected = (2 * l_e1 + 2 * l_e2) / 4
    assert math.isclose(nt_xent(z1, z2, tau).item(), expected, rel_tol=1e-6)


def test_matches_loop_reference():
    g = torch.Generator().manual_seed(0)
    for n, d, tau in ((1, 3, 0.5), (5, 8, 0.1), (16, 4, 1.0)):
        z1 = torch.randn(n, d, generator=g)
        z2 = z1 + 0.5 * torch.randn(n, d, generator=g)
        assert math.isclose(nt_xent(z1, z2, tau).item(), _loop_reference(z1, z2, tau), rel_tol=1e-5)


def test_symmetric_and_differentiable():
    g = torch.Generator().manual_seed(1)
    z1 = torch.randn(6, 5, generator=g, requires_grad=True)
    z2 = torch.randn(6, 5, generator=g, requires_grad=True)
    loss = nt_xent(z1, z2, 0.2)
    assert math.isclose(loss.item(), nt_xent(z2, z1, 0.2).item(), rel_tol=1e-6)
    loss.backward()
    assert torch.isfinite(z1.grad).all() and z1.grad.abs().sum() > 0
    # Perfect alignment with orthogonal negatives: a low loss.
    eye = torch.eye(4)
    assert nt_xent(eye, eye, 0.05).item() < 1e-3
