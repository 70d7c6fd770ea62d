"""Nothing lost: a real `ssltui run` killed (SIGKILL) or interrupted (SIGINT) and resumed ends
bit for bit where an uninterrupted run ends. Every process here is a real subprocess."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
import torch
from conftest import last_json
from reliability_tools import (
    EPOCHS,
    PHASE,
    STEPS_PER_EPOCH,
    TINY,
    assert_same_result,
    finish,
    mid_epoch_step,
    read_events,
    spawn,
    wait_for,
)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    """The uninterrupted run every interrupted one must reproduce."""
    runs = tmp_path_factory.mktemp("ref-runs")
    rc, out, err = finish(spawn(runs, data_dir, *TINY, "--run-id", "ref"))
    assert rc == 0, err
    assert last_json(out)["status"] == "completed"
    return runs / "ref"


def _runs_json(runs_dir: Path, data_dir: Path) -> dict:
    rc, out, err = finish(spawn(runs_dir, data_dir, "runs", "--json"))
    assert rc == 0, err
    return {r["run_id"]: r for r in json.loads(out)}


def test_sigkill_stale_then_resume_is_bit_identical_and_second_resume_refused(
    tmp_path: Path, data_dir: Path, reference: Path
) -> None:
    runs = tmp_path / "runs"
    run = runs / "killed"
    proc = spawn(runs, data_dir, *TINY, "--run-id", "killed")
    # The epoch-3 event comes just before its checkpoint: the kill lands before or after it.
    wait_for(run, proc, lambda e: e.get("event") == "epoch" and e.get("epoch") == 3)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL

    # Died without a word: the summary still says "running", the lock is free -> stale.
    assert json.loads((run / "summary.json").read_text())["status"] == "running"
    assert _runs_json(runs, data_dir)["killed"]["status"] == "stale"

    first = spawn(runs, data_dir, "resume", "killed", "--json", "-q")
    wait_for(run, first, lambda e: e.get("event") == "resume")
    first.send_signal(signal.SIGSTOP)  # hold it (and its lock) still while the second tries
    try:
        assert _runs_json(runs, data_dir)["killed"]["status"] == "running"
        rc2, _, err2 = finish(spawn(runs, data_dir, "resume", "killed", "--json", "-q"))
    finally:
        first.send_signal(signal.SIGCONT)
    assert rc2 == 2, err2
    assert "another process" in err2 and len(err2.strip().splitlines()) == 1, err2
    rc, out, err = finish(first)
    assert rc == 0, err
    assert last_json(out)["status"] == "completed"
    resumed = [e for e in read_events(run) if e.get("event") == "resume"]
    assert len(resumed) == 1 and resumed[0]["epoch"] >= 2 and resumed[0]["step_in_epoch"] == 0
    assert_same_result(run, reference)
    assert _runs_json(runs, data_dir)["killed"]["status"] == "completed"


def test_sigkill_mid_epoch_resumes_from_last_epoch_checkpoint(tmp_path: Path, data_dir: Path, reference: Path) -> None:
    runs = tmp_path / "runs"
    run = runs / "mid"
    proc = spawn(runs, data_dir, *TINY, "--run-id", "mid")
    hit = wait_for(run, proc, mid_epoch_step(2))
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    ck = torch.load(run / "checkpoints" / (PHASE.replace("/", "__") + ".pt"), weights_only=True)
    assert ck["step_in_epoch"] == 0 and ck["epoch"] >= 2  # only epoch checkpoints on a kill
    steps_lost = [e for e in read_events(run) if e.get("event") == "step" and e["step"] > ck["epoch"] * STEPS_PER_EPOCH]
    assert steps_lost or hit["step"] <= ck["epoch"] * STEPS_PER_EPOCH
    rc, out, err = finish(spawn(runs, data_dir, "resume", "mid", "--json", "-q"))
    assert rc == 0, err
    assert_same_result(run, reference)


def test_sigint_finishes_step_saves_checkpoint_exit_130_and_resumes_identically(
    tmp_path: Path, data_dir: Path, reference: Path
) -> None:
    runs = tmp_path / "runs"
    run = runs / "int"
    proc = spawn(runs, data_dir, *TINY, "--run-id", "int")
    wait_for(run, proc, mid_epoch_step(1))
    proc.send_signal(signal.SIGINT)
    rc, out, err = finish(proc)
    assert rc == 130, err
    assert "Traceback" not in err
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "interrupted" and "checkpoint saved" in summary["error"]
    assert last_json(out)["status"] == "interrupted"
    ck = torch.load(run / "checkpoints" / (PHASE.replace("/", "__") + ".pt"), weights_only=True)
    # The checkpoint is where the process stopped, usually inside an epoch (then the epoch's
    # permutation is saved with it).
    assert ck["epoch"] < EPOCHS
    assert (ck["perm"] is not None) == (ck["step_in_epoch"] > 0)

    rc, out, err = finish(spawn(runs, data_dir, "resume", "int", "--json", "-q"))
    assert rc == 0, err
    resumed = [e for e in read_events(run) if e.get("event") == "resume"]
    assert [(e["epoch"], e["step_in_epoch"]) for e in resumed] == [(ck["epoch"], ck["step_in_epoch"])]
    assert_same_result(run, reference)


def test_second_sigint_exits_at_once_and_last_checkpoint_is_whole(
    tmp_path: Path, data_dir: Path, reference: Path
) -> None:
    runs = tmp_path / "runs"
    run = runs / "twice"
    proc = spawn(runs, data_dir, *TINY, "--run-id", "twice")
    wait_for(run, proc, mid_epoch_step(2))
    proc.send_signal(signal.SIGINT)
    # Signals sent back to back merge into one: wait until the first is being handled.
    first_line = proc.stderr.readline()
    assert "finishing the current step" in first_line
    proc.send_signal(signal.SIGINT)
    rc, _, err = finish(proc)
    assert rc == 130, err
    assert "again, exiting now" in err and "Traceback" not in err
    # No clean shutdown happened: the summary says running and the listing says stale.
    assert json.loads((run / "summary.json").read_text())["status"] == "running"
    ck = torch.load(run / "checkpoints" / (PHASE.replace("/", "__") + ".pt"), weights_only=True)
    assert ck["format"] == "ssltui-checkpoint"
    rc, out, err = finish(spawn(runs, data_dir, "resume", "twice", "--json", "-q"))
    assert rc == 0, err
    assert_same_result(run, reference)
    assert not list((run / "checkpoints").glob(".*.tmp"))


def test_sigterm_is_a_clean_stop_and_run_resume_finds_the_run(tmp_path: Path, data_dir: Path, reference: Path) -> None:
    runs = tmp_path / "runs"
    run = runs / "term"
    proc = spawn(runs, data_dir, *TINY, "--run-id", "term")
    wait_for(run, proc, mid_epoch_step(1))
    proc.send_signal(signal.SIGTERM)
    rc, out, err = finish(proc)
    assert rc == 130, err
    assert "SIGTERM" in err and json.loads((run / "summary.json").read_text())["status"] == "interrupted"
    # `ssltui run ... --resume` (same arguments) finds the unfinished run instead of a new one.
    rc, out, err = finish(spawn(runs, data_dir, *TINY, "--resume"))
    assert rc == 0, err
    assert last_json(out)["run_id"] == "term" and sorted(p.name for p in runs.iterdir()) == ["term"]
    assert_same_result(run, reference)
