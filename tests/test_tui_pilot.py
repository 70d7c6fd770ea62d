"""The app driven by a pilot against real training processes (tiny `smoke` runs on synthetic data).

Launching from the form, watching, cancelling, resuming and deleting a real run is the tmux
end-to-end test (tests/test_tui_tmux.py); here a run started outside the app is reattached to."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time

import pytest

from ssltui.core.store import RunDir
from tests.conftest import REPO, cli_env
from tests.tui_fixtures import isolated_state, screen_text, wait_until  # noqa: F401 - a fixture

pytestmark = pytest.mark.usefixtures("isolated_state")

# A smoke run that takes seconds on a busy CPU: 200 synthetic training images, 18 labels, 2 steps an epoch.
TINY = {"data.synthetic_train_per_class": "20", "data.synthetic_test_per_class": "10", "supervised.batch_size": "8"}


def plotted(chart) -> int:
    """Points the chart has drawn, read from its plotext figure (every curve's x values)."""
    return sum(len(xs) for xs in chart.plt.monitor.x)


def test_filter_mark_and_compare_fixture_runs(tmp_path, monkeypatch):
    """Typing filters the runs list; marked runs open one comparison table."""
    from ssltui.tui.app import SsltuiApp
    from ssltui.tui.screens.results import ResultsScreen
    from ssltui.tui.screens.runs import RunsScreen
    from tests.tui_fixtures import SMOKE_ID, STUDY_ID, make_fixture_runs

    runs = make_fixture_runs(tmp_path / "runs")

    async def scenario():
        app = SsltuiApp(runs, reattach=False)
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_until(pilot, lambda: isinstance(app.screen, RunsScreen) and app.screen.loaded, 20, "runs")
            browser = app.screen
            table = browser.query_one("#runs")
            assert [table.coordinate_to_cell_key((r, 0)).row_key.value for r in range(table.row_count)] == [
                r.id for r in browser.infos
            ]
            await pilot.press(*"interr")
            assert table.row_count == 1 and browser.selected_id() == SMOKE_ID
            await pilot.press("enter", "escape")  # leave the filter, then clear it
            assert table.row_count == 3
            table.move_cursor(row=[i.id for i in browser.infos].index(SMOKE_ID))
            await pilot.press("space")
            table.move_cursor(row=[i.id for i in browser.infos].index(STUDY_ID))
            await pilot.press("space", "c")
            await wait_until(pilot, lambda: isinstance(app.screen, ResultsScreen), 10, "the comparison")
            results = app.screen
            runs_line = results.query_one("#table-caption").content.plain
            assert SMOKE_ID in runs_line and STUDY_ID in runs_line  # both runs are in the table
            assert f"{SMOKE_ID}: interrupted" in str(results.query_one("#runs-note").content)

    asyncio.run(scenario())


def test_a_run_listed_before_its_summary_fills_in_when_the_summary_appears(tmp_path, monkeypatch):
    """A run is listed as soon as its folder and lock exist (`running`, nothing else known yet);
    when its summary.json is written the row shows its method and labels, its status unchanged."""
    import fcntl
    import json

    from ssltui.tui.app import SsltuiApp
    from ssltui.tui.screens.runs import RunsScreen
    from tests.tui_fixtures import _summary, make_fixture_runs

    runs = make_fixture_runs(tmp_path / "runs")
    new_id = "20991231-235959-smoke-abc123"
    (runs / new_id).mkdir()
    lock = os.open(runs / new_id / "run.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(lock, fcntl.LOCK_EX)  # a live process holds it: the run reads `running`

    def row(table) -> str:
        return " ".join(str(c) for c in table.get_row(new_id))

    async def scenario():
        app = SsltuiApp(runs, reattach=False)
        async with app.run_test(size=(120, 24)) as pilot:
            await wait_until(pilot, lambda: isinstance(app.screen, RunsScreen) and app.screen.loaded, 20, "runs")
            table = app.screen.query_one("#runs")
            assert row(table).split()[:2] == ["running", "-"]
            summary = _summary(new_id, "smoke", "running", ["rotnet"], ["linear"], [0.1], [0], [], time.time(), None)
            (runs / new_id / "summary.json").write_text(json.dumps(summary))
            await wait_until(
                pilot,
                lambda: row(table).split()[:3] == ["running", "rotnet", "10%"],
                10,
                "the row filled from the summary",
            )

    try:
        asyncio.run(scenario())
    finally:
        os.close(lock)


def _start_outside(runs_dir, data_dir, run_id: str) -> subprocess.Popen:
    """`ssltui run` started by the test, not the app: a long tiny run."""
    sets = [f"{k}={v}" for k, v in TINY.items()] + ["supervised.epochs=500"]
    argv = [
        sys.executable,
        "-m",
        "ssltui",
        "run",
        "--preset",
        "smoke",
        "--method",
        "supervised",
        "--labels",
        "0.1",
        "--seeds",
        "0",
        "--device",
        "cpu",
        "--data",
        "synthetic",
        "--run-id",
        run_id,
        "--quiet",
    ]
    for s in sets:
        argv += ["--set", s]
    return subprocess.Popen(
        argv,
        env=cli_env(runs_dir, data_dir),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
        cwd=REPO,
    )


def test_reattach_to_a_run_started_outside_and_cancel_it(runs_dir, data_dir):
    """A run started outside the app is found on start (live view), and the cancel key stops it
    cleanly: exit 130, marked interrupted, shown as interrupted in the browser."""
    from ssltui.tui.app import SsltuiApp
    from ssltui.tui.screens.common import Confirm
    from ssltui.tui.screens.live import LiveScreen
    from ssltui.tui.screens.runs import RunsScreen
    from ssltui.tui.widgets.charts import PhaseChart

    proc = _start_outside(runs_dir, data_dir, "outside")
    run = RunDir(runs_dir / "outside")
    try:
        deadline = time.monotonic() + 120
        while not (run.is_live() and run.metrics_path.exists()):
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "the outside run did not start"
            time.sleep(0.2)

        async def scenario():
            app = SsltuiApp(runs_dir)
            async with app.run_test(size=(80, 24)) as pilot:
                await wait_until(pilot, lambda: isinstance(app.screen, LiveScreen), 10, "reattach")
                live = app.screen
                assert live.run_id == "outside"
                await wait_until(
                    pilot,
                    lambda: plotted(live.query_one("#chart-loss", PhaseChart)) >= 1,
                    120,
                    "steps of the outside run",
                )
                assert live.status == "running"
                await pilot.press("x")
                await wait_until(pilot, lambda: isinstance(app.screen, Confirm), 5, "the confirmation")
                await pilot.press("y")
                await wait_until(pilot, lambda: "· interrupted" in screen_text(app), 120, "interrupted on screen")
                assert live.status == "interrupted"
                await pilot.press("escape")
                browser = app.screen
                assert isinstance(browser, RunsScreen)
                await wait_until(pilot, lambda: [i.status for i in browser.infos] == ["interrupted"], 20, "the browser")

        asyncio.run(scenario())
        assert proc.wait(timeout=60) == 130
        summary = run.read_summary()
        assert summary.status == "interrupted" and "SIGINT" in summary.error
        assert list(run.checkpoints_dir.glob("*.pt")), "a checkpoint is saved on cancel"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_app_never_imports_torch(runs_dir, data_dir, tmp_path):
    """Start the app headless in a fresh interpreter, open every screen, check sys.modules."""
    from tests.tui_fixtures import STUDY_ID, make_fixture_runs

    runs = make_fixture_runs(tmp_path / "fx")
    code = f"""
import asyncio, sys
from ssltui.tui.app import SsltuiApp
from ssltui.tui.screens.live import LiveScreen
from ssltui.tui.screens.results import ResultsScreen
async def main():
    app = SsltuiApp()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.5)
        await pilot.press("n"); await pilot.pause(0.5); await pilot.press("escape")
        await app.push_screen(LiveScreen({STUDY_ID!r})); await pilot.pause(0.5)
        await app.push_screen(ResultsScreen([{STUDY_ID!r}])); await pilot.pause(0.5)
        await pilot.press("m"); await pilot.pause(0.3)
        print("torch" in sys.modules, type(app.screen).__name__, len(app.screen_stack))
asyncio.run(main())
"""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=cli_env(runs, data_dir), cwd=REPO
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "ResultsScreen", "4"], out.stdout


def test_launch_refuses_bad_seeds_and_labels_in_place(tmp_path, monkeypatch):
    """Seeds, typed label fractions and the data source are checked as they are typed; launch
    refuses with the reason and starts nothing."""
    from ssltui.tui.app import SsltuiApp
    from ssltui.tui.screens.launch import LaunchScreen

    runs = tmp_path / "runs"

    async def scenario():
        app = SsltuiApp(runs, reattach=False)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause()
            screen = LaunchScreen(method="supervised", data="synthetic")
            await app.push_screen(screen)
            await wait_until(pilot, lambda: screen.params, 20, "the launch screen")
            error = screen.query_one("#launch-error")
            screen.query_one("#seeds").value = "0,x"
            await pilot.pause()
            assert "seeds: 'x' is not a non-negative integer" in str(error.render())
            screen.query_one("#seeds").value = "0"
            await pilot.pause()
            assert str(error.render()) == ""
            screen.query_one("#labels").value = "typed"
            await pilot.pause()
            typed = screen.query_one("#labels-typed")
            assert not typed.disabled and typed.has_focus
            await pilot.press(*"150%")
            assert "outside (0, 1]" in str(error.render())
            await pilot.press("ctrl+r")
            assert isinstance(app.screen, LaunchScreen) and "refused" in str(error.render())
            assert not runs.exists() or not any(runs.iterdir())  # nothing was started

    asyncio.run(scenario())
