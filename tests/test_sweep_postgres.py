"""Two workers share one sweep through a real PostgreSQL server (Optuna's RDB storage), as two
machines would: each its own run store, both `ssltui sweep --name N --storage postgresql://...`.
Every grid point runs exactly once, and each trial's run lives in the store of the worker that
ran it.

The server: $SSLTUI_TEST_POSTGRES_URL (.ci/run starts a throw-away cluster and sets it), else a
throw-away cluster started here with .ci/postgres; the test skips only when neither works.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest
from conftest import REPO, cli_env, last_json

from ssltui.core.sweep.report import SweepReport

pytest.importorskip("optuna")
from tests.sweep_fixtures import sweep_command  # noqa: E402

GRID = [0.1, 0.05, 0.03, 0.02, 0.01, 0.005]


@pytest.fixture(scope="module")
def postgres_url():
    url = os.environ.get("SSLTUI_TEST_POSTGRES_URL")
    if url:
        yield url
        return
    # Under /tmp itself: the server may run as the postgres user, who cannot enter pytest's dirs.
    where = tempfile.mkdtemp(prefix="ssltui-pg-")
    start = subprocess.run(
        [str(REPO / ".ci" / "postgres"), "start", where], capture_output=True, text=True, timeout=120
    )
    if start.returncode != 0:
        pytest.skip(
            f"no PostgreSQL server could be started ({start.stderr.strip() or start.stdout.strip()}); "
            f".ci/run installs Debian's postgresql and sets SSLTUI_TEST_POSTGRES_URL"
        )
    try:
        yield start.stdout.strip().split("=", 1)[1].strip("'")
    finally:
        subprocess.run([str(REPO / ".ci" / "postgres"), "stop", where], timeout=120)


@pytest.mark.slow
def test_two_workers_share_a_sweep_and_run_every_grid_point_once(postgres_url, tmp_path, data_dir):
    name = f"pg-{uuid.uuid4().hex[:8]}"
    args = sweep_command(
        2, "--param", "supervised.lr=" + ",".join(map(str, GRID)), "--name", name, "--storage", postgres_url, "--quiet"
    )
    stores = [tmp_path / "machine-a", tmp_path / "machine-b"]
    workers = [
        subprocess.Popen(
            args,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=cli_env(store, data_dir),
            stdin=subprocess.DEVNULL,
        )
        for store in stores
    ]
    outputs = [w.communicate(timeout=900) for w in workers]
    for w, (_out, err) in zip(workers, outputs):
        assert w.returncode == 0, err
        assert "Traceback" not in err
    ran = [last_json(out)["worker"] for out, _ in outputs]
    assert all(ran), [len(r) for r in ran]  # both workers took trials
    values = sorted(t["params"]["supervised.lr"] for r in ran for t in r)
    assert values == sorted(GRID)  # every grid point, each by exactly one worker
    assert all(t["state"] == "complete" for r in ran for t in r)

    from ssltui.core.sweep.study import Sweep

    report = SweepReport.of(Sweep.open(postgres_url, name))
    assert report.counts() == {"complete": len(GRID)} and len(report.rows) == len(GRID)
    for store, trials in zip(stores, ran):  # each trial's run is in its own worker's store, and only there
        local = {p.name for p in Path(store).iterdir() if (p / "summary.json").is_file()}
        assert local == {t["run_id"] for t in trials}


@pytest.fixture
def own_postgres():
    """A server of this test's own, which it stops in the middle of a trial: (url, stop)."""
    where = tempfile.mkdtemp(prefix="ssltui-pg-")
    script = str(REPO / ".ci" / "postgres")
    start = subprocess.run([script, "start", where], capture_output=True, text=True, timeout=120)
    if start.returncode != 0:
        pytest.skip(f"no PostgreSQL server could be started ({start.stderr.strip() or start.stdout.strip()})")

    def stop() -> None:
        subprocess.run([script, "stop", where], capture_output=True, timeout=120)

    try:
        yield start.stdout.strip().split("=", 1)[1].strip("'"), stop
    finally:
        stop()


def test_a_lost_server_is_one_line_exit_3_and_the_json_still_printed(own_postgres, tmp_path, data_dir):
    url, stop_server = own_postgres
    runs = tmp_path / "runs"
    args = sweep_command(30, "--param", "supervised.lr=0.1,0.05", "--name", "lost", "--storage", url, "--quiet")
    proc = subprocess.Popen(
        args,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(runs, data_dir),
        stdin=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 240
    while not list(runs.glob("*-lost-t0-*/checkpoints/*.pt")):  # the first trial is training
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.1)
    stop_server()
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 3, err
    assert len(err.strip().splitlines()) == 1 and err.startswith("ssltui: error: lost the sweep storage "), err
    assert "postgres@" in err and "Traceback" not in err and "exceeding max length" not in err
    doc = last_json(out)
    assert (
        doc["status"] == "failed" and doc["sweep"] == "lost" and doc["error"] == err.strip()[len("ssltui: error: ") :]
    )
    # The trial's run stopped at a checkpoint: it resumes once the server is back.
    [run] = list(runs.glob("*-lost-t0-*"))
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "interrupted" and "lost the sweep storage" in summary["error"]
