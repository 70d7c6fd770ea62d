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
    from ssltui.core.presets import resolve
    from ssltui.core.runfile import plan_to_toml

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


@pytest.mark.parametrize("content, fragment", [
    (None, "no such file"),
    ('description = "a preset"\nmethod = "simclr"\n', "not a run configuration"),
    ("parts = [ {", "unreadable run configuration"),
    (b"\xff\xfe", "not UTF-8"),
    ('[[parts]]\nmethod = "simclr"\nlabels = [2.0]\n', "labels"),
])
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
