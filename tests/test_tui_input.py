"""Typing into the runs list: keys that arrive in one burst (a paste, a fast typist over SSH) all
reach the filter, a word that starts with a bound key filters instead of acting, a paste filters;
deletion names the runs it deletes."""

from __future__ import annotations

import time

from textual import events

from tests.tui_fixtures import FAILED_ID, SMOKE_ID, STUDY_ID, run_app, shows, tui_store, wait_until  # noqa: F401


def burst(app, text: str) -> None:
    """Post every key of `text` at once, as the terminal driver does for one read of stdin: no key
    waits for the one before it to be handled."""
    for ch in text:
        key = {" ": "space", "-": "minus", ":": "colon", ".": "full_stop", "/": "slash"}.get(ch, ch)
        app.post_message(events.Key(key, ch))


def test_a_burst_of_keys_all_reach_the_filter(tui_store):
    from ssltui.tui.screens.runs import RunsScreen

    async def scenario(app, pilot):
        browser = app.screen
        flt = browser.query_one("#filter")
        for word in ("rotnet", "paper-smoke", "completed", "supervised 10%", "/rotnet"):
            browser.action_clear_filter()
            await pilot.pause()
            burst(app, word)
            await pilot.pause(0.3)
            assert app.screen is browser and isinstance(app.screen, RunsScreen), f"{word!r} ran a binding"
            assert flt.value == word.lstrip("/"), f"{word!r} became {flt.value!r}"
            assert not browser.marked
        app.post_message(events.Key("enter", "\r"))  # enter leaves the filter
        await pilot.pause(0.2)
        assert browser.focused is browser.query_one("#runs")

    run_app(tui_store, (120, 40), scenario)


def test_a_single_bound_key_still_acts(tui_store):
    from ssltui.tui.screens.results import ResultsScreen

    async def scenario(app, pilot):
        await pilot.press("c")
        await wait_until(pilot, lambda: isinstance(app.screen, ResultsScreen), 10, "compare")

    run_app(tui_store, (80, 24), scenario)


def test_a_pasted_run_id_filters(tui_store):
    async def scenario(app, pilot):
        browser = app.screen
        app.post_message(events.Paste(SMOKE_ID + "\n"))
        await pilot.pause(0.3)
        assert browser.query_one("#filter").value == SMOKE_ID
        table = browser.query_one("#runs")
        assert table.row_count == 1 and browser.selected_id() == SMOKE_ID
        app.post_message(events.Paste("-d4e5"))  # the filter has the focus: a second paste adds to it
        await pilot.pause(0.3)
        assert browser.query_one("#filter").value == SMOKE_ID + "-d4e5"

    run_app(tui_store, (80, 24), scenario)


def test_a_burst_sent_by_tmux_reaches_the_filter(tmp_path, data_dir):
    """The real app in tmux: each word is one `send-keys`, written to the terminal at once."""
    import os
    import shutil
    import sys

    import pytest

    from tests import test_tui_tmux as tm
    from tests.conftest import REPO, cli_env
    from tests.tui_fixtures import make_fixture_runs

    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed")
    runs = make_fixture_runs(tmp_path / "runs")
    env = cli_env(
        runs,
        data_dir,
        TZ="UTC",
        SSLTUI_STATE_DIR=str(tmp_path / "state"),
        SSLTUI_PRESETS_DIR=str(tm.FIXTURE_PRESETS),
        OMP_NUM_THREADS="1",
    )
    pane = tm.Pane(f"ssltui-burst-{os.getpid()}")
    try:
        pane.start(f"cd {REPO} && {sys.executable} -m ssltui; sleep 30", env)
        pane.wait_for("3 of 3 runs", "New run", timeout=60)
        for word, rows in (("completed", 1), ("rotnet", 1), ("paper-smoke", 0), ("smoke", 1)):
            pane.keys(word)
            # A frame drawn mid-burst may show part of the word: wait for the whole of it (a lost
            # key never gets there), then for the rows it leaves.
            deadline, screen = time.monotonic() + 30, ""
            while time.monotonic() < deadline:
                screen = pane.capture()
                if screen.splitlines()[1].strip() == word and f"{rows} of 3 runs" in screen:
                    break
                time.sleep(0.05)
            filter_line = screen.splitlines()[1].strip()
            assert filter_line == word, f"{word!r} became {filter_line!r}:\n{screen}"
            assert f"{rows} of 3 runs" in screen, screen
            assert "Table 1" not in screen and "launch a run" not in screen
            pane.keys("Escape")
            pane.wait_for("3 of 3 runs", "filter: type to narrow")
        pane.tmux("set-buffer", SMOKE_ID)  # a pasted run id (bracketed paste, as a terminal sends it)
        pane.tmux("paste-buffer", "-p", "-t", "e2e")
        screen = pane.wait_for("1 of 3 runs")
        assert screen.splitlines()[1].strip() == SMOKE_ID, screen
        pane.keys("Escape")
        pane.wait_for("3 of 3 runs")
        pane.keys("c")  # a bound key on its own still acts
        pane.wait_for("Table 1")
    finally:
        pane.kill()


def test_delete_names_the_marked_runs_and_the_cursor_run_left_out(tui_store):
    from ssltui.tui.screens.common import Confirm

    async def scenario(app, pilot):
        browser = app.screen
        table = browser.query_one("#runs")
        ids = lambda: [table.coordinate_to_cell_key((r, 0)).row_key.value for r in range(table.row_count)]  # noqa: E731
        for rid in (SMOKE_ID, STUDY_ID):  # marked, as a Compare leaves them
            table.move_cursor(row=ids().index(rid))
            await pilot.press("space")
        table.move_cursor(row=ids().index(FAILED_ID))
        await pilot.press("D")
        await wait_until(pilot, lambda: isinstance(app.screen, Confirm), 20, "the confirmation")
        await shows(pilot, "Delete 2 marked runs")
        text = " ".join(f"{app.screen.question} {app.screen.detail}".split())
        assert SMOKE_ID in text and STUDY_ID in text, text
        assert f"{FAILED_ID} (under the cursor) is not marked" in text, text
        await pilot.press("y")
        await wait_until(pilot, lambda: ids() == [FAILED_ID], 10, "the marked runs to go")
        assert (tui_store / FAILED_ID).is_dir()

    run_app(tui_store, (120, 40), scenario)


def test_the_list_says_it_is_loading_until_the_runs_arrive(tui_store, monkeypatch):
    """A store that takes long to list (hundreds of runs): the hint says it is loading, never
    'no runs yet … n: launch one' before the list is there."""
    import asyncio
    import threading

    from ssltui.core.store import RunStore
    from ssltui.tui.app import SsltuiApp

    release = threading.Event()
    real_list = RunStore.list

    def slow_list(self, *args, **kwargs):
        release.wait(20)
        return real_list(self, *args, **kwargs)

    monkeypatch.setattr(RunStore, "list", slow_list)

    async def main():
        app = SsltuiApp(tui_store, reattach=False)
        async with app.run_test(size=(80, 24)) as pilot:
            await shows(pilot, "loading runs")
            hint = app.screen.query_one("#runs-hint").render().plain
            assert "no runs yet" not in hint and "launch one" not in hint, hint
            release.set()
            await shows(pilot, "3 of 3 runs")

    asyncio.run(main())


def test_the_filter_understands_field_words():
    from pathlib import Path

    from ssltui.core.store import RunInfo
    from ssltui.tui.screens.runs import matches

    study = RunInfo(
        "20260101-120000-paper-a1b2c3",
        Path("x"),
        "completed",
        preset="paper",
        methods=["supervised", "simclr", "rotnet"],
        evaluations=["linear", "semi", "supervised"],
        labels=[0.01, 0.1],
        seeds=[0, 1],
    )
    smoke = RunInfo(
        "20260102-090000-smoke-d4e5f6",
        Path("y"),
        "interrupted",
        preset="smoke",
        methods=["supervised"],
        evaluations=["supervised"],
        labels=[0.1],
        seeds=[3],
    )
    assert matches(study, "method:simclr") and not matches(smoke, "method:simclr")
    assert matches(smoke, "method:sup") and not matches(smoke, "method:rotnet")
    for word in ("labels:0.01", "labels:1%", "label:0.01"):
        assert matches(study, word) and not matches(smoke, word), word
    assert matches(smoke, "labels:10%") and matches(study, "labels:0.1")
    assert matches(smoke, "status:interrupted") and not matches(study, "status:interrupted")
    assert matches(study, "eval:semi") and not matches(smoke, "eval:semi")
    assert matches(smoke, "seed:3") and not matches(study, "seed:3")
    assert matches(study, "preset:paper method:rotnet labels:1%")  # every word must hold
    assert not matches(study, "labels:banana")  # a value that is no fraction matches nothing
    assert matches(study, "12:00") or not matches(study, "12:00")  # not a field: plain text, no error


def test_a_run_that_ends_while_the_app_is_open_says_so(tui_store, monkeypatch):
    import dataclasses

    from tests.tui_fixtures import FAILED_ID, STUDY_ID

    async def scenario(app, pilot):
        browser = app.screen
        bells = []
        monkeypatch.setattr(app, "bell", lambda: bells.append(1))
        infos = list(browser.infos)
        running = [dataclasses.replace(i, status="running") if i.id in (STUDY_ID, FAILED_ID) else i for i in infos]
        browser.show_runs(running)  # seen training...
        await pilot.pause()
        assert not bells
        browser.show_runs(infos)  # ...then completed and failed
        await pilot.pause()
        messages = [n.message for n in app._notifications]
        assert any(STUDY_ID in m and "completed" in m for m in messages), messages
        assert any(FAILED_ID in m and "failed" in m for m in messages), messages
        assert len(bells) == 1  # one bell for the poll, however many ended
        browser.show_runs(infos)  # nothing new: no second notice
        await pilot.pause()
        assert len(bells) == 1

    run_app(tui_store, (120, 40), scenario)


def test_a_burst_of_bound_keys_alone_still_acts(tui_store):
    """Held-down j (key repeat piling up while the app is busy) moves the cursor; it is no word."""

    async def scenario(app, pilot):
        browser = app.screen
        table = browser.query_one("#runs")
        table.move_cursor(row=0)
        await pilot.pause()
        burst(app, "jj")
        await pilot.pause(0.3)
        assert browser.query_one("#filter").value == "" and table.cursor_row == 2
        burst(app, "kk")
        await pilot.pause(0.3)
        assert browser.query_one("#filter").value == "" and table.cursor_row == 0

    run_app(tui_store, (120, 40), scenario)


def test_running_runs_show_progress_and_eta(tui_store):
    import dataclasses

    from ssltui.core.store import RunDir
    from ssltui.tui.runstate import RunState
    from ssltui.tui.screens.runs import run_progress
    from ssltui.tui.watch import RunTail
    from tests.tui_fixtures import SMOKE_ID

    state = RunState()
    for e in RunTail(RunDir(tui_store / SMOKE_ID)).poll().events:
        state.apply(e)
    state.status = "running"
    t_last = max(p.t_last for p in state.phases.values())
    text = run_progress(state, now=t_last)
    # one phase of 8 epochs x 4 steps, stopped after 14 steps (2 s each): 44% done, 36 s to go
    assert text == "44% eta 0:36", text

    async def scenario(app, pilot):
        browser = app.screen
        infos = [dataclasses.replace(i, status="running") if i.id == SMOKE_ID else i for i in browser.infos]
        browser.show_runs(infos, {SMOKE_ID: "44% eta 0:36"})
        await pilot.pause()
        await shows(pilot, "running 44% eta 0:36")

    run_app(tui_store, (120, 40), scenario)
