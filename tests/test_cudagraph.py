"""The graphed-step path on the CPU: its control flow (warm-up, capture, self-check, replays,
eager fallback, re-capture on resume) with fake capture backends, the device-tensor schedule,
and the host reads of the engine's real steps. CUDA itself: benchmarks/gpu_check.sh."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from reliability_tools import one_thread, toy_phase  # noqa: F401 (autouse fixture)
from torch import nn

from benchmarks.syncs import HostReads
from ssltui.core.config import RuntimeConfig, TrainConfig
from ssltui.core.errors import ConfigError, RunInterrupted
from ssltui.core.events import Log
from ssltui.core.store import RunDir
from ssltui.trainer.cudagraph import CallGraphs, GraphedSteps
from ssltui.trainer.device import pick_device
from ssltui.trainer.optim import build_optimizer, lr_at, lr_table


class FakeGraphs(CallGraphs):
    """'Captures' by keeping the step and 'replays' by calling it: a CUDA graph's control flow."""


class FailingGraphs(FakeGraphs):
    def capture(self, fn, generators):
        raise RuntimeError("CUDA error: operation not permitted when stream is capturing")


class StaleRandomGraphs(FakeGraphs):
    """A graph whose generator was not registered: every replay repeats the captured draws."""

    def capture(self, fn, generators):
        gen, state = generators[0], generators[0].get_state()
        replay = super().capture(fn, generators)
        return lambda: (gen.set_state(state), replay())


class DoubleStepGraphs(FakeGraphs):
    """A broken graph that holds the step twice."""

    def capture(self, fn, generators):
        replay = super().capture(fn, generators)
        return lambda: (replay(), replay())


def _phase(tmp: Path, backend, optimizer: str = "sgd", stop_at: int | None = None):
    """30 steps (5 epochs of 6) with a warm-up and weight decay, noise from the phase generator."""
    return toy_phase(tmp, stop_at, noise=1.0, graphs=backend, optimizer=optimizer, warmup_epochs=1, weight_decay=1e-3)


def _warnings(run: RunDir) -> list[str]:
    return [e.message for e in run.read_events() if isinstance(e, Log) and "CUDA graph" in e.message]


def _close(a: nn.Module, b: nn.Module) -> None:
    for (k, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.allclose(x.float(), y.float(), rtol=1e-4, atol=1e-6), k


@pytest.mark.parametrize("optimizer", ["sgd", "lars"])
def test_replayed_steps_train_as_eager_steps_do(tmp_path: Path, optimizer: str) -> None:
    _, eager_model, _, eager = _phase(tmp_path / "eager", None, optimizer)
    eager_out = eager()
    backend = FakeGraphs()
    phase, model, run, graphed = _phase(tmp_path / "graphed", backend, optimizer)
    out = graphed()
    assert phase.steps.mode == "graph" and backend.captures == 1
    # 2 warm-up steps, 2 replays for the check, then a replay for each of the other 28 steps.
    assert backend.replays == 2 + (30 - 2)
    assert phase.steps.check["worst"] <= 1.0 and phase.steps.check["loss_diff"] == 0.0
    assert not _warnings(run)
    _close(model, eager_model)
    assert out["loss"] == pytest.approx(eager_out["loss"], rel=1e-5)
    # The device-side step counter ran through the phase; the learning rate was looked up by it.
    assert int(phase.steps.step_t) == 30
    # At the phase's end the graph and the gradients in its memory are let go.
    assert phase.steps.replay is None and all(p.grad is None for p in model.parameters())
    assert float(phase.steps.lr_buf) == pytest.approx(lr_at(phase.cfg, 29, 30), rel=1e-6)


@pytest.mark.parametrize(
    "backend,why",
    [
        (FailingGraphs(), "capture failed (RuntimeError"),
        (StaleRandomGraphs(), "disagree with eager ones"),
        (DoubleStepGraphs(), "disagree with eager ones"),
    ],
)
def test_a_failed_capture_or_check_logs_one_line_and_trains_eagerly(tmp_path: Path, backend, why: str) -> None:
    _, eager_model, _, eager = _phase(tmp_path / "eager", None)
    eager()
    phase, model, run, go = _phase(tmp_path / "graphed", backend)
    go()  # never a failed run
    assert phase.steps.mode == "eager"
    warnings = _warnings(run)
    assert len(warnings) == 1 and why in warnings[0] and "runs eager steps" in warnings[0], warnings
    # The check's steps were undone: the phase trained as an eager one, step for step.
    _close(model, eager_model)


def test_a_resume_captures_again_and_matches_bit_for_bit(tmp_path: Path) -> None:
    ref_phase, ref_model, _, ref = _phase(tmp_path / "ref", FakeGraphs())
    ref_out = ref()
    first = FakeGraphs()
    _, _, _, go = _phase(tmp_path / "cut", first, stop_at=17)
    with pytest.raises(RunInterrupted):
        go()
    second = FakeGraphs()
    phase, model, _, again = _phase(tmp_path / "cut", second)
    out = again()
    assert first.captures == second.captures == 1 and phase.steps.mode == "graph"
    for k, t in ref_model.state_dict().items():
        assert torch.equal(model.state_dict()[k], t), k
    assert torch.equal(phase.generator.get_state(), ref_phase.generator.get_state())
    assert out["loss"] == ref_out["loss"]


def test_a_graphed_checkpoint_holds_a_plain_learning_rate(tmp_path: Path) -> None:
    phase, _, run, go = _phase(tmp_path, FakeGraphs())
    go()
    assert isinstance(phase.optimizer.param_groups[0]["lr"], torch.Tensor)
    ck = torch.load(next(run.checkpoints_dir.glob("*.pt")), weights_only=True)
    assert all(type(g["lr"]) is float for g in ck["optimizer"]["param_groups"])


def test_too_short_a_phase_is_not_captured(tmp_path: Path) -> None:
    backend = FakeGraphs()
    steps = GraphedSteps(
        TrainConfig(epochs=1),
        9,
        torch.optim.SGD([nn.Parameter(torch.ones(2))], lr=0.1),
        {},
        lambda idx: torch.zeros((), requires_grad=True),
        torch.zeros(9),
        torch.Generator(),
        4,
        backend,
        print,
    )
    steps(0, torch.arange(4))
    assert steps.mode == "eager" and backend.captures == 0


@pytest.mark.parametrize(
    "cfg",
    [
        TrainConfig(epochs=100, schedule="cosine", warmup_epochs=20, lr=0.012),
        TrainConfig(epochs=100, schedule="step", milestones=[30, 60, 80], gamma=0.2),
        TrainConfig(epochs=182, min_steps=3000, schedule="step", milestones=[91, 136], lr=0.1),
        TrainConfig(epochs=10, schedule="constant", lr=0.3, lr_scaling="sqrt", batch_size=256, warmup_epochs=2),
    ],
)
def test_the_device_schedule_is_lr_at_of_every_step(cfg: TrainConfig) -> None:
    total = 3017
    table = lr_table(cfg, total)
    want = torch.tensor([lr_at(cfg, s, total) for s in range(total)], dtype=torch.float32)
    assert table.dtype == torch.float32 and torch.equal(table, want)
    assert float(table[0]) != float(table[-1])


def test_cuda_graphs_on_needs_a_cuda_device() -> None:
    with pytest.raises(ConfigError, match="cuda_graphs = on needs a CUDA device"):
        pick_device("cpu", RuntimeConfig(cuda_graphs="on"))
    assert pick_device("cpu", RuntimeConfig()).graphs is None  # auto: eager on the CPU


# ---------------------------------------------------------------- host reads of the real steps


def _real_steps(method: str):
    """The engine's step of `method` as on CUDA (bf16 autocast, channels_last, fused optimizers)."""
    from benchmarks.engine_step import engine_step
    from benchmarks.opcount import device_settings, tiny_bundle

    dev = device_settings(like_cuda=True)
    if method in ("simclr", "rotnet"):
        s = engine_step(method, tiny_bundle(dev.device), dev, 4, fused=True)
        return s.model, s.optimizer, s.loss, s.n_items, s.generator
    from ssltui.trainer.losses import classifier_loss
    from ssltui.trainer.models.resnet import Classifier, ResNet20

    bundle = tiny_bundle(dev.device)
    model = dev.prepare(Classifier(ResNet20(), bundle.num_classes))
    xs, ys = bundle.train_x[bundle.train_idx], bundle.train_y[bundle.train_idx]
    gen = torch.Generator().manual_seed(0)
    loss = classifier_loss(model, xs, bundle, dev, gen, lambda pos: ys[pos], True)
    return model, build_optimizer(TrainConfig(), [model], fused=True), loss, len(xs), gen


@pytest.mark.parametrize("method", ["simclr", "rotnet", "supervised"])
def test_the_graphed_step_reads_nothing_back_from_the_device(method: str) -> None:
    model, optimizer, loss, n_items, gen = _real_steps(method)
    backend = FakeGraphs()
    total = 16
    steps = GraphedSteps(
        TrainConfig(epochs=1, optimizer="lars" if method == "simclr" else "sgd"),
        total,
        optimizer,
        {"model": model},
        loss,
        torch.zeros(total),
        gen,
        4,
        backend,
        print,
    )
    model.train()
    for s in range(3):  # warm-up, then capture and check (they may read: once a phase)
        steps(s, torch.randint(0, n_items, (4,)))
    assert steps.mode == "graph"
    with HostReads() as reads:
        for s in range(3, 8):
            steps(s, torch.randint(0, n_items, (4,)))
    assert reads.total == 0, reads.counts
    with HostReads() as reads:  # the counter would have seen one
        loss(torch.arange(4)).item()
    assert reads.total == 1
