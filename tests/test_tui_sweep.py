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
    await wait_until(
        pilot, lambda: isinstance(app.screen, SweepScreen) and app.screen.report is not None, "the sweep screen"
    )
    return app.screen


def test_sweep_screen_ranks_trials_charts_and_opens_runs(sweep_runs):
    """`w` opens the newest sweep; trials ranked by the validation metric, the chart has a point
    per complete trial, `p` charts the next parameter, enter opens a trial's run, a trial run
    elsewhere is named instead of opened; `s` goes to the other sweep."""
    from rich.text import Text

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

            # The columns fit their cells as soon as the table is filled, before any idle-time
            # measuring: a frame drawn first would otherwise cut "complete" to its header's width.
            screen._fill(screen.report)
            cells = [[table.get_cell_at((r, c)) for r in range(table.row_count)] for c in range(len(table.columns))]
            for column, column_cells in zip(table.ordered_columns, cells):
                assert not column.auto_width and column.width >= max(
                    Text(c).cell_len if isinstance(c, str) else c.cell_len for c in column_cells
                )

    import asyncio

    asyncio.run(scenario())


def test_a_trial_run_opens_its_sweep_and_running_trials_update(sweep_runs):
    """`w` on a trial's run opens that run's sweep; a running trial that reports and finishes
    while the screen is open moves into the ranking without a key press."""
    from optuna.trial import TrialState

    from ssltui.core.store import RunStore
    from ssltui.core.sweep.study import Sweep, storage_url
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


# ---------------------------------------------------------------- starting a sweep from the app

# The shipped smoke preset at its smallest, typed into the form's fields as on a command line
# (tests/sweep_fixtures.py `sweep_command`): 2 trials in seconds.
TINY = {
    "labels": "0.5",
    "seeds": "0",
    "sets": "data.synthetic_train_per_class=20; data.synthetic_test_per_class=10; supervised.batch_size=16; "
    "supervised.epochs=1; runtime.featuremaps=false",
}


def fill(form, **values: str) -> None:
    for field, value in values.items():
        form.query_one(f"#sweep-{field}").value = value


@pytest.mark.parametrize(
    "fields, expected",
    [
        # the researcher's command: ssltui sweep --preset simclr-tuned --labels 0.01 --set pretrain.epochs=20
        #   --param linear.lr=0.03,0.1,0.3 --metric val_acc --prune
        (
            dict(
                preset="simclr-tuned",
                params="linear.lr=0.03,0.1,0.3",
                labels="0.01",
                sets="pretrain.epochs=20",
                metric="val_acc",
                prune=True,
            ),
            dict(
                method="simclr",
                evaluation=["linear"],
                labels=[0.01],
                seeds=[0],
                epochs=20,
                knn_every=10,
                sampler="grid",
                trials=3,
                metric="val_acc",
                prune=True,
            ),
        ),  # the preset's method, evaluation, seeds
        (
            dict(
                preset="simclr-tuned",
                params="linear.lr=log:0.01:1; linear.weight_decay=0,1e-4",
                method="simclr",
                evaluation="linear, knn",
                labels="10%",
                seeds="0,1",
                sets="knn.every_epochs=2; pretrain.epochs=30",
                metric="knn_acc",
                sampler="random",
                trials="4",
            ),
            dict(
                method="simclr",
                evaluation=["linear", "knn"],
                labels=[0.1],
                seeds=[0, 1],
                epochs=30,
                knn_every=2,
                sampler="random",
                trials=4,
                metric="knn_acc",
                prune=False,
            ),
        ),
    ],
)
def test_the_forms_definition_is_the_one_ssltui_sweep_records(fields, expected, tmp_path, monkeypatch):
    """The form's argv through the CLI's own path (`ssltui sweep`, in-process, its trials not run)
    records the very definition the form validated, and every typed field is in it."""
    from ssltui.cli import sweep as cli_sweep
    from ssltui.cli.main import app
    from ssltui.core.store import RunStore
    from ssltui.core.sweep.study import Sweep, storage_url
    from ssltui.tui.newsweep import SweepRequest

    monkeypatch.delenv("SSLTUI_SWEEP_STORAGE", raising=False)
    monkeypatch.setattr(cli_sweep, "_work", lambda *args: 0)  # define and record the sweep, run no trial
    req = SweepRequest(data="synthetic", device="cpu", **fields)
    validated = req.validate()
    runs = tmp_path / "runs"
    assert app(args=req.argv("from-form", runs)[3:], prog_name="ssltui", standalone_mode=False) == 0
    recorded = Sweep.open(storage_url(None, RunStore(runs).sweeps_dir()), "from-form").definition
    assert recorded == validated

    part = recorded.parts[0]
    assert {
        "method": part["method"],
        "evaluation": part["evaluation"],
        "labels": part["labels"],
        "seeds": part["seeds"],
        "epochs": part["pretrain"]["epochs"],
        "knn_every": part["knn"]["every_epochs"],
        "sampler": recorded.sampler,
        "trials": recorded.trials,
        "metric": recorded.metric,
        "prune": recorded.prune,
    } == expected
    assert recorded.data == "synthetic"


def test_new_sweep_form_refuses_bad_specs_then_starts_a_real_sweep(sweep_runs, tmp_path, monkeypatch):
    """`n` on the sweep screen opens the form; bad parameters, labels, fixed overrides, a kNN metric
    on a supervised preset, a grid given a trial count, a taken name are each refused in place
    with the CLI's own reason and start nothing; the smoke preset made tiny in the form's labels,
    seeds and set fields starts a real `ssltui sweep` with pruning on, whose trials appear and finish
    on the screen, and whose recorded definition is the one the form showed."""
    import os
    import signal

    from ssltui.tui.app import SsltuiApp
    from ssltui.tui.newsweep import process_key, sweep_log
    from ssltui.tui.screens.newsweep import NewSweepScreen

    monkeypatch.setenv("SSLTUI_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    logs = sweep_runs / "sweeps"
    good = dict(params="supervised.lr=0.05,0.1", trials="", name="", metric="val_acc", **TINY)

    async def scenario():
        app = SsltuiApp(sweep_runs, reattach=False)
        async with app.run_test(size=(100, 30)) as pilot:
            screen = await open_sweep(pilot)
            await pilot.press("n")
            await wait_until(pilot, lambda: isinstance(app.screen, NewSweepScreen), "the new-sweep form")
            form = app.screen
            fill(form, preset="smoke", device="cpu")
            await pilot.pause(0.1)
            assert form.query_one("#sweep-data").value == "synthetic"  # the preset's data default
            assert form.query_one("#sweep-labels").placeholder == "0.1"  # blank: the preset's labels

            def note() -> str:
                return str(form.query_one("#sweep-form-note").render())

            await wait_until(pilot, lambda: SWEEP in form.taken, "the storage's sweeps in the form")
            for bad, wrong in (
                (dict(params="supervised.lrr=0.05,0.1"), "unknown key 'supervised.lrr'"),
                (dict(params="supervised.lr=0.05;x"), "expected KEY=SPEC"),
                (dict(trials="3"), "a grid runs each of its 2 points"),
                (dict(name=SWEEP), f"sweep '{SWEEP}' exists"),  # it would join it
                (dict(labels="0.01,abc"), "--labels: 'abc' is not a valid float"),
                (
                    dict(sets="supervised.epochs=1; runtime.featuremaps"),
                    "--set 'runtime.featuremaps': expected key=value",
                ),
                (dict(sets="supervised.epochz=1"), "unknown key 'supervised.epochz'"),
                (dict(metric="knn_acc"), "--metric knn_acc: the kNN monitor runs during pretraining"),
            ):
                fill(form, **{**good, **bad})
                await pilot.press("ctrl+r")
                await pilot.pause(0.1)
                assert app.screen is form and "refused:" in note() and wrong in note(), note()
                assert not app.processes and not list(logs.glob("*.log"))

            fill(form, **{**good, "name": "lr-from-app", "evaluation": "supervised", "prune": True})
            await pilot.pause(0.1)
            assert "grid, 2 trial(s) of smoke (supervised, supervised) on synthetic by val_acc, pruned" in note()
            expected = form.request().validate()
            await pilot.press("ctrl+r")
            await wait_until(pilot, lambda: app.screen is screen, "the sweep screen again")
            launched = app.processes[process_key("lr-from-app")]
            try:
                await wait_until(
                    pilot,
                    lambda: screen.report is not None and screen.report.name == "lr-from-app",
                    "the new sweep on the screen",
                    timeout=60,
                )
                await wait_until(
                    pilot,
                    lambda: sum(r.state == "complete" for r in screen.report.rows) == 2,
                    "both trials complete",
                    timeout=90,
                )
                assert launched.proc.wait(timeout=30) == 0
                assert screen.report.definition == expected and expected.prune
                assert expected.parts[0]["supervised"]["epochs"] == 1 and expected.parts[0]["labels"] == [0.5]
                assert "sweep lr-from-app" in str(screen.query_one("#sweep-summary").render())
                assert {r.params["supervised.lr"] for r in screen.report.rows} == {0.05, 0.1}
                assert all(r.run_id and (sweep_runs / r.run_id).is_dir() for r in screen.report.rows)
                log = sweep_log(app.store, "lr-from-app").read_text()
                assert "sweep started by the app" in log and "trial 1: complete" in log
            finally:
                if launched.alive():
                    os.killpg(launched.proc.pid, signal.SIGKILL)
                    launched.proc.wait()

    import asyncio

    asyncio.run(scenario())


def test_new_sweep_from_an_empty_store(tmp_path, monkeypatch):
    """With no sweep yet, `w` lands on a screen that says `n` starts one; enter in a field submits,
    and an empty parameter list is refused in place; esc leaves the form without a sweep."""
    from ssltui.tui.app import SsltuiApp
    from ssltui.tui.screens.newsweep import NewSweepScreen
    from ssltui.tui.screens.sweep import SweepScreen

    monkeypatch.delenv("SSLTUI_SWEEP_STORAGE", raising=False)

    async def scenario():
        app = SsltuiApp(tmp_path / "runs", reattach=False)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.press("w")
            await wait_until(pilot, lambda: isinstance(app.screen, SweepScreen) and app.screen.loaded, "the sweeps")
            screen = app.screen
            assert "n starts one" in str(screen.query_one("#sweep-summary").render())
            await pilot.press("n")
            await wait_until(pilot, lambda: isinstance(app.screen, NewSweepScreen), "the new-sweep form")
            await pilot.press("enter")  # the params field has the focus, and nothing in it
            await pilot.pause(0.1)
            note = str(app.screen.query_one("#sweep-form-note").render())
            assert "refused: params: a sweep needs at least one" in note
            await pilot.press("escape")
            await wait_until(pilot, lambda: app.screen is screen, "back on the sweep screen")
            assert screen.sweep_name is None and not app.processes

    import asyncio

    asyncio.run(scenario())


def test_new_sweep_form_snapshot(snap_compare, sweep_runs):
    async def before(pilot):
        await open_sweep(pilot)
        await pilot.press("n")
        await pilot.pause(0.3)
        pilot.app.screen.query_one("#sweep-preset").value = "simclr-tuned"
        # the researcher's command: ... --labels 0.01 --set pretrain.epochs=20 --param ... --prune
        fill(
            pilot.app.screen,
            params="linear.lr=0.03,0.1,0.3; linear.weight_decay=0,1e-4",
            labels="0.01",
            sets="pretrain.epochs=20",
            prune=True,
        )
        pilot.app.screen.query_one("#sweep-params").cursor_blink = False  # the cursor shown, whatever the timing
        await pilot.pause(0.2)

    from ssltui.tui.app import SsltuiApp

    assert snap_compare(SsltuiApp(sweep_runs, reattach=False), terminal_size=(80, 24), run_before=before)
