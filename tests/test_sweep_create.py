"""A sweep's creation: a grid's size is checked before anything exists, a joiner never sees half
a grid, a creation killed half-way can be made again or removed (`ssltui sweep rm`)."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import cli_env

pytest.importorskip("optuna")
from ssltui.core.errors import ConfigError  # noqa: E402
from ssltui.core.presets import resolve  # noqa: E402
from ssltui.core.sweep import study as study_mod  # noqa: E402
from ssltui.core.sweep.space import make_definition, parse_params  # noqa: E402
from ssltui.core.sweep.study import Sweep  # noqa: E402

LRS = ",".join(f"{0.001 * (i + 1):g}" for i in range(50))
WDS = ",".join(f"{1e-5 * i:g}" for i in range(40))  # 50 x 40 = 2,000 points
BIG = ["--param", f"linear.lr={LRS}", "--param", f"linear.weight_decay={WDS}"]


def creator(runs_dir: Path, data_dir: Path, name: str) -> subprocess.Popen:
    args = [
        sys.executable,
        "-m",
        "ssltui",
        "sweep",
        "--preset",
        "smoke",
        "--method",
        "rotnet",
        "--evaluation",
        "linear",
        "--labels",
        "1.0",
        "--data",
        "synthetic",
        "--device",
        "cpu",
        "--json",
        "-q",
        "--name",
        name,
        *BIG,
    ]
    return subprocess.Popen(
        args,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(runs_dir, data_dir),
        stdin=subprocess.DEVNULL,
    )


def queued(db: Path) -> int:
    """Trials the creator has queued so far, read straight from the SQLite file."""
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0.2) as conn:
            return conn.execute("SELECT COUNT(*) FROM trials").fetchone()[0]
    except sqlite3.Error:
        return 0


def wait_queueing(proc: subprocess.Popen, db: Path, at_least: int = 20) -> None:
    deadline = time.monotonic() + 120
    while queued(db) < at_least:
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_a_million_point_grid_is_refused_before_anything_exists(run_cli, runs_dir: Path) -> None:
    values = ",".join(str(v) for v in range(1, 101))
    proc = run_cli(
        "sweep",
        "--preset",
        "smoke",
        "--method",
        "supervised",
        "--data",
        "synthetic",
        "--param",
        f"supervised.epochs={values}",
        "--param",
        f"supervised.batch_size={values}",
        "--param",
        f"supervised.min_steps={values}",
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "ssltui: error: --sampler grid: 1,000,000 points, more than 10,000; list fewer values, or use "
        "--sampler random or tpe with --trials N"
    ]
    assert not (runs_dir / "sweeps").exists()


def test_a_joiner_waits_for_the_whole_grid(runs_dir: Path, data_dir: Path, monkeypatch) -> None:
    """However long the queueing takes: the joiner waits on the creator's lock, not on a clock."""
    monkeypatch.setattr(study_mod, "JOIN_WAIT_SECONDS", 0.5, raising=False)
    db = runs_dir / "sweeps" / "optuna.db"
    proc = creator(runs_dir, data_dir, "big")
    try:
        wait_queueing(proc, db)
        joined = Sweep.open(f"sqlite:///{db}", "big")
        assert joined.definition.trials == 2000 and len(joined.study.get_trials()) >= 2000
    finally:
        proc.kill()
        proc.communicate()


def test_a_creation_killed_half_way_is_made_again_or_removed(run_cli, runs_dir: Path, data_dir: Path) -> None:
    db = runs_dir / "sweeps" / "optuna.db"
    url = f"sqlite:///{db}"
    proc = creator(runs_dir, data_dir, "half")
    wait_queueing(proc, db)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert 0 < queued(db) < 2000

    joined = run_cli("sweep", "--name", "half", timeout=120)
    assert joined.returncode == 2, joined.stderr
    assert joined.stderr.strip().splitlines() == [
        "ssltui: error: sweep 'half' was left half-made (its creation was stopped); rerun the command that "
        "created it, or remove it with `ssltui sweep rm half`"
    ]
    listed = run_cli("sweep", "list", "--json", timeout=120)
    assert listed.returncode == 0 and json.loads(listed.stdout) == []
    assert "sweep 'half' is being created, or was left half-made" in listed.stderr

    # The same name again: made whole.
    plan = resolve("smoke", method="rotnet", evaluation=["linear"], labels=[1.0])
    defn = make_definition(
        plan, parse_params(["linear.lr=0.1,0.2"]), None, None, "val_acc", False, 3, 1, None, "synthetic"
    )
    again = Sweep.start(url, "half", defn)
    assert [t.state.name for t in again.study.get_trials()] == ["WAITING", "WAITING"]

    removed = run_cli("sweep", "rm", "half", timeout=120)
    assert removed.returncode == 0, removed.stderr
    assert "removed sweep half (2 trials)" in removed.stdout
    with pytest.raises(ConfigError, match="no sweep 'half'"):
        Sweep.open(url, "half")
    gone = run_cli("sweep", "rm", "half", timeout=120)
    assert gone.returncode == 2 and "no sweep 'half'" in gone.stderr


def test_a_sweep_killed_mid_trial_and_rerun_at_once_is_not_completed(runs_dir: Path, data_dir: Path) -> None:
    """The killed worker's trial is still RUNNING (its heartbeat is seconds old): the rerun runs
    what is left and says the sweep is incomplete, naming the trial and when it can be retried."""
    from tests.sweep_fixtures import sweep_command

    args = sweep_command(4, "--param", "supervised.lr=0.1,0.05", "--name", "killed")
    env = cli_env(runs_dir, data_dir)
    proc = subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, stdin=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 240
    while not list(runs_dir.glob("*-killed-t0-*/checkpoints/*.pt")):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1]
        time.sleep(0.1)
    proc.kill()
    proc.communicate()
    again = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300, stdin=subprocess.DEVNULL)
    assert again.returncode == 0, again.stderr
    out = json.loads(again.stdout.strip().splitlines()[-1])
    assert out["status"] == "incomplete" and out["counts"] == {"complete": 1, "running": 1}
    [stale] = out["running"]
    assert stale["number"] == 0 and "-killed-t0-" in stale["run_id"]
    assert 0 <= stale["retry_in_s"] <= study_mod.GRACE_SECONDS
    assert "trial 0 is still marked running" in again.stderr and "retries it in" in again.stderr


def test_rm_refuses_a_sweep_whose_trial_is_running(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    plan = resolve("smoke", method="rotnet", evaluation=["linear"], labels=[1.0])
    defn = make_definition(
        plan, parse_params(["linear.lr=0.1,0.2"]), None, None, "val_acc", False, 3, 1, None, "synthetic"
    )
    sweep = Sweep.start(url, "busy", defn)
    assert sweep.next_trial() is not None  # its heartbeat is written at once
    with pytest.raises(ConfigError, match=r"trial 0 is running \(heartbeat \d+ s ago\); stop its worker first"):
        study_mod.remove_sweep(url, "busy")
    assert len(Sweep.open(url, "busy").study.get_trials()) == 2
