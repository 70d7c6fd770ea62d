"""Preset inheritance: `base = "NAME"` takes that preset's settings, and the file states only what
differs. The shipped presets resolve exactly as they did when each file stated everything
(tests/fixtures/resolved_presets.json, written from the presets before they were rewritten)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ssltui.core.errors import ConfigError
from ssltui.core.presets import list_presets, resolve

FIXTURE = Path(__file__).parent / "fixtures" / "resolved_presets.json"
SHIPPED = Path(__file__).resolve().parents[1] / "presets"


def test_every_shipped_preset_resolves_as_before_the_rewrite():
    before = json.loads(FIXTURE.read_text())
    for name, expected in before.items():
        plan = resolve(str(SHIPPED / f"{name}.toml"))
        # Sections the fixture predates (methods registered since, each with its own table) are
        # left out: a new method adds its section to every configuration.
        parts = [{k: v for k, v in p.model_dump(mode="json").items() if k in e}
                 for p, e in zip(plan.parts, expected["parts"])]
        now = {"description": plan.description, "data": plan.data, "parts": parts}
        assert len(plan.parts) == len(expected["parts"]) and now == expected, name


@pytest.fixture
def presets_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("SSLTUI_PRESETS_DIR", str(tmp_path))
    return tmp_path


def test_a_preset_takes_its_base_s_settings_and_overrides_some(presets_dir):
    (presets_dir / "mine.toml").write_text('base = "simclr-linear"\ndescription = "mine"\n[pretrain]\nlr = 0.7\n')
    (mine,) = resolve("mine").parts
    (base,) = resolve("simclr-linear").parts
    assert mine.pretrain.lr == 0.7 and mine.description == "mine"
    assert mine.pretrain.model_dump(exclude={"lr"}) == base.pretrain.model_dump(exclude={"lr"})
    assert mine.simclr == base.simclr and mine.linear == base.linear and mine.evaluation == base.evaluation


@pytest.mark.parametrize("files, fragment", [
    ({"a.toml": 'base = "nowhere"\nmethod = "simclr"\n'}, "base 'nowhere'"),
    ({"a.toml": 'base = "b"\n', "b.toml": 'base = "a"\n'}, "circular"),
    ({"a.toml": 'base = "a"\n'}, "circular"),
    ({"a.toml": 'base = 3\n'}, "base must name a preset"),
    ({"a.toml": 'base = "paper"\nmethod = "simclr"\n'}, "a study's base is a study"),
])
def test_a_bad_base_is_one_line(presets_dir, files, fragment):
    for name, text in files.items():
        (presets_dir / name).write_text(text)
    with pytest.raises(ConfigError) as err:
        resolve("a")
    assert fragment in err.value.message and "\n" not in err.value.message


def test_a_preset_nested_thousands_deep_is_refused_not_a_crash(presets_dir):
    (presets_dir / "deep.toml").write_text("x = " + "[" * 5000 + "]" * 5000 + "\n")
    warnings: list[str] = []
    names = [p.name for p in list_presets(warnings.append)]
    assert "deep" not in names and "supervised" in names
    assert any("nested too deeply" in w for w in warnings)
    with pytest.raises(ConfigError, match="nested too deeply"):
        resolve("deep")


def test_cli_a_circular_base_exits_2_and_creates_nothing(presets_dir, tmp_path):
    (presets_dir / "a.toml").write_text('base = "b"\n')
    (presets_dir / "b.toml").write_text('base = "a"\n')
    env = {**os.environ, "SSLTUI_RUNS_DIR": str(tmp_path / "runs")}
    out = subprocess.run([sys.executable, "-m", "ssltui", "run", "--preset", "a", "--device", "cpu"],
                         capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 2 and "circular" in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
