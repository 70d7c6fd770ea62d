"""What a person does in the app, each driven by a pilot on the fixture runs:
sort, move, delete and archive with a confirmation, resume, a launch form that remembers and
shows the focused field, studies, the first seconds of a launch, the log viewer, curves (the sweep
screen's own tests are in test_tui_sweep.py)."""

from __future__ import annotations

import subprocess
import tomllib
from pathlib import Path

import pytest

from tests.tui_fixtures import (
    FAILED_ID,
    SMOKE_ID,
    STUDY_ID,
    open_launch,
    open_results,
    run_app,
    screen_text,
    shows,  # noqa: F401 - tui_store is a fixture
    tui_store,
    wait_until,
)


@pytest.fixture
def spawned(monkeypatch):
    """Processes the app would start: their argv, recorded; a short `sleep` stands in for each."""
    from ssltui.tui import launch

    calls = []

    def fake_spawn(argv, log_path, kind):
        calls.append((argv, log_path.parent.name, kind))  # a run's process.log: <runs>/<id>/process.log
        return launch.Launched(subprocess.Popen(["sleep", "30"]), kind)

    monkeypatch.setattr(launch, "spawn", fake_spawn)
    yield calls


def row_ids(browser) -> list[str]:
    table = browser.query_one("#runs")
    return [table.coordinate_to_cell_key((r, 0)).row_key.value for r in range(table.row_count)]


def test_sort_and_move_with_the_keyboard(tui_store):
    async def scenario(app, pilot):
        browser = app.screen
        assert row_ids(browser) == [FAILED_ID, SMOKE_ID, STUDY_ID]  # newest first
        await pilot.press("o")
        assert browser.sort == "oldest" and row_ids(browser) == [STUDY_ID, SMOKE_ID, FAILED_ID]
        await pilot.press("o", "o", "o")
        assert browser.sort == "best accuracy" and row_ids(browser)[0] == STUDY_ID
        await shows(pilot, "3 of 3 runs, by best accuracy")
        await pilot.press("o")
        table = browser.query_one("#runs")
        await pilot.press("G")
        assert table.cursor_row == 2
        await pilot.press("k")
        assert table.cursor_row == 1
        await pilot.press("g")
        assert table.cursor_row == 0
        await pilot.press("j", "end")
        assert table.cursor_row == 2
        await pilot.press("home")
        assert table.cursor_row == 0

    run_app(tui_store, (80, 24), scenario)


def test_q_and_escape_go_back_from_every_screen(tui_store):
    from ssltui.tui.screens.runs import RunsScreen

    async def scenario(app, pilot):
        for key, back in (
            ("enter", "q"),
            ("enter", "escape"),
            ("c", "q"),
            ("L", "q"),
            ("L", "escape"),
            ("question_mark", "q"),
            ("n", "escape"),
        ):
            await pilot.press(key)
            await wait_until(pilot, lambda: not isinstance(app.screen, RunsScreen), 10, f"the screen of {key}")
            await pilot.pause(0.2)
            await pilot.press(back)
            await wait_until(pilot, lambda: isinstance(app.screen, RunsScreen), 10, f"{back} back from {key}")

    run_app(tui_store, (80, 24), scenario)


def test_delete_and_archive_ask_first(tui_store):
    from ssltui.tui.screens.common import Confirm

    async def scenario(app, pilot):
        browser = app.screen
        table = browser.query_one("#runs")
        table.move_cursor(row=row_ids(browser).index(FAILED_ID))
        await pilot.press("D")
        await wait_until(pilot, lambda: isinstance(app.screen, Confirm), 20, "the confirmation")
        await pilot.pause()
        await shows(pilot, f"Delete {FAILED_ID}?", "are removed for")
        await pilot.press("n")
        await pilot.pause(0.3)
        assert (tui_store / FAILED_ID).is_dir()  # kept
        await pilot.press("D")
        await wait_until(pilot, lambda: isinstance(app.screen, Confirm), 20, "the confirmation")
        await pilot.press("y")
        await wait_until(pilot, lambda: FAILED_ID not in row_ids(browser), 10, "the run to go")
        assert not (tui_store / FAILED_ID).exists()
        # two marked runs archived at once
        for rid in (SMOKE_ID, STUDY_ID):
            table.move_cursor(row=row_ids(browser).index(rid))
            await pilot.press("space")
        await pilot.press("A")
        await wait_until(pilot, lambda: isinstance(app.screen, Confirm), 20, "the confirmation")
        await pilot.pause()
        await shows(pilot, "Archive 2 marked runs:")
        await pilot.press("y")
        await wait_until(pilot, lambda: not row_ids(browser), 10, "the list to empty")
        assert sorted(p.name for p in (tui_store / ".archive").iterdir()) == [STUDY_ID, SMOKE_ID]
        await shows(pilot, "no runs yet")

    run_app(tui_store, (80, 24), scenario)


def test_resume_an_interrupted_run_from_the_list(tui_store, spawned):
    from ssltui.tui.screens.live import LiveScreen

    async def scenario(app, pilot):
        browser = app.screen
        browser.query_one("#runs").move_cursor(row=row_ids(browser).index(STUDY_ID))
        await pilot.press("R")  # a completed run does not resume
        await pilot.pause(0.2)
        assert not spawned and not isinstance(app.screen, LiveScreen)
        browser.query_one("#runs").move_cursor(row=row_ids(browser).index(SMOKE_ID))
        await pilot.press("R")
        await wait_until(pilot, lambda: isinstance(app.screen, LiveScreen), 20, "the live screen")
        argv, run_id, kind = spawned[0]
        assert argv[1:5] == ["-m", "ssltui", "resume", SMOKE_ID] and kind == "resume" and run_id == SMOKE_ID
        assert argv[argv.index("--runs-dir") + 1] == str(tui_store) and "--quiet" in argv
        live = app.screen
        # until the process takes the run over, the header says it is resuming and what it does
        await wait_until(pilot, lambda: "resuming: Python is importing torch" in screen_text(app), 20, "resuming")
        assert "· resuming" in screen_text(app).splitlines()[1] and live.check_action("cancel_run", ())

    run_app(tui_store, (80, 24), scenario)


def test_the_first_seconds_of_a_launch_say_what_happens(tui_store, spawned):
    """Launch a study from the form; before any file is written the header says 'starting'."""
    from ssltui.tui.screens.live import LiveScreen

    async def scenario(app, pilot):
        await open_launch(app, pilot, method="study", preset="paper-smoke", device="cpu")
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: isinstance(app.screen, LiveScreen), 20, f"the live screen, not {app.screen}")
        argv, run_id, kind = spawned[0]
        assert kind == "run" and "--method" not in argv and "--preset" not in argv
        config = tomllib.loads(Path(argv[argv.index("--config") + 1]).read_text())
        assert config["preset"] == "paper-smoke" and config["data"] == "synthetic"
        assert all(part["labels"] == [0.01, 0.1] for part in config["parts"])
        await wait_until(pilot, lambda: "starting: Python is importing torch" in screen_text(app), 20, "starting")
        assert "· starting" in screen_text(app).splitlines()[1] and "0%" not in screen_text(app)

    run_app(tui_store, (80, 24), scenario)


def test_the_launch_form_remembers_and_shows_the_focused_field(tui_store, spawned, tmp_path):
    from textual.widgets import Label

    from ssltui.tui.screens.runs import RunsScreen

    async def scenario(app, pilot):
        form = await open_launch(app, pilot)
        assert form.query_one("#label-method", Label).has_class("-focused")  # the method has the focus
        await pilot.press("tab")
        assert form.query_one("#label-labels", Label).has_class("-focused")
        assert not form.query_one("#label-method", Label).has_class("-focused")
        for field, value in (("method", "rotnet"), ("preset", "smoke"), ("seeds", "3, 4"), ("device", "cpu")):
            form.query_one(f"#{field}").value = value
            await pilot.pause()
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: spawned, 20, "the launch")
        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.screen, RunsScreen), 20, "the runs list")
        again = (await open_launch(app, pilot)).request()
        assert (again.method, again.preset, again.seeds, again.device, again.data) == (
            "rotnet",
            "smoke",
            "3, 4",
            "cpu",
            "synthetic",
        )
        app.screen.query_one("#preset").value = "rotnet-linear"  # smoke's synthetic was no hand-typed choice
        await pilot.pause()
        assert app.screen.query_one("#data").value == "cifar10"
        assert (tmp_path / "state" / "launch.json").exists()

    run_app(tui_store, (80, 24), scenario)


def test_the_log_viewer_shows_both_files_and_finds_text(tui_store):
    from ssltui.tui.screens.logview import LogScreen

    (tui_store / SMOKE_ID / "process.log").write_text("──── ssltui run started by the app\nwarning: a line\n")

    async def scenario(app, pilot):
        browser = app.screen
        browser.query_one("#runs").move_cursor(row=row_ids(browser).index(SMOKE_ID))
        await pilot.press("L")
        await wait_until(pilot, lambda: isinstance(app.screen, LogScreen) and app.screen.lines, 10, "the log")
        logs = app.screen
        assert logs.lines[-1] == "run interrupted: stopped by SIGINT"
        await shows(pilot, "run.log · 2 lines")
        await pilot.press("f")
        await wait_until(
            pilot, lambda: logs.lines == ["──── ssltui run started by the app", "warning: a line"], 10, "process.log"
        )
        await pilot.press("slash", *"warning", "enter")
        await pilot.pause()
        assert logs.match == 1
        await shows(pilot, "'warning': 1 lines")

    run_app(tui_store, (80, 24), scenario)


def test_curves_of_compared_runs_on_one_chart(tui_store):
    from ssltui.tui.widgets.charts import OverlayChart

    async def scenario(app, pilot):
        screen = await open_results(app, pilot, [STUDY_ID, SMOKE_ID], "c")
        assert screen.kinds() == ["pretrain", "supervised", "linear", "semi"]
        await pilot.press("right")  # supervised phases of both runs, one chart
        await pilot.pause()
        chart = screen.query_one("#curve-loss", OverlayChart)
        assert len(chart.plt.monitor.x) == 5  # the study's four supervised phases and the smoke run's
        await shows(pilot, "1 supervised 10% s1", "2 supervised 10% s0")

    run_app(tui_store, (80, 24), scenario)


def test_help_lists_every_screen_s_keys_and_scrolls_at_80x24(tui_store):
    from ssltui.tui.screens.help import help_table

    text = "\n".join(str(row) for row in help_table().columns[1]._cells)
    for key in ("R", "D", "A", "L", "o", "f", "v", "c", "w"):
        assert key in text.split("\n")

    async def scenario(app, pilot):
        await pilot.press("question_mark")
        await pilot.pause(0.3)
        await shows(pilot, "ssltui keys")
        await pilot.press("j", "j", "G")
        await pilot.pause(0.3)
        await shows(pilot, "ctrl+q")  # the last rows are reachable

    run_app(tui_store, (80, 24), scenario)
