"""LARS against a hand-computed update; warm-up + cosine learning rates; parameter groups."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from ssltui.engine.config import TrainConfig
from ssltui.engine.optim import LARS, build_optimizer, lr_at, param_groups, peak_lr


def test_lars_step_matches_hand_computation():
    w = nn.Parameter(torch.tensor([[3.0, 4.0]]))  # ||w|| = 5
    b = nn.Parameter(torch.tensor([0.5]))
    opt = LARS([{"params": [w]}, {"params": [b], "weight_decay": 0.0, "lars_exclude": True}],
               lr=2.0, momentum=0.9, weight_decay=0.1, trust_coefficient=0.001)
    w.grad = torch.tensor([[1.0, 0.0]])
    b.grad = torch.tensor([0.2])
    opt.step()
    # g' = g + 0.1 w = (1.3, 0.4); trust = 0.001 * 5 / ||g'||; v = lr * trust * g'; w -= v.
    g = (1.3, 0.4)
    trust = 0.001 * 5.0 / math.sqrt(1.3 ** 2 + 0.4 ** 2)
    v1 = [2.0 * trust * gi for gi in g]
    expected = [3.0 - v1[0], 4.0 - v1[1]]
    torch.testing.assert_close(w.detach(), torch.tensor([expected]), atol=1e-7, rtol=0)
    # The bias: no weight decay, no adaptation: b -= lr * g.
    torch.testing.assert_close(b.detach(), torch.tensor([0.5 - 2.0 * 0.2]), atol=1e-7, rtol=0)

    # Second step at a different lr: the lr scales only the new gradient (SimCLR's momentum).
    for group in opt.param_groups:
        group["lr"] = 1.0
    w.grad = torch.tensor([[0.0, 1.0]])
    b.grad = torch.tensor([0.2])
    opt.step()
    w1 = expected
    g2 = (0.1 * w1[0], 1.0 + 0.1 * w1[1])
    trust2 = 0.001 * math.hypot(*w1) / math.hypot(*g2)
    v2 = [0.9 * v1[i] + 1.0 * trust2 * g2[i] for i in range(2)]
    torch.testing.assert_close(w.detach(), torch.tensor([[w1[0] - v2[0], w1[1] - v2[1]]]), atol=1e-7, rtol=0)
    vb = 0.9 * (2.0 * 0.2) + 1.0 * 0.2
    torch.testing.assert_close(b.detach(), torch.tensor([0.1 - vb]), atol=1e-7, rtol=0)


def test_lars_trust_is_one_for_zero_weights():
    w = nn.Parameter(torch.zeros(2, 2))
    opt = LARS([w], lr=0.5, momentum=0.9, weight_decay=0.0)
    w.grad = torch.ones(2, 2)
    opt.step()
    torch.testing.assert_close(w.detach(), torch.full((2, 2), -0.5))


def test_biases_and_batchnorm_are_excluded():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4, 2))
    cfg = TrainConfig(optimizer="lars", lr=0.1, weight_decay=1e-6)
    opt = build_optimizer(cfg, [model])
    assert isinstance(opt, LARS)
    regular, excluded = opt.param_groups
    assert {id(p) for p in regular["params"]} == {id(model[0].weight), id(model[3].weight)}
    assert {id(p) for p in excluded["params"]} == {id(model[0].bias), id(model[1].weight),
                                                   id(model[1].bias), id(model[3].bias)}
    assert regular["weight_decay"] == 1e-6 and not regular["lars_exclude"]
    assert excluded["weight_decay"] == 0.0 and excluded["lars_exclude"]
    assert len(param_groups([model], exclude_norm_bias=False)) == 1


def test_peak_lr_scaling():
    assert peak_lr(TrainConfig(lr=0.012, batch_size=1024)) == pytest.approx(0.012)
    assert peak_lr(TrainConfig(lr=0.3, lr_scaling="linear", batch_size=1024)) == pytest.approx(1.2)
    assert peak_lr(TrainConfig(lr=0.075, lr_scaling="sqrt", batch_size=1024)) == pytest.approx(2.4)


def test_warmup_then_cosine():
    cfg = TrainConfig(epochs=100, warmup_epochs=20, lr=0.012, schedule="cosine")
    total = 1000  # 10 steps an epoch; warm-up is 200 steps
    assert lr_at(cfg, 0, total) == pytest.approx(0.012 / 200)
    assert lr_at(cfg, 99, total) == pytest.approx(0.012 * 100 / 200)
    assert lr_at(cfg, 199, total) == pytest.approx(0.012)
    assert lr_at(cfg, 200, total) == pytest.approx(0.012)  # cosine starts at the peak
    assert lr_at(cfg, 600, total) == pytest.approx(0.006)  # halfway through the decay
    assert lr_at(cfg, 400, total) == pytest.approx(0.012 * 0.5 * (1 + math.cos(math.pi * 0.25)))
    assert lr_at(cfg, 999, total) == pytest.approx(0.012 * 0.5 * (1 + math.cos(math.pi * 799 / 800)))
    assert lr_at(cfg, 999, total) < 1e-6
    lrs = [lr_at(cfg, s, total) for s in range(total)]
    assert all(a < b for a, b in zip(lrs[:199], lrs[1:200]))
    assert all(a >= b for a, b in zip(lrs[200:-1], lrs[201:]))


@pytest.mark.parametrize("eta", [0.001, 1.0])
def test_lars_trust_coefficient_sets_the_relative_step(eta):
    # An adapted layer's first step is lr x eta of its norm, whatever the gradient's size:
    # the reason "lr 0.012" moves a layer by 1.2e-5 of its norm with SimCLR's eta 0.001.
    w = nn.Parameter(torch.randn(8, 8, dtype=torch.float64))  # float64: the step is ~1e-5 of w
    cfg = TrainConfig(optimizer="lars", lr=0.012, weight_decay=0.0, lars_trust_coefficient=eta)
    opt = build_optimizer(cfg, [nn.ParameterList([w])])
    before = w.detach().clone()
    w.grad = 123.0 * torch.randn(8, 8, dtype=torch.float64)
    opt.step()
    rel = float((w.detach() - before).norm() / before.norm())
    assert rel == pytest.approx(0.012 * eta, rel=1e-6)
