"""A run can carry a note and tags: written by the faces into notes.json (atomically, never by the
trainer), listed by `ssltui runs`, shown by `ssltui show`, and refused in one line when malformed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from ssltui.core.errors import ConfigError
from ssltui.core.notes import RunNotes
from ssltui.core.store import RunStore
from ssltui.core.summary import RunSummary


def _run(store: RunStore, status: str = "completed"):
    run = store.create("smoke")
    run.write_summary(RunSummary.new(run_id=run.id, preset="smoke", description="", group=run.id, status=status,
                                     methods=["supervised"], evaluations=["supervised"], labels=[0.1], seeds=[0],
                                     data="synthetic", started=time.time(), sweep=None))
    return run


def _ssltui(runs, *args):
    return subprocess.run([sys.executable, "-m", "ssltui", *args, "--runs-dir", str(runs)], capture_output=True,
                          text=True, timeout=60, env={**os.environ, "COLUMNS": "120"})


def test_notes_and_tags_round_trip_through_the_listing(tmp_path):
    store = RunStore(tmp_path / "runs")
    run = _run(store)
    assert run.read_notes() == RunNotes()
    run.write_notes(RunNotes(note="lr 0.3 diverged at epoch 40", tags=["baseline", "lr-sweep"]))
    (info,) = store.list()
    assert info.note == "lr 0.3 diverged at epoch 40" and info.tags == ["baseline", "lr-sweep"]
    assert info.to_json()["tags"] == ["baseline", "lr-sweep"]


@pytest.mark.parametrize("notes", [dict(tags=["has space"]), dict(tags=["x" * 40]), dict(tags=["a"] * 2),
                                   dict(note="x" * 5000), dict(tags=[f"t{i}" for i in range(40)])])
def test_a_malformed_note_or_tag_is_refused(notes):
    with pytest.raises(ConfigError) as err:
        RunNotes.checked(**notes)
    assert "\n" not in err.value.message


def test_a_damaged_notes_file_hides_nothing_else(tmp_path):
    store = RunStore(tmp_path / "runs")
    run = _run(store)
    run.notes_path.write_text("{not json")
    (info,) = store.list()
    assert info.status == "completed" and info.tags == [] and info.note == ""


def test_cli_note_and_tag(tmp_path):
    runs = tmp_path / "runs"
    run = _run(RunStore(runs))
    out = _ssltui(runs, "note", run.id, "first try")
    assert out.returncode == 0, out.stderr
    out = _ssltui(runs, "tag", run.id, "baseline", "cpu")
    assert out.returncode == 0, out.stderr
    out = _ssltui(runs, "tag", run.id, "cpu", "--remove")
    assert out.returncode == 0, out.stderr
    listed = json.loads(_ssltui(runs, "runs", "--json").stdout)
    assert listed[0]["note"] == "first try" and listed[0]["tags"] == ["baseline"]
    assert "first try" in _ssltui(runs, "show", run.id).stdout
    out = _ssltui(runs, "tag", run.id, "two words")
    assert out.returncode == 2 and "tag" in out.stderr and "Traceback" not in out.stderr
    out = _ssltui(runs, "runs")
    assert "baseline" in out.stdout
