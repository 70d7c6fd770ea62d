"""`ssltui sweep list` and `ssltui sweep show`: read a sweep without preparing its storage for
writing (no table creation, no schema migration check), so that they answer in well under a
second, and give the same report as a worker's full storage."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import REPO, cli_env

from tests.sweep_fixtures import SWEEP, make_fixture_sweeps

READ = """
import json, sys
from ssltui.cli.main import entry
for argv in (['ssltui', 'sweep', 'list', '--json'], ['ssltui', 'sweep', 'show', sys.argv[1], '--json']):
    sys.argv = argv
    try:
        entry()
    except SystemExit as e:
        assert e.code == 0, (argv, e.code)
heavy = sorted(m for m in ('alembic', 'ssltui.trainer', 'torch') if m in sys.modules)
print(json.dumps(heavy))
"""


def test_sweep_list_and_show_read_without_migrating_the_storage(tmp_path):
    runs = make_fixture_sweeps(tmp_path / "runs")
    proc = subprocess.run(
        [sys.executable, "-c", READ, SWEEP],
        capture_output=True,
        text=True,
        timeout=120,
        env=cli_env(runs, tmp_path / "data"),
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr
    listed, shown, heavy = (json.loads(line) for line in proc.stdout.splitlines())
    assert heavy == []  # alembic is what Optuna's storage set-up loads to check the schema
    assert {s["name"] for s in listed} == {SWEEP, "temperature"}
    assert shown["sweep"] == SWEEP and shown["best"]["params"]["linear.lr"] == 0.1
    # the same report as a worker's storage (tables made, schema checked) reads
    from ssltui.core.sweep.report import SweepReport
    from ssltui.core.sweep.study import Sweep, storage_url

    full = SweepReport.of(Sweep.open(storage_url(None, runs / "sweeps"), SWEEP))
    assert shown == json.loads(json.dumps(full.to_json()))


def test_sweep_show_of_a_missing_sweep_creates_nothing(tmp_path):
    runs = tmp_path / "runs"
    proc = subprocess.run(
        [sys.executable, "-m", "ssltui", "sweep", "show", "nope"],
        capture_output=True,
        text=True,
        timeout=60,
        env=cli_env(runs, tmp_path / "data"),
    )
    assert proc.returncode == 2 and "no sweep 'nope'" in proc.stderr
    assert not (runs / "sweeps" / "optuna.db").exists()


LIST = """
import json, sys
from ssltui.cli.main import entry
sys.argv = ['ssltui', 'sweep', 'list', '--json']
try:
    entry()
except SystemExit as e:
    assert e.code == 0, e.code
print(json.dumps(sorted(m for m in ('optuna', 'sqlalchemy', 'torch') if m in sys.modules)))
"""


def test_sweep_list_of_an_sqlite_storage_needs_no_optuna(tmp_path):
    """The listing is a few queries of the SQLite file: the standard library answers them, the
    same answer Optuna's storage gives."""
    runs = make_fixture_sweeps(tmp_path / "runs")
    proc = subprocess.run(
        [sys.executable, "-c", LIST],
        capture_output=True,
        text=True,
        timeout=120,
        env=cli_env(runs, tmp_path / "data"),
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr
    listed, heavy = (json.loads(line) for line in proc.stdout.splitlines())
    assert heavy == []
    from ssltui.core.sweep.report import _list, _read
    from ssltui.core.sweep.study import storage_url

    through_optuna = _read(storage_url(None, runs / "sweeps"), _list)
    assert listed == json.loads(json.dumps(through_optuna))
    assert {s["name"]: s["trials"] for s in listed} == {SWEEP: 7, "temperature": 2}
