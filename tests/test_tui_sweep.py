"""The sweep screen driven by a pilot on fixed sweeps (tests/sweep_fixtures.py), and its
snapshot at 80x24.

Update the snapshot after an intended change: `pytest tests/test_tui_sweep.py --snapshot-update`.
"""

from __future__ import annotations

import time

import pytest

pytest.importorskip("optuna")
from tests.sweep_fixtures import OTHER, REMOTE_RUN, SWEEP, make_fixture_sweeps  # noqa: E402
from tests.tui_fixtures import SMOKE_ID, STUDY_ID  # noqa: E402


@pytest.fixture
def sweep_runs(tmp_path, monkeypatch):
    runs = make_fixture_sweeps(tmp_path / "runs")
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("SSLTUI_SWEEP_STORAGE", raising=False)
    monkeypatch.setenv("SSLTUI_RUNS_DIR", str(runs))
    yield runs
    monkeypatch.undo()
    time.tzset()


async def wait_until(pilot, condition, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.1)


def table_numbers(screen) -> list[int]:
    table = screen.query_one("#trials")
    return [int(table.coordinate_to_cell_key((r, 0)).row_key.value) for r in range(table.row_count)]


def plotted(chart) -> int:
    return sum(len(xs) for xs in chart.plt.monitor.x)


async def open_sweep(pilot, run_id: str | None = None):
    """From the runs list (the cursor on `run_id`), `w`; the sweep screen once it has a report."""
    from ssltui.tui.screens.runs import RunsScreen
    from ssltui.tui.screens.sweep import SweepScreen

    app = pilot.app
    await wait_until(pilot, lambda: isinstance(app.screen, RunsScreen) and app.screen.loaded, "the runs list")
    if run_id is not None:
        app.screen.query_one("#runs").move_cursor(row=[i.id for i in app.screen.infos].index(run_id))
    await pilot.press("w")
    await wait_until(pilot, lambda: isinstance(app.screen, SweepScreen) and app.screen.report is not None,
                     "the sweep screen")
    return app.screen


def test_sweep_screen_ranks_trials_charts_and_opens_runs(sweep_runs):
    """`w` opens the newest sweep; trials ranked by the validation metric, the chart has a point
    per complete trial, `p` charts the next parameter, enter opens a trial's run, a trial run
    elsewhere is named instead of opened; `s` goes to the other sweep."""
    from ssltui.tui.app import SsltuiApp
    from ssltui.tui.screens.live import LiveScreen

    async def scenario():
        app = SsltuiApp(sweep_runs, reattach=False)
        async with app.run_test(size=(100, 30)) as pilot:
            screen = await open_sweep(pilot, STUDY_ID)  # not a trial run: the newest sweep
            assert screen.report.name == SWEEP
            assert table_numbers(screen) == [0, 2, 5, 1, 4, 6, 3]  # complete by value, running, pruned
            chart = screen.query_one("#effect")
            assert plotted(chart) == 5
            notes = str(screen.query_one("#sweep-notes").render())
            assert "chosen: trial 0" in notes and "45.12" in notes  # the chosen trial's test accuracy only
            await pilot.press("p")
            assert screen.param_index == 1 and plotted(chart) == 5

            table = screen.query_one("#trials")
            table.move_cursor(row=table_numbers(screen).index(4))
            await pilot.press("enter")
            await pilot.pause(0.2)
            assert app.screen is screen and REMOTE_RUN not in [d.id for d in app.store.iter_dirs()]
            table.move_cursor(row=table_numbers(screen).index(0))
            await pilot.press("enter")
            await wait_until(pilot, lambda: isinstance(app.screen, LiveScreen), "the trial's live screen")
            assert app.screen.run_id == STUDY_ID
            await pilot.press("escape")
            await wait_until(pilot, lambda: app.screen is screen, "back to the sweep")

            await pilot.press("s")
            await wait_until(pilot, lambda: screen.report.name == OTHER, "the other sweep")
            assert table_numbers(screen) == [1, 0] and plotted(chart) == 2

    import asyncio

    asyncio.run(scenario())


def test_a_trial_run_opens_its_sweep_and_running_trials_update(sweep_runs):
    """`w` on a trial's run opens that run's sweep; a running trial that reports and finishes
    while the screen is open moves into the ranking without a key press."""
    from optuna.trial import TrialState

    from ssltui.engine.sweep.study import Sweep, storage_url
    from ssltui.engine.store import RunStore
    from ssltui.tui.app import SsltuiApp

    async def scenario():
        app = SsltuiApp(sweep_runs, reattach=False)
        async with app.run_test(size=(100, 30)) as pilot:
            screen = await open_sweep(pilot, SMOKE_ID)  # its summary says: trial 1 of OTHER
            assert screen.report.name == OTHER
            await pilot.press("s")
            await wait_until(pilot, lambda: screen.report.name == SWEEP, "the other sweep")
            assert [r.state for r in screen.report.rows if r.number == 6] == ["running"]

            sweep = Sweep.open(storage_url(None, RunStore(sweep_runs).sweeps_dir()), SWEEP)  # a worker elsewhere
            trial = next(t for t in sweep.study.get_trials() if t.number == 6)
            sweep.storage.set_trial_intermediate_value(sweep.trial_id(trial), 100_004, 0.47)
            sweep.storage.set_trial_state_values(sweep.trial_id(trial), TrialState.COMPLETE, [0.4800])
            await wait_until(pilot, lambda: table_numbers(screen)[0] == 6, "the finished trial ranked first")
            assert "best #6 48.00%" in str(screen.query_one("#sweep-summary").render())

    import asyncio

    asyncio.run(scenario())


def test_sweep_screen_snapshot(snap_compare, sweep_runs):
    async def before(pilot):
        await open_sweep(pilot)
        await pilot.pause(0.3)

    from ssltui.tui.app import SsltuiApp

    assert snap_compare(SsltuiApp(sweep_runs, reattach=False), terminal_size=(80, 24), run_before=before)
