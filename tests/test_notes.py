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
    run.write_summary(
        RunSummary.new(
            run_id=run.id,
            preset="smoke",
            description="",
            group=run.id,
            status=status,
            methods=["supervised"],
            evaluations=["supervised"],
            labels=[0.1],
            seeds=[0],
            data="synthetic",
            started=time.time(),
            sweep=None,
        )
    )
    return run


def _ssltui(runs, *args):
    return subprocess.run(
        [sys.executable, "-m", "ssltui", *args, "--runs-dir", str(runs)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "120"},
    )


def test_notes_and_tags_round_trip_through_the_listing(tmp_path):
    store = RunStore(tmp_path / "runs")
    run = _run(store)
    assert run.read_notes() == RunNotes()
    run.write_notes(RunNotes(note="lr 0.3 diverged at epoch 40", tags=["baseline", "lr-sweep"]))
    (info,) = store.list()
    assert info.note == "lr 0.3 diverged at epoch 40" and info.tags == ["baseline", "lr-sweep"]
    assert info.to_json()["tags"] == ["baseline", "lr-sweep"]


@pytest.mark.parametrize(
    "notes",
    [
        dict(tags=["has space"]),
        dict(tags=["x" * 40]),
        dict(tags=["a"] * 2),
        dict(note="x" * 5000),
        dict(tags=[f"t{i}" for i in range(40)]),
    ],
)
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


def test_the_app_edits_a_run_s_note_and_tags_and_filters_by_tag(tmp_path, monkeypatch):
    from tests.tui_fixtures import SMOKE_ID, STUDY_ID, make_fixture_runs, run_app, wait_until

    monkeypatch.setenv("SSLTUI_STATE_DIR", str(tmp_path / "state"))
    runs = make_fixture_runs(tmp_path / "runs")

    async def scenario(app, pilot):
        from ssltui.tui.screens.common import EditNotes

        browser = app.screen
        table = browser.query_one("#runs")
        table.move_cursor(row=table.get_row_index(SMOKE_ID))
        await pilot.press("e")
        await wait_until(pilot, lambda: isinstance(app.screen, EditNotes), 10, "the notes form")
        app.screen.query_one("#note").value = "the baseline to beat"
        app.screen.query_one("#tags").value = "bad tag!"
        await pilot.press("enter")
        await pilot.pause(0.2)
        assert isinstance(app.screen, EditNotes)  # refused in place, nothing written
        assert "tag" in str(app.screen.query_one("#edit-notes-help").render())
        assert not (runs / SMOKE_ID / "notes.json").exists()
        app.screen.query_one("#tags").value = "baseline cpu"
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.screen is browser, 10, "back to the runs")
        saved = json.loads((runs / SMOKE_ID / "notes.json").read_text())
        assert saved == {"note": "the baseline to beat", "tags": ["baseline", "cpu"]}
        await wait_until(pilot, lambda: any(i.tags for i in browser.infos), 10, "the list re-read")
        browser.query_one("#filter").value = "tag:baseline"
        await wait_until(pilot, lambda: table.row_count == 1, 10, "only the tagged run")
        assert table.get_row_index(SMOKE_ID) == 0 and STUDY_ID not in [r.value for r in table.rows]

    run_app(runs, (120, 40), scenario)
