"""The number of operations a training step dispatches (benchmarks.opcount) stays low.

On a GPU the steps are bound by host-side dispatch, so these counts are the step's cost there.
Before the single-gather augmentation, one-round-trip colour jitter and the flat LARS step
(commit 3b306c3) a SimCLR step dispatched 819 kernels (546 of them augmentation) and a RotNet
step 514 on the CPU (28 augmentation, 297 a per-tensor SGD loop); either would fail here.
"""

from __future__ import annotations

import json

import pytest
import torch

from benchmarks import opcount


@pytest.fixture(scope="module")
def counts():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield {m: opcount.summary(opcount.count_method(m, batch_size=4)) for m in ("simclr", "rotnet")}
    finally:
        torch.set_num_threads(threads)


def test_simclr_step_dispatches_under_half_the_old_count(counts):
    s = counts["simclr"]
    assert s["parts"]["augment"]["kernels"] <= 130, s
    assert s["parts"]["optimizer"]["kernels"] <= 30, s
    assert s["kernels"] <= 400, s


def test_rotnet_step_dispatches_few_operations(counts):
    s = counts["rotnet"]
    assert s["parts"]["augment"]["kernels"] <= 8, s
    assert s["parts"]["optimizer"]["kernels"] <= 12, s
    assert s["kernels"] <= 230, s


def test_counts_cover_forward_and_backward(counts):
    # A counter that missed the model would make the bounds above meaningless.
    for s in counts.values():
        assert s["parts"]["forward+loss"]["kernels"] >= 60 and s["parts"]["backward"]["kernels"] >= 60, s
        assert s["ops"] >= s["kernels"] > 0


def test_count_does_not_depend_on_the_batch(counts):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert opcount.summary(opcount.count_method("rotnet", batch_size=6)) == counts["rotnet"]
    finally:
        torch.set_num_threads(threads)


def test_multi_tensor_ops_count_one_kernel_only_when_the_lists_agree():
    a = [torch.ones(3), torch.ones(2, 2)]
    counter = opcount.OpCounter()
    with counter:
        torch._foreach_mul_(a, [torch.ones(3), torch.ones(2, 2)])
        counter.part = "backward"
        torch._foreach_mul_(a, [torch.tensor(2.0), torch.tensor(3.0)])  # a kernel a tensor on CUDA
    assert counter.counts["augment"]["_foreach_mul_"] == 1
    assert counter.counts["backward"]["_foreach_mul_"] == 2


def test_cli_json(capsys):
    assert opcount.main(["--method", "rotnet", "--json", "--top", "3", "--time", "1", "--threads", "1"]) == 0
    out = json.loads(capsys.readouterr().out)
    r = out["methods"]["rotnet"]
    assert r["kernels"] == sum(p["kernels"] for p in r["parts"].values())
    assert set(r["top"]) == set(opcount.PARTS)
    assert set(r["ms"]) == set(opcount.PARTS) and all(v > 0 for v in r["ms"].values())


def test_lars_step_kernels_do_not_grow_with_the_number_of_tensors():
    from torch import nn

    from ssltui.core.config import TrainConfig
    from ssltui.trainer.optim import build_optimizer

    def step_kernels(layers: int) -> int:
        model = nn.Sequential(*[nn.Linear(4, 4) for _ in range(layers)])
        opt = build_optimizer(TrainConfig(optimizer="lars", lr=0.1, weight_decay=1e-6), [model])
        for _ in range(2):  # the second step is the steady state
            opt.zero_grad(set_to_none=True)
            model(torch.ones(2, 4)).sum().backward()
            counter = opcount.OpCounter()
            with counter:
                opt.step()
        return opcount.summary(counter)["kernels"]

    assert step_kernels(3) == step_kernels(30) <= 25
