"""ssltui/view: one format per quantity, and user text that is shown as text, never as markup
or terminal control codes, in the CLI's tables and in the TUI."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time

import pytest

from ssltui.core.store import RunStore, atomic_write_json
from ssltui.view import format as fmt
from ssltui.view.tables import run_accuracy
from tests.conftest import REPO

NASTY_GROUP = "a[/b]"
NASTY_PRESET = "[/]p [bold"
NASTY_ERROR = "boom [/b] \x1b[31mred\x07 [link=file:///x]x\r\nsecond line"


def test_numbers_fractions_cells_and_diffs():
    assert fmt.pct(0.4820) == "48.20" and fmt.pct(None) == "-" and fmt.pct(float("nan")) == "-"
    assert fmt.number(48.2, 1) == "48.2" and fmt.number(True) == "-"
    assert [fmt.label_fraction(f) for f in (0.01, 0.1, 0.005, 1.0)] == ["1%", "10%", "0.5%", "100%"]
    assert fmt.label_fractions([0.01, 0.1]) == "1%,10%" and fmt.label_fractions([]) == "-"
    assert fmt.cell(55.0, 7.0711) == "55.00 ± 7.07" and fmt.cell(55.0, None) == "55.00"
    assert fmt.cell(None, None) == "-" and fmt.cell(float("inf"), 1.0) == "-"
    assert fmt.diff(4.456) == "+4.46" and fmt.diff(-1.15) == "-1.15" and fmt.diff(None) == "-"


def test_durations_and_timestamps(monkeypatch):
    assert [fmt.duration(s) for s in (3723, 123, 0.4, None, -1, float("nan"))] == [
        "1:02:03",
        "2:03",
        "0:00",
        "-",
        "-",
        "-",
    ]
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    try:
        assert fmt.timestamp(1767268800.0) == "2026-01-01 12:00"
        assert fmt.timestamp(1767268800.0, short=True) == "01-01 12:00"
        assert fmt.timestamp(None) == "-" and fmt.timestamp(0) == "-"
    finally:
        monkeypatch.undo()
        time.tzset()


def test_plain_writes_control_characters_out():
    assert fmt.plain(NASTY_ERROR) == "boom [/b] \\x1b[31mred\\x07 [link=file:///x]x second line"
    assert fmt.plain("a\tb\nc", one_line=False) == "a\tb\nc"
    assert fmt.plain("abcdef", limit=4) == "abc…" and fmt.plain(None) == ""
    assert fmt.plain("x\ud800y") == "x\ufffdy"


def test_run_accuracy_is_the_best_method_per_fraction_over_distinct_seeds():
    res = [
        {"method": "simclr", "evaluation": "linear", "labels": 0.1, "seed": 0, "test_acc": 0.5},
        {"method": "simclr", "evaluation": "linear", "labels": 0.1, "seed": 0, "test_acc": 0.6},  # resumed
        {"method": "simclr", "evaluation": "linear", "labels": 0.01, "seed": 0, "test_acc": 0.3},
        {"method": "rotnet", "evaluation": "linear", "labels": 0.1, "seed": 0, "test_acc": 0.4},
        {"method": "rotnet", "evaluation": "semi", "labels": 0.1, "seed": 0, "test_acc": float("nan")},
    ]
    assert run_accuracy(res) == "1% 30.0 10% 60.0 (+1)"
    assert run_accuracy([]) == "-" and run_accuracy(res[-1:]) == "-"


def _nasty_run(root) -> str:
    store = RunStore(root)
    rd = store.create("paper")
    atomic_write_json(
        rd.summary_path,
        {
            "run_id": rd.id,
            "preset": NASTY_PRESET,
            "description": "[bold never closed",
            "group": NASTY_GROUP,
            "status": "failed",
            "error": NASTY_ERROR,
            "methods": ["simclr"],
            "evaluations": ["linear"],
            "labels": [0.1],
            "seeds": [0],
            "data": "synthetic [/i]",
            "device": "cpu [/]",
            "started": 1767268800.0,
            "timings": {"pretrain": 1.0},
            "results": [{"method": "simclr", "evaluation": "linear", "labels": 0.1, "seed": 0, "test_acc": 0.5}],
        },
    )
    return rd.id


def _nasty_preset(tmp_path):
    presets = tmp_path / "presets"
    presets.mkdir()
    smoke = (REPO / "tests" / "fixtures" / "presets" / "smoke.toml").read_text()
    (presets / "nasty.toml").write_text(
        smoke.replace(smoke.splitlines()[0], 'description = "[/b] [bold] \\u001b[2J cleared?"')
    )
    return presets


def test_cli_shows_user_text_as_text(run_cli, runs_dir, tmp_path):
    run_id = _nasty_run(runs_dir)
    runs = run_cli("runs", COLUMNS="160")
    assert runs.returncode == 0, runs.stderr
    assert NASTY_GROUP in runs.stdout and run_id in runs.stdout and "\x1b" not in runs.stdout
    table = run_cli("table", NASTY_GROUP)
    assert table.returncode == 0, table.stderr
    assert "50.00" in table.stdout and "synthetic [/i]" in table.stdout and "cpu [/]" in table.stdout
    md = run_cli("table", NASTY_GROUP, "--format", "markdown")
    assert md.returncode == 0 and "synthetic [/i]" in md.stdout
    show = run_cli("show", run_id)
    assert show.returncode == 0, show.stderr
    assert NASTY_PRESET in show.stdout and "\\x1b[31mred\\x07 [link=file:///x]x second line" in show.stdout
    assert "\x1b" not in show.stdout and "\x07" not in show.stdout
    presets = run_cli("presets", SSLTUI_PRESETS_DIR=str(_nasty_preset(tmp_path)), COLUMNS="200")
    assert presets.returncode == 0, presets.stderr
    assert "[/b] [bold] \\x1b[2J cleared?" in presets.stdout and "\x1b" not in presets.stdout


def test_tui_runs_list_and_results_show_user_text_as_text(tmp_path):
    """The runs list, its filter and the results screen; and a compared run deleted meanwhile."""
    from ssltui.tui.app import SsltuiApp
    from ssltui.tui.screens.results import ResultsScreen
    from ssltui.tui.screens.runs import RunsScreen

    runs = tmp_path / "runs"
    run_id = _nasty_run(runs)

    async def scenario():
        app = SsltuiApp(runs, reattach=False)
        async with app.run_test(size=(120, 40)) as pilot:
            deadline = time.monotonic() + 20
            while not (isinstance(app.screen, RunsScreen) and app.screen.loaded):
                assert time.monotonic() < deadline, "the runs list did not load"
                await pilot.pause(0.1)
            table = app.screen.query_one("#runs")
            assert table.row_count == 1 and str(table.get_row(run_id)[3]) == "10% 50.0"
            await pilot.press("slash", *"a[/b", "enter")  # the group typed into the filter
            assert table.row_count == 1
            await pilot.press("c")
            deadline = time.monotonic() + 10
            while not isinstance(app.screen, ResultsScreen):
                assert time.monotonic() < deadline, "the results screen did not open"
                await pilot.pause(0.1)
            await pilot.pause()
            note = str(app.screen.query_one("#runs-note").content)
            assert note == f"{run_id}: failed ({fmt.plain(NASTY_ERROR)})"
            caption = app.screen.query_one("#table-caption").content.plain
            assert "synthetic [/i]" in caption and "cpu [/]" in caption
            # results of a run deleted meanwhile are a note, not a crash
            screen = ResultsScreen([run_id, "20260101-000000-gone-000000"])
            await app.push_screen(screen)
            await pilot.pause()
            assert app.screen is screen and run_id in screen.query_one("#table-caption").content.plain
            assert "20260101-000000-gone-000000: no run" in str(screen.query_one("#runs-note").content)

    asyncio.run(scenario())


@pytest.mark.parametrize("module", ["ssltui.view.format", "ssltui.view.tables", "ssltui.view.featuremaps"])
def test_view_imports_neither_torch_nor_a_face(module):
    code = (
        f"import json, sys, {module}\nprint(json.dumps([m for m in ('torch', 'textual', 'typer') if m in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == []
