"""SVG snapshots of every screen on fixed run data (tests/tui_fixtures.py) at 80x24 and 120x40.

Update after an intended change of a screen: `pytest tests/test_tui_snapshots.py --snapshot-update`
(then look at the SVGs under tests/__snapshots__/ before committing them).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.tui_fixtures import FAILED_ID, SMOKE_ID, STUDY_ID, live_drawn, make_fixture_runs

SIZES = [(80, 24), (120, 40)]
BOTH = pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
FIXTURE_PRESETS = Path(__file__).parent / "fixtures" / "presets"


@pytest.fixture
def fixed_env(tmp_path, monkeypatch):
    """Fixture runs, UTC dates, colour on, the launch screen's presets pinned to copies, no
    remembered launch choices."""
    runs = make_fixture_runs(tmp_path / "runs")
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("SSLTUI_RUNS_DIR", str(runs))
    monkeypatch.setenv("SSLTUI_PRESETS_DIR", str(FIXTURE_PRESETS))
    monkeypatch.setenv("SSLTUI_STATE_DIR", str(tmp_path / "state"))
    yield runs
    monkeypatch.undo()
    time.tzset()


def make_app(runs):
    from ssltui.tui.app import SsltuiApp

    return SsltuiApp(runs, reattach=False)


async def wait_for(pilot, condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("the screen did not get ready in time")
        await pilot.pause(0.05)
    await pilot.wait_for_scheduled_animations()
    await pilot.pause()


async def runs_ready(pilot) -> None:
    await wait_for(pilot, lambda: getattr(pilot.app.screen, "loaded", False))


@BOTH
def test_runs_screen(snap_compare, fixed_env, size):
    assert snap_compare(make_app(fixed_env), terminal_size=size, run_before=runs_ready)


def _launch(method: str = "supervised", **fields):
    async def before(pilot):
        from ssltui.tui.screens.launch import LaunchScreen

        await runs_ready(pilot)
        screen = LaunchScreen(method=method, data=None if method == "study" else "synthetic")
        await pilot.app.push_screen(screen)
        await wait_for(pilot, lambda: screen.params)
        for field, value in fields.items():
            screen.query_one(f"#{field}").value = value
            await wait_for(pilot, lambda: True)

    return before


@BOTH
def test_launch_screen(snap_compare, fixed_env, size):
    assert snap_compare(make_app(fixed_env), terminal_size=size, run_before=_launch())


def test_launch_screen_study(snap_compare, fixed_env):
    """A study: no evaluation row, values the parts disagree on say so; the smoke study's data."""
    assert snap_compare(make_app(fixed_env), terminal_size=(120, 40), run_before=_launch("study", preset="paper-smoke"))


def test_launch_screen_refuses_a_value_in_place(snap_compare, fixed_env):
    async def before(pilot):
        await _launch()(pilot)
        screen = pilot.app.screen
        table = screen.query_one("#params")
        table.focus()
        table.move_cursor(row=list(screen.params).index("supervised.lr"))
        await pilot.press("enter")
        editor = screen.query_one("#edit-value")
        editor.value = ""
        await pilot.press(*"-0.5", "enter")
        await pilot.pause()
        assert "supervised.lr" not in screen.edits  # refused, not taken

    assert snap_compare(make_app(fixed_env), terminal_size=(80, 24), run_before=before)


def _live(run_id):
    async def before(pilot):
        from ssltui.tui.screens.live import LiveScreen

        await runs_ready(pilot)
        screen = LiveScreen(run_id)
        await pilot.app.push_screen(screen)
        await wait_for(pilot, lambda: live_drawn(screen))

    return before


@BOTH
def test_live_screen_completed_study(snap_compare, fixed_env, size):
    assert snap_compare(make_app(fixed_env), terminal_size=size, run_before=_live(STUDY_ID))


def test_live_screen_interrupted_run(snap_compare, fixed_env):
    assert snap_compare(make_app(fixed_env), terminal_size=(80, 24), run_before=_live(SMOKE_ID))


def _results(tab: str, run_ids=(STUDY_ID,)):
    async def before(pilot):
        from ssltui.tui.screens.results import ResultsScreen

        await runs_ready(pilot)
        screen = ResultsScreen(list(run_ids))
        await pilot.app.push_screen(screen)
        await wait_for(pilot, lambda: screen.curves is not None)
        await pilot.press(tab)
        await wait_for(pilot, lambda: True)

    return before


@BOTH
def test_results_table(snap_compare, fixed_env, size):
    assert snap_compare(make_app(fixed_env), terminal_size=size, run_before=_results("t"))


def test_results_compare_three_runs(snap_compare, fixed_env):
    assert snap_compare(
        make_app(fixed_env), terminal_size=(120, 40), run_before=_results("t", (STUDY_ID, SMOKE_ID, FAILED_ID))
    )


@BOTH
def test_results_curves(snap_compare, fixed_env, size):
    assert snap_compare(make_app(fixed_env), terminal_size=size, run_before=_results("c", (STUDY_ID, SMOKE_ID)))


@BOTH
def test_results_feature_maps(snap_compare, fixed_env, size):
    assert snap_compare(make_app(fixed_env), terminal_size=size, run_before=_results("m"))


@BOTH
def test_log_screen(snap_compare, fixed_env, size):
    async def before(pilot):
        from ssltui.tui.screens.logview import LogScreen

        await runs_ready(pilot)
        screen = LogScreen(STUDY_ID)
        await pilot.app.push_screen(screen)
        await wait_for(pilot, lambda: len(screen.lines) > 10)

    assert snap_compare(make_app(fixed_env), terminal_size=size, run_before=before)


def _from_runs(key: str, screen: str):
    """Press `key` on the runs list and wait for `screen` (a dialog over the list)."""

    async def before(pilot):
        await runs_ready(pilot)
        await pilot.press(key)
        await wait_for(pilot, lambda: type(pilot.app.screen).__name__ == screen)

    return before


@BOTH
def test_help_screen(snap_compare, fixed_env, size):
    assert snap_compare(make_app(fixed_env), terminal_size=size, run_before=_from_runs("question_mark", "HelpScreen"))


@BOTH
def test_delete_asks_first(snap_compare, fixed_env, size):
    assert snap_compare(make_app(fixed_env), terminal_size=size, run_before=_from_runs("D", "Confirm"))
