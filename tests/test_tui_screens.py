"""The screens as a person meets them, each driven by a pilot on the fixture runs: the filter, the
feature maps' image keys, a run deleted while shown, a crash's exit code, runs without a summary,
damaged files, a smoke preset's data, long errors, layouts at 80x24 and 120 columns, the header,
the launch form's presets, a run's warnings."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from tests.tui_fixtures import (
    FAILED_ID,
    SMOKE_ID,
    STUDY_ID,
    live_drawn,
    open_launch,
    open_results,
    run_app,
    screen_text,  # noqa: F401 - tui_store is a fixture
    shows,
    tui_store,
    wait_until,
)


async def open_live(app, pilot, run_id):
    from ssltui.tui.screens.live import LiveScreen

    screen = LiveScreen(run_id)
    await app.push_screen(screen)
    await wait_until(pilot, lambda: live_drawn(screen), 20, "the live screen")
    return screen


def test_typing_filters_from_the_first_key(tui_store):
    async def scenario(app, pilot):
        browser = app.screen
        for key in "abcd":  # typed slowly: the first key used to be selected, then replaced
            await pilot.press(key)
            await pilot.pause(0.2)
        assert browser.query_one("#filter").value == "abcd"
        await pilot.press("escape")
        await pilot.press(*"simclr")  # typed fast
        await pilot.pause()
        assert browser.query_one("#filter").value == "simclr"
        assert browser.query_one("#runs").row_count == 1 and browser.selected_id() == STUDY_ID

    run_app(tui_store, (80, 24), scenario)


def test_arrows_change_the_image_on_the_feature_maps_tab(tui_store):
    async def scenario(app, pilot):
        screen = await open_results(app, pilot, [STUDY_ID], "m")
        await pilot.press("right")
        await pilot.pause()
        assert screen.active == "maps" and screen.image == 1
        await shows(pilot, "image 2/4: automobile (test image #10)")
        await pilot.press("left", "left")
        await pilot.pause()
        assert screen.active == "maps" and screen.image == 3

    run_app(tui_store, (80, 24), scenario)


def test_a_run_deleted_while_shown_is_said_to_be_gone(tui_store):
    from ssltui.tui.screens.results import ResultsScreen
    from ssltui.tui.screens.runs import RunsScreen

    async def scenario(app, pilot):
        live = await open_live(app, pilot, SMOKE_ID)
        shutil.rmtree(tui_store / SMOKE_ID)
        await wait_until(pilot, lambda: live.status == "gone", 10, "the live screen to notice")
        await shows(pilot, "its folder was deleted or moved")
        await pilot.press("r")
        await wait_until(pilot, lambda: isinstance(app.screen, ResultsScreen), 5, "results")
        assert f"no run '{SMOKE_ID}'" in str(app.screen.query_one("#runs-note").render())
        await pilot.press("escape", "escape")
        await wait_until(pilot, lambda: isinstance(app.screen, RunsScreen), 5, "the runs list")
        browser = app.screen
        table = browser.query_one("#runs")
        table.move_cursor(row=[i.id for i in browser.infos].index(FAILED_ID))
        shutil.rmtree(tui_store / FAILED_ID)  # before the list refreshes
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, RunsScreen)  # no live screen of a missing run, no crash
        await wait_until(pilot, lambda: [i.id for i in browser.infos] == [STUDY_ID], 10, "the list to refresh")

    run_app(tui_store, (80, 24), scenario)


def test_the_app_exits_non_zero_when_it_crashes(tui_store):
    """A crash is no 'traceback and exit status 0': `ssltui` returns the app's return code."""
    from tests.conftest import REPO, cli_env

    code = (
        "import sys\nfrom textual.app import App\nfrom ssltui.tui import app as tapp\n"
        "run = App.run\nApp.run = lambda self, **kw: run(self, headless=True, **kw)\n"
        "def boom(self):\n    raise RuntimeError('boom')\n"
        "tapp.SsltuiApp.on_mount = boom\nsys.exit(tapp.run_tui())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env=cli_env(tui_store, tui_store.parent / "data"),
    )
    assert out.returncode == 1 and "boom" in out.stdout + out.stderr


def test_a_run_without_summary_reads_the_same_everywhere(tui_store):
    """No summary.json, no process: the list, the header and `x` all say damaged (not created/running)."""
    (tui_store / SMOKE_ID / "summary.json").unlink()

    async def scenario(app, pilot):
        browser = app.screen
        info = next(i for i in browser.infos if i.id == SMOKE_ID)
        assert info.status == "damaged" and info.error == "summary.json is missing"
        row = browser.query_one("#runs").get_row(SMOKE_ID)
        assert str(row[0]) == "damaged"
        live = await open_live(app, pilot, SMOKE_ID)
        header = screen_text(app).splitlines()[1]
        assert "· damaged ·" in header and "running" not in header and "completed" not in header
        await shows(pilot, "error: summary.json is missing")
        assert not live.check_action("cancel_run", ()) and live.check_action("resume", ())

    run_app(tui_store, (80, 24), scenario)


def test_a_cut_featuremaps_file_is_damaged_not_absent(tui_store):
    path = tui_store / STUDY_ID / "featuremaps.json"
    path.write_bytes(path.read_bytes()[:4096])

    async def scenario(app, pilot):
        await open_results(app, pilot, [STUDY_ID], "m")
        text = screen_text(app)
        assert "featuremaps.json is damaged: not valid JSON (cut short" in text
        assert "writes featuremaps.json when" not in text

    run_app(tui_store, (80, 24), scenario)


def test_choosing_a_smoke_preset_chooses_synthetic_data(tui_store):
    async def scenario(app, pilot):
        form = await open_launch(app, pilot)
        assert form.query_one("#data").value == "cifar10"  # simclr-linear: the paper's data
        form.query_one("#preset").value = "smoke"
        await pilot.pause()
        assert form.query_one("#data").value == "synthetic"
        form.query_one("#method").value = "study"
        await pilot.pause()
        form.query_one("#preset").value = "paper-smoke"
        await pilot.pause()
        assert form.query_one("#data").value == "synthetic" and form.request().labels == "0.01,0.1"
        form.query_one("#preset").value = "paper"
        await pilot.pause()
        assert form.query_one("#data").value == "cifar10"
        form.query_one("#data").value = "folder:/tmp"  # typed by hand: a preset change keeps it
        await pilot.pause()
        form.query_one("#preset").value = "paper-smoke"
        await pilot.pause()
        assert form.query_one("#data").value == "folder:/tmp"

    run_app(tui_store, (80, 24), scenario)


def _fail_with(tui_store, run_id, error):
    summary = json.loads((tui_store / run_id / "summary.json").read_text())
    summary["error"] = error
    (tui_store / run_id / "summary.json").write_text(json.dumps(summary))


DOWNLOAD_ERROR = (
    "could not download CIFAR-10 into /home/user/.cache/ssltui (URLError: <urlopen error [Errno -3] "
    "Temporary failure in name resolution>); without network use --data folder:PATH"
)


@pytest.mark.parametrize("width", [80, 120])
def test_a_long_error_is_wrapped_onto_its_own_lines(tui_store, width):
    _fail_with(tui_store, FAILED_ID, DOWNLOAD_ERROR)

    async def scenario(app, pilot):
        await open_live(app, pilot, FAILED_ID)
        await shows(pilot, "without network use --data folder:PATH")  # the fix at the error's end, whole

    run_app(tui_store, (width, 24), scenario)


def test_compared_run_ids_are_whole_at_120_columns(tui_store):
    async def scenario(app, pilot):
        await open_results(app, pilot, [STUDY_ID, SMOKE_ID, FAILED_ID])
        text = screen_text(app)
        for rid in (STUDY_ID, SMOKE_ID, FAILED_ID):
            assert rid in text

    run_app(tui_store, (120, 40), scenario)


def test_the_table_live_values_and_log_fit_80x24(tui_store):
    async def scenario(app, pilot):
        await open_live(app, pilot, SMOKE_ID)
        # The log tail loads in the background: wait for its last line (whole, not cut).
        text = await shows(pilot, "lr 0.0346 validation 57.3%")
        assert "supervised 10% s0" in text and "loss 1.008" in text  # the live loss value
        await pilot.press("escape")
        await open_results(app, pilot, [STUDY_ID])
        lines = screen_text(app).splitlines()
        header = next(ln for ln in lines if ln.lstrip().startswith("Model"))
        assert header.rstrip().endswith("Δ") and header.count("paper") == 2  # 1% and 10% paper columns
        assert any("83.64" in ln for ln in lines)  # the paper's 10% RotNet semi-supervised number

    run_app(tui_store, (80, 24), scenario)


def test_every_model_s_maps_can_be_seen_at_80x24(tui_store):
    async def scenario(app, pilot):
        await open_results(app, pilot, [STUDY_ID], "m")
        seen = set()
        for _ in range(4):
            text = screen_text(app)
            seen |= {m for m in ("supervised · seed 0", "simclr · seed 0", "rotnet · seed 0") if m in text}
            await pilot.press("v")
            await pilot.pause()
        assert seen == {"supervised · seed 0", "simclr · seed 0", "rotnet · seed 0"}  # RotNet's too

    run_app(tui_store, (80, 24), scenario)


def _study_events(tui_store, run_id, planned, done):
    """A running-looking study: run_start naming `planned` phases and `done` finished ones."""
    t = 1767268800.0
    events = [
        {
            "t": t,
            "event": "run_start",
            "run_id": run_id,
            "preset": "paper",
            "device": "cpu",
            "parts": 4,
            "phases": planned,
        }
    ]
    for k in range(done):
        ph = {
            "phase": f"p0-supervised/supervised/labels0.1/seed{k}",
            "kind": "supervised",
            "method": "supervised",
            "seed": k,
            "labels": 0.1,
            "evaluation": "supervised",
        }
        events += [
            {"t": t + k, "event": "phase_start", **ph, "epochs": 1, "steps_per_epoch": 1},
            {"t": t + k + 0.5, "event": "phase_end", **ph, "seconds": 0.5},
        ]
    (tui_store / run_id / "metrics.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))


def test_the_header_counts_the_planned_phases(tui_store):
    _study_events(tui_store, SMOKE_ID, planned=10, done=5)

    async def scenario(app, pilot):
        await open_live(app, pilot, SMOKE_ID)
        await shows(pilot, "5/10 phases done")

    run_app(tui_store, (120, 24), scenario)


def test_the_launch_form_has_no_blank_preset(tui_store):
    from textual.widgets import Select

    async def scenario(app, pilot):
        form = await open_launch(app, pilot)
        select = form.query_one("#preset", Select)
        assert not select._allow_blank and Select.BLANK not in [v for _, v in select._options]
        with pytest.raises(Exception):
            select.clear()  # no way to a form without a preset (and an empty table)

    run_app(tui_store, (80, 24), scenario)


GUARD_WARNING = (
    "simclr pretrain s0: kNN accuracy 11.0% after 20% of the epochs is within 5 points of a random "
    "encoder's (10.2%): the encoder is barely training; check the learning rate"
)


def test_the_run_s_view_shows_its_warnings(tui_store):
    """A warning (the SimCLR guard rail's) stays in the header, not only in the scrolling log."""
    with open(tui_store / STUDY_ID / "metrics.jsonl", "a", encoding="utf-8") as f:
        for message in ("an earlier warning", GUARD_WARNING):
            f.write(json.dumps({"t": 1767268900.0, "event": "log", "level": "warning", "message": message}) + "\n")

    async def scenario(app, pilot):
        await open_live(app, pilot, STUDY_ID)
        await shows(pilot, f"warning: {GUARD_WARNING} (+1 more: L shows the log)")  # whole, wrapped

    run_app(tui_store, (80, 24), scenario)
