"""Faults during training: non-finite loss, device out of memory, a full disk.

The faults are injected in-process (the Runner, as the CLI calls it) by monkeypatching the loss
or os.fsync; one real subprocess shows what a user sees for a diverging learning rate."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest
import torch
from reliability_tools import PHASE, TINY, finish, one_thread, spawn  # noqa: F401 (fixture)

from ssltui.core.errors import RunFailed
from ssltui.core.presets import resolve
from ssltui.core.store import RunDir, RunStore
from ssltui.trainer.checkpoint import load_checkpoint
from ssltui.trainer.runner import Runner, RunOptions

SETS = [TINY[i + 1] for i, a in enumerate(TINY) if a == "--set"]
SPE = 7  # steps per epoch of the tiny run


def _runner(runs: Path, data_dir: Path, name: str) -> Runner:
    plan = resolve("smoke", labels=[1.0], seeds=[0], sets=[*SETS, "supervised.epochs=4"])
    run = RunDir(runs / name)
    run.path.mkdir(parents=True)
    return Runner(plan, run, RunOptions(data="synthetic", data_dir=data_dir, device="cpu"))


def _ckpt(run: RunDir) -> dict:
    return load_checkpoint(run.checkpoints_dir / (PHASE.replace("/", "__") + ".pt"), kind="phase")


def _fail_at_call(monkeypatch: pytest.MonkeyPatch, n: int, make) -> None:
    """Make the n-th training loss (1-based) whatever `make(loss)` returns or raises."""
    real = torch.nn.functional.cross_entropy
    calls = {"n": 0}

    def cross_entropy(*args, **kwargs):
        loss = real(*args, **kwargs)
        if torch.is_grad_enabled():  # training steps only, not the accuracy passes
            calls["n"] += 1
            if calls["n"] == n:
                return make(loss)
        return loss

    monkeypatch.setattr(torch.nn.functional, "cross_entropy", cross_entropy)


def test_nan_loss_stops_naming_epoch_and_step_and_keeps_the_checkpoint_before(
    tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = _runner(tmp_path, data_dir, "nan")
    _fail_at_call(monkeypatch, 2 * SPE + 3, lambda loss: loss * float("nan"))  # epoch 3, step 17
    with pytest.raises(RunFailed) as exc:
        runner.execute()
    assert "loss became nan" in exc.value.message and "at epoch 3, step 17" in exc.value.message
    assert runner.run.info().status == "failed"
    assert "step 17" in runner.run.info().error
    ck = _ckpt(runner.run)
    assert (ck["epoch"], ck["step_in_epoch"]) == (2, 0)
    assert all(torch.isfinite(t).all() for t in ck["modules"]["model"].values() if t.is_floating_point())


def test_out_of_memory_names_the_batch_size_to_lower(
    tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = _runner(tmp_path, data_dir, "oom")

    def oom(loss):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    _fail_at_call(monkeypatch, SPE + 2, oom)
    with pytest.raises(RunFailed) as exc:
        runner.execute()
    msg = exc.value.message
    assert "out of device memory" in msg and "supervised.batch_size" in msg and "--set" in msg
    assert runner.run.info().status == "failed"
    assert _ckpt(runner.run)["epoch"] == 1


def test_full_disk_keeps_the_last_good_checkpoint_and_resume_finishes_identically(
    tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ref = _runner(tmp_path, data_dir, "ref")
    ref.execute()

    runner = _runner(tmp_path, data_dir, "full")
    real_fsync = os.fsync
    state = {"checkpoints": 0, "full": False}

    def fsync(fd: int) -> None:
        path = os.readlink(f"/proc/self/fd/{fd}")
        if "/checkpoints/" in path:
            state["checkpoints"] += 1
            state["full"] = state["full"] or state["checkpoints"] == 2
        if state["full"]:  # from the second checkpoint on, every write finds the disk full
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(RunFailed) as exc:
        runner.execute()
    assert "disk full" in exc.value.message and "checkpoints" in exc.value.message
    monkeypatch.setattr(os, "fsync", real_fsync)  # space freed

    run = runner.run
    assert _ckpt(run)["epoch"] == 1  # the epoch-1 checkpoint, whole
    leftovers = [p.name for p in run.path.rglob(".*.tmp")]
    assert not leftovers
    # The summary could not be rewritten either: the old one is whole, and the dead run is stale.
    assert json.loads(run.summary_path.read_text())["status"] == "running"
    assert run.info().status == "stale"

    Runner(runner.plan, run, runner.opts).execute(resume=True)
    got, want = _ckpt(run), _ckpt(ref.run)
    assert got["epoch"] == want["epoch"] == 4
    for k, t in want["modules"]["model"].items():
        assert torch.equal(got["modules"]["model"][k], t), k
    assert run.read_summary().results[0].test_acc == ref.run.read_summary().results[0].test_acc


def test_diverging_lr_fails_in_one_line_exit_1(tmp_path: Path, data_dir: Path) -> None:
    runs = tmp_path / "runs"
    rc, out, err = finish(spawn(runs, data_dir, *TINY, "--run-id", "boom", "--set", "supervised.lr=1e30"))
    assert rc == 1, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "loss became" in lines[0] and "at epoch 1, step" in lines[0], err
    summary = json.loads((runs / "boom" / "summary.json").read_text())
    assert summary["status"] == "failed" and "loss became" in summary["error"]
    assert RunStore(runs).get("boom").info().status == "failed"
