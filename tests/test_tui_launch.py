"""One launch path: the app resolves the preset once per choice, writes the resolved configuration
and starts `ssltui run --config FILE`, which trains from the file without resolving anything again;
a launch that fails on its data leaves no run folder and speaks in the form's terms."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.tui_fixtures import run_app, tui_store, wait_until  # noqa: F401 - tui_store is a fixture


def smoke_config(tmp_path: Path, **sets: str) -> Path:
    from ssltui.core.config import run_options
    from ssltui.core.plan import plan_to_toml
    from ssltui.core.presets import resolve

    plan = resolve("smoke", method="supervised", sets=[f"{k}={v}" for k, v in sets.items()])
    plan.preset = "a-preset-that-does-not-exist"  # the file is the whole configuration: nothing is looked up
    path = tmp_path / "launch.toml"
    path.write_text(plan_to_toml(plan, run_options(data="synthetic", device="cpu")))
    return path


def test_run_config_trains_what_the_file_says(run_cli, runs_dir, tmp_path):
    path = smoke_config(tmp_path, **{"supervised.lr": "0.0123"})
    proc = run_cli("run", "--config", str(path), "--dry-run", "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "lr = 0.0123" in out["config"] and out["data"] == "synthetic" and out["device"] == "cpu"
    assert out["config"] == path.read_text()  # nothing resolved again: the same text, byte for byte
    assert not runs_dir.exists() or not any(runs_dir.iterdir())


@pytest.mark.parametrize(
    "content, fragment",
    [
        (None, "no such file"),
        ('description = "a preset"\nmethod = "simclr"\n', "not a run configuration"),
        ("parts = [ {", "unreadable run configuration"),
        (b"\xff\xfe", "not UTF-8"),
        ('[[parts]]\nmethod = "simclr"\nlabels = [2.0]\n', "labels"),
    ],
)
def test_run_config_that_is_not_a_run_configuration(run_cli, runs_dir, tmp_path, content, fragment):
    path = tmp_path / "bad.toml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    proc = run_cli("run", "--config", str(path))
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0] and "--config" in lines[0], proc.stderr
    assert not runs_dir.exists() or not any(runs_dir.iterdir())


def test_run_config_refuses_options_the_file_already_holds(run_cli, runs_dir, tmp_path):
    path = smoke_config(tmp_path)
    proc = run_cli("run", "--config", str(path), "--set", "supervised.lr=0.5")
    assert proc.returncode == 2 and "--config" in proc.stderr and "--set" in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


@pytest.fixture
def spawned(monkeypatch):
    """Processes the app would start: their argv, recorded; a short `sleep` stands in for each."""
    import subprocess

    from ssltui.tui import launch

    calls = []

    def fake_spawn(argv, log_path, kind):
        calls.append(argv)
        return launch.Launched(subprocess.Popen(["sleep", "30"]), kind)

    monkeypatch.setattr(launch, "spawn", fake_spawn)
    yield calls


def test_the_form_reads_the_preset_once_and_launches_run_config(tui_store, spawned, monkeypatch):
    from textual.widgets import DataTable

    from ssltui.core.config import run_options
    from ssltui.core.plan import plan_to_toml
    from ssltui.core.presets import resolve
    from ssltui.tui import launch
    from ssltui.tui.screens.live import LiveScreen
    from tests.tui_fixtures import open_launch

    reads = []
    real = launch.resolve
    monkeypatch.setattr(launch, "resolve", lambda *a, **k: reads.append(a) or real(*a, **k))

    async def scenario(app, pilot):
        form = await open_launch(app, pilot, method="supervised", preset="smoke", device="cpu")
        assert reads, "choosing the preset reads it"
        reads.clear()
        table = form.query_one("#params", DataTable)
        table.focus()
        table.move_cursor(row=list(form.params).index("supervised.lr"))
        await pilot.press("enter")
        await wait_until(pilot, lambda: form.editing == "supervised.lr", 10, "the editor")
        await pilot.press("ctrl+a", "ctrl+k", *"0.0123", "enter")  # each key is checked as it is typed
        await wait_until(pilot, lambda: form.edits.get("supervised.lr") == "0.0123", 10, "the edit")
        await pilot.press("tab")
        assert reads == [], f"the preset was read again while typing: {len(reads)} times"
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: isinstance(app.screen, LiveScreen), 20, "the live screen")
        argv = spawned[0]
        assert argv[3:5] == ["run", "--config"] and "--set" not in argv and "--preset" not in argv
        path = Path(argv[5])
        run_id = argv[argv.index("--run-id") + 1]
        assert path == tui_store / run_id / "launch.toml"
        want = resolve("smoke", method="supervised", sets=["supervised.lr=0.0123"])
        assert path.read_text() == plan_to_toml(want, run_options(data="synthetic", device="cpu"))

    run_app(tui_store, (120, 40), scenario)


def test_a_launch_that_fails_on_its_data_leaves_no_folder_and_speaks_the_form(tui_store, tmp_path):
    """A real `ssltui run --config` on an image folder without images: it fails before the run
    begins; the app removes the folder it made and shows the reason in the form's words."""
    from ssltui.tui.screens.launch import LaunchScreen
    from tests.tui_fixtures import open_launch

    empty = tmp_path / "no-images"
    empty.mkdir()
    before = sorted(p.name for p in tui_store.iterdir())

    async def scenario(app, pilot):
        form = await open_launch(app, pilot, method="supervised", preset="smoke", device="cpu")
        form.query_one("#data").value = f"folder:{empty}"
        form.edits["supervised.epochs"] = "1"
        await pilot.pause()
        await pilot.press("ctrl+r")
        await wait_until(
            pilot,
            lambda: isinstance(app.screen, LaunchScreen) and app.screen is not form and app.screen.params,
            90,
            "the form back with the reason",
        )
        again = app.screen
        reason = again.query_one("#launch-error").render().plain
        assert "the launch failed" in reason and str(empty) in reason, reason
        assert "--data" not in reason and "--config" not in reason and "ssltui: error" not in reason, reason
        assert again.edits.get("supervised.epochs") == "1"  # the edits as they were
        assert sorted(p.name for p in tui_store.iterdir()) == before  # no run folder left behind

    run_app(tui_store, (120, 40), scenario)
