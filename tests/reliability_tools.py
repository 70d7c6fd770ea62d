"""Helpers for the reliability tests: a tiny seeded run, real subprocesses, and polling its files."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import cli_env

# A run that takes a few seconds on one CPU thread yet has several epochs of several steps:
# 70 training images (7 a class), batches of 10 -> 7 steps an epoch, 6 epochs, 50 test images.
TINY = [
    "run",
    "--preset",
    "smoke",
    "--data",
    "synthetic",
    "--device",
    "cpu",
    "--labels",
    "1.0",
    "--seeds",
    "0",
    "--json",
    "-q",
    "--set",
    "data.synthetic_train_per_class=8",
    "--set",
    "data.synthetic_test_per_class=5",
    "--set",
    "supervised.batch_size=10",
    "--set",
    "supervised.epochs=6",
    "--set",
    "supervised.checkpoint_every=1",
    "--set",
    "runtime.featuremaps=false",
    # A log point after every step, so that the tests can stop the run inside an epoch.
    "--set",
    "runtime.log_seconds=0",
]
STEPS_PER_EPOCH = 7
EPOCHS = 6
PHASE = "p0-supervised/supervised/labels1/seed0"
# One thread: the same float summation order in every process, so bit-for-bit is a fair ask.
ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def spawn(runs_dir: Path, data_dir: Path, *args: str, env: dict | None = None) -> subprocess.Popen:
    """Start the real CLI in its own process (group), as a user's shell would (`env`: variables
    that replace the one-thread defaults)."""
    return subprocess.Popen(
        [sys.executable, "-m", "ssltui", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(runs_dir, data_dir, **{**ENV, **(env or {})}),
        stdin=subprocess.DEVNULL,
    )


def finish(proc: subprocess.Popen, timeout: float = 240) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def read_events(run: Path) -> list[dict]:
    """Whole lines of metrics.jsonl (the file may be mid-append)."""
    try:
        data = (run / "metrics.jsonl").read_bytes()
    except FileNotFoundError:
        return []
    out = []
    for line in data.split(b"\n"):
        try:
            out.append(json.loads(line))
        except ValueError:
            pass
    return out


def wait_for(run: Path, proc: subprocess.Popen, pred, timeout: float = 180) -> dict:
    """Poll metrics.jsonl until an event satisfies `pred`; fail if the process ends first."""
    t0 = time.monotonic()
    seen = 0
    while time.monotonic() - t0 < timeout:
        events = read_events(run)
        for e in events[seen:]:
            if pred(e):
                return e
        seen = len(events)
        if proc.poll() is not None:
            raise AssertionError(
                f"process ended (rc {proc.returncode}) before the awaited event; "
                f"stderr: {proc.stderr.read() if proc.stderr else ''}"
            )
        time.sleep(0.01)
    raise AssertionError("timed out waiting for an event")


def mid_epoch_step(epoch: int):
    """A step event inside epoch `epoch` (0-based), not at its end."""
    return lambda e: e.get("event") == "step" and e.get("epoch") == epoch and e["step"] % STEPS_PER_EPOCH not in (0,)


def final_weights(run: Path) -> dict:
    """The trained classifier of the finished phase: its last checkpoint's tensors."""
    path = run / "checkpoints" / (PHASE.replace("/", "__") + ".pt")
    ck = torch.load(path, map_location="cpu", weights_only=True)
    assert ck["epoch"] == EPOCHS and ck["step_in_epoch"] == 0, "not the final checkpoint"
    return ck


def assert_same_result(run: Path, ref: Path) -> None:
    """Same accuracies and, bit for bit, the same weights, BN statistics and optimizer state."""
    s, r = json.loads((run / "summary.json").read_text()), json.loads((ref / "summary.json").read_text())
    assert s["status"] == "completed", s.get("error")
    got = [(x["test_acc"], x["val_acc"]) for x in s["results"]]
    want = [(x["test_acc"], x["val_acc"]) for x in r["results"]]
    assert got == want
    a, b = final_weights(run), final_weights(ref)
    assert a["modules"]["model"].keys() == b["modules"]["model"].keys()
    for k, t in b["modules"]["model"].items():
        assert torch.equal(a["modules"]["model"][k], t), f"weights differ: {k}"
    for pid, st in b["optimizer"]["state"].items():
        assert torch.equal(a["optimizer"]["state"][pid]["momentum_buffer"], st["momentum_buffer"])
    assert torch.equal(a["generator"], b["generator"])

    # The loss curve after resuming is the uninterrupted one: the last record of each epoch wins.
    def curve(p: Path) -> dict:
        return {e["epoch"]: e["loss"] for e in read_events(p) if e.get("event") == "epoch"}

    assert curve(run) == curve(ref)


@pytest.fixture(autouse=True)
def one_thread():
    """In-process training on one thread, as the subprocesses: on a busy 2-core box two threads
    were 5-7x slower (oversubscription), and one thread keeps float sums in one order."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def toy_phase(tmp: Path, stop_at: int | None = None, noise: float = 0.1, graphs=None, **cfg):
    """A toy classifier phase (24 items, batches of 4: 6 steps an epoch, 5 epochs unless `cfg`
    says otherwise) whose steps draw noise from the phase generator; `stop_at`: request a stop
    during the n-th call of the step. Returns (phase, model, run folder, go)."""
    from torch import nn

    from ssltui.core.config import TrainConfig
    from ssltui.core.events import PhaseRef
    from ssltui.core.store import RunDir
    from ssltui.trainer.device import DeviceSettings
    from ssltui.trainer.loop import Phase, RunContext
    from ssltui.trainer.optim import build_optimizer

    run = RunDir(tmp)
    run.path.mkdir(exist_ok=True)
    ctx = RunContext(run, DeviceSettings(torch.device("cpu"), None, False, False, graphs=graphs))
    info = PhaseRef(phase="toy/phase", kind="supervised", method="supervised", seed=0)
    gen = ctx.generator(0, info.phase)
    model = nn.Sequential(nn.Linear(3, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))
    cfg = TrainConfig(**{"epochs": 5, "batch_size": 4, "lr": 0.1, **cfg})
    xs = torch.randn(24, 3, generator=torch.Generator().manual_seed(1))
    ys = (xs[:, 0] > 0).long()
    calls = {"n": 0}

    def step(idx: torch.Tensor) -> torch.Tensor:
        calls["n"] += 1
        if stop_at is not None and calls["n"] == stop_at:
            ctx.request_stop("test stop")
        shake = torch.randn(len(idx), 3, generator=gen) * noise  # draws from the phase generator
        return nn.functional.cross_entropy(model(xs[idx] + shake), ys[idx])

    phase = Phase(ctx, info, cfg, len(xs), {"model": model}, build_optimizer(cfg, [model]), gen)
    return phase, model, run, lambda: phase.run(step, model.train, lambda e: {"val_acc": float(e)})
