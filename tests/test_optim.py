"""LARS against a hand-computed update; warm-up + cosine learning rates; parameter groups."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from ssltui.core.config import TrainConfig
from ssltui.trainer.optim import LARS, build_optimizer, lr_at, param_groups, peak_lr


def test_lars_step_matches_hand_computation():
    w = nn.Parameter(torch.tensor([[3.0, 4.0]]))  # ||w|| = 5
    b = nn.Parameter(torch.tensor([0.5]))
    opt = LARS(
        [{"params": [w]}, {"params": [b], "weight_decay": 0.0, "lars_exclude": True}],
        lr=2.0,
        momentum=0.9,
        weight_decay=0.1,
        trust_coefficient=0.001,
    )
    w.grad = torch.tensor([[1.0, 0.0]])
    b.grad = torch.tensor([0.2])
    opt.step()
    # g' = g + 0.1 w = (1.3, 0.4); trust = 0.001 * 5 / ||g'||; v = lr * trust * g'; w -= v.
    g = (1.3, 0.4)
    trust = 0.001 * 5.0 / math.sqrt(1.3**2 + 0.4**2)
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
    assert {id(p) for p in excluded["params"]} == {
        id(model[0].bias),
        id(model[1].weight),
        id(model[1].bias),
        id(model[3].bias),
    }
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


def _steps(model: nn.Module, opt: torch.optim.Optimizer, stop: int, start: int = 0) -> None:
    """Steps start..stop-1 of a fixed sequence of batches and learning rates."""
    g = torch.Generator().manual_seed(0)
    for i in range(stop):
        x = torch.randn(8, 3, 6, 6, generator=g)
        if i < start:
            continue
        opt.zero_grad(set_to_none=True)
        model(x).square().mean().backward()
        for group in opt.param_groups:
            group["lr"] = 0.1 * (1 - i / 16)
        opt.step()


def _net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 4, 3), nn.Flatten(), nn.Linear(16, 5)
    )


def test_sgd_on_cpu_is_bit_identical_to_the_per_tensor_loop():
    cfg = TrainConfig(optimizer="sgd", lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    a, b = _net(), _net()
    ours = build_optimizer(cfg, [a])
    assert not ours.param_groups[0]["fused"] and ours.param_groups[0]["foreach"]
    loop = torch.optim.SGD(b.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4, foreach=False)
    _steps(a, ours, 6)
    _steps(b, loop, 6)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_fused_kernels_when_asked_or_on_cuda():
    for name in ("sgd", "adamw"):
        cfg = TrainConfig(optimizer=name, lr=0.1)
        assert build_optimizer(cfg, [_net()], fused=True).param_groups[0]["fused"]
        assert not build_optimizer(cfg, [_net()]).param_groups[0]["fused"]  # CPU default: unchanged
    assert isinstance(build_optimizer(TrainConfig(optimizer="lars"), [_net()], fused=True), LARS)


def test_lars_is_the_same_for_channels_last_weights_and_a_tensor_lr():
    cfg = TrainConfig(optimizer="lars", lr=0.1, weight_decay=1e-4)
    a, b = _net(), _net().to(memory_format=torch.channels_last)
    assert b[0].weight.is_contiguous(memory_format=torch.channels_last)
    opt_a, opt_b = build_optimizer(cfg, [a]), build_optimizer(cfg, [b])
    _steps(a, opt_a, 3)
    _steps(b, opt_b, 3)
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p, q, atol=1e-6, rtol=1e-5)
    # A 0-d tensor learning rate (a device-resident schedule) gives the float's update.
    c = _net()
    opt_c = build_optimizer(cfg, [c])
    for group in opt_c.param_groups:
        group["lr"] = torch.tensor(0.1)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(8, 3, 6, 6, generator=g)
    for model, opt in ((a, opt_a), (c, opt_c)):
        model.load_state_dict(_net(1).state_dict())
        opt.state.clear()
        opt.zero_grad(set_to_none=True)
        model(x).square().mean().backward()
        if opt is opt_a:
            for group in opt.param_groups:
                group["lr"] = 0.1
        opt.step()
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), c.parameters()))


def test_lars_resumes_from_its_state_dict_bit_for_bit():
    cfg = TrainConfig(optimizer="lars", lr=0.1, weight_decay=1e-4)
    a = _net()
    opt_a = build_optimizer(cfg, [a])
    _steps(a, opt_a, 4)
    b = _net()
    opt_b = build_optimizer(cfg, [b])
    _steps(b, opt_b, 2)
    saved = {"model": b.state_dict(), "opt": opt_b.state_dict()}
    c = _net(3)
    opt_c = build_optimizer(cfg, [c])
    c.load_state_dict(saved["model"])
    opt_c.load_state_dict(saved["opt"])
    _steps(c, opt_c, 4, start=2)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), c.parameters()))


def test_lars_step_has_no_host_reads():
    """CUDA-graph safe: a LARS step runs under FakeTensorMode, where reading a value would raise."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        model = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
        opt = build_optimizer(TrainConfig(optimizer="lars", lr=0.1, weight_decay=1e-6), [model])
        for _ in range(2):
            opt.zero_grad(set_to_none=True)
            model(torch.ones(3, 4)).sum().backward()
            opt.step()
        with pytest.raises(Exception):
            float(model[0].weight.detach().sum())
