"""The shared parts of the self-supervised methods: MLP heads, the momentum target and its
cosine EMA schedule, the key queue and its pointer, the collapse measure."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from ssltui.trainer.ssl_parts import CollapseMonitor, KeyQueue, MomentumTarget, mlp


def test_mlp_layers():
    head = mlp(8, 16, 4)
    assert [type(m).__name__ for m in head] == ["Linear", "BatchNorm1d", "ReLU", "Linear"]
    assert head[0].bias is None and head[-1].bias is not None
    three = mlp(8, 16, 4, layers=3, out_bn=True)
    assert [type(m).__name__ for m in three] == ["Linear", "BatchNorm1d", "ReLU"] * 2 + ["Linear", "BatchNorm1d"]
    plain = mlp(8, 16, 4, hidden_bn=False)
    assert [type(m).__name__ for m in plain] == ["Linear", "ReLU", "Linear"] and plain[0].bias is not None
    assert head(torch.randn(5, 8)).shape == (5, 4)


def _online(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))


def test_ema_follows_the_cosine_schedule():
    online = _online()
    ema = MomentumTarget(online, 0.9)
    ema.set_total_steps(10)
    # The first update, where target == online, changes nothing, bit for bit.
    before = [p.clone() for p in ema.target.parameters()]
    ema.update(online)
    assert all(torch.equal(a, b) for a, b in zip(before, ema.target.parameters()))
    xi = [p.clone().double() for p in ema.target.parameters()]
    for k in range(1, 10):
        with torch.no_grad():
            for p in online.parameters():
                p.add_(torch.randn_like(p))
        tau = 1 - (1 - 0.9) * (math.cos(math.pi * k / 10) + 1) / 2
        xi = [tau * x + (1 - tau) * p.double() for x, p in zip(xi, online.parameters())]
        assert ema.rate().item() == pytest.approx(tau, abs=1e-6)
        ema.update(online)
        for got, want in zip(ema.target.parameters(), xi):
            assert torch.allclose(got.double(), want, atol=1e-6)
    assert int(ema.step) == 10 and ema.rate().item() == pytest.approx(1.0)
    assert not any(p.requires_grad for p in ema.target.parameters())
    # The step counter is state: a checkpoint carries it.
    assert "step" in ema.state_dict()


def test_ema_constant_rate_and_limits():
    online = _online()
    ema = MomentumTarget(online, 0.99, cosine=False)
    ema.set_total_steps(5)
    ema.step.fill_(3)
    assert ema.rate().item() == pytest.approx(0.99)
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match="outside"):
            MomentumTarget(online, bad)
    frozen = MomentumTarget(online, 1.0)  # rate 1: the target never moves
    with torch.no_grad():
        for p in online.parameters():
            p.add_(1.0)
    before = [p.clone() for p in frozen.target.parameters()]
    frozen.set_total_steps(4)
    frozen.update(online)
    frozen.update(online)
    assert all(torch.equal(a, b) for a, b in zip(before, frozen.target.parameters()))


def test_queue_overwrites_the_oldest_and_wraps():
    q = KeyQueue(5, 2, torch.Generator().manual_seed(0))
    assert torch.allclose(q.keys.norm(dim=1), torch.ones(5))
    first = torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 0.0]])
    q.enqueue(first)
    assert int(q.ptr) == 3
    assert torch.equal(q.keys[:3], torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]]))
    old = q.keys[3:].clone()
    q.enqueue(torch.tensor([[0.0, -1.0], [-1.0, 0.0], [0.0, 5.0]]))  # rows 3, 4, then 0
    assert int(q.ptr) == 1
    assert torch.equal(q.keys[3], torch.tensor([0.0, -1.0])) and torch.equal(q.keys[4], torch.tensor([-1.0, 0.0]))
    assert torch.equal(q.keys[0], torch.tensor([0.0, 1.0])) and torch.equal(q.keys[1], torch.tensor([0.0, 1.0]))
    assert not torch.equal(old, q.keys[3:])
    with pytest.raises(ValueError, match="does not fit"):
        q.enqueue(torch.ones(6, 2))
    assert set(q.state_dict()) == {"keys", "ptr"}


def test_collapse_measure_spread_against_collapsed():
    monitor = CollapseMonitor(torch.device("cpu"))
    assert math.isnan(monitor.read())
    monitor.record(torch.randn(512, 64, generator=torch.Generator().manual_seed(0)))
    assert monitor.read() == pytest.approx(1.0, abs=0.05)
    point = torch.ones(512, 64) + 1e-4 * torch.randn(512, 64)
    monitor.record(point)
    assert monitor.read() < 0.01


def test_augmentation_saturation_apart_from_the_strength():
    from ssltui.trainer.augment import SimCLRAugment

    g = torch.Generator().manual_seed(0)
    simclr = SimCLRAugment(jitter_strength=0.5).sample(4000, 32, 32, g).jitter
    byol = SimCLRAugment(jitter_strength=0.5, saturation=0.2).sample(4000, 32, 32, g).jitter
    # SimCLR's rule: saturation 0.8 s = 0.4; BYOL's 0.2; brightness 0.8 s = 0.4 in both.
    assert simclr.saturation.min() < 0.62 and simclr.saturation.max() > 1.38
    assert byol.saturation.min() >= 0.8 - 1e-6 and byol.saturation.max() <= 1.2 + 1e-6
    assert byol.brightness.min() < 0.62 and byol.brightness.max() > 1.38
    assert byol.hue.abs().max() <= 0.1 + 1e-6 and byol.hue.abs().max() > 0.09
