"""Preset inheritance: `base = "NAME"` takes that preset's settings, and the file states only what
differs. The shipped presets resolve exactly as they did when each file stated everything
(tests/fixtures/resolved_presets.json, written from the presets before they were rewritten)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from itertools import combinations
from pathlib import Path

import pytest

from ssltui.core.errors import ConfigError
from ssltui.core.presets import _read_preset, list_presets, resolve

# One deliberate change since it was written: runtime.eval_batch_size became "auto" (it was 1024,
# 512 in the smoke presets), which picks the batch by device (test_config.py says why).
FIXTURE = Path(__file__).parent / "fixtures" / "resolved_presets.json"
SHIPPED = Path(__file__).resolve().parents[1] / "presets"


def test_every_shipped_preset_resolves_as_before_the_rewrite():
    before = json.loads(FIXTURE.read_text())
    for name, expected in before.items():
        plan = resolve(str(SHIPPED / f"{name}.toml"))
        # Sections the fixture predates (methods registered since, each with its own table) are
        # left out: a new method adds its section to every configuration.
        parts = [
            {k: v for k, v in p.model_dump(mode="json").items() if k in e}
            for p, e in zip(plan.parts, expected["parts"])
        ]
        now = {"description": plan.description, "data": plan.data, "parts": parts}
        assert len(plan.parts) == len(expected["parts"]) and now == expected, name


# What the shipped presets are based on: each states only what differs from its base, so what
# two rows must share (RotNet's pretraining in the paper study, SimCLR's for simclr-semi) is
# shared by construction.
SHIPPED_BASES = {
    "simclr-literal": "simclr-linear",
    "simclr-tuned": "simclr-linear",
    "simclr-semi": "simclr-linear",
    "rotnet-semi": "rotnet-linear",
    "rotnet-tuned": "rotnet-linear",
    "supervised-he": "supervised",
    "paper-tuned": "paper",
    "paper-smoke": "paper",
}


def _own(name: str) -> dict:
    """What a shipped preset's file itself states (its base not applied)."""
    return tomllib.loads((SHIPPED / f"{name}.toml").read_text(encoding="utf-8"))


def test_shipped_presets_are_written_on_their_bases():
    for name, base in SHIPPED_BASES.items():
        assert _own(name).get("base") == base, name


def test_a_shipped_preset_states_nothing_its_base_already_says():
    for path in sorted(SHIPPED.glob("*.toml")):
        own = _own(path.stem)
        if "base" not in own:
            continue
        inherited = _read_preset(SHIPPED / f"{own['base']}.toml")
        for key, value in own.items():
            if isinstance(value, dict) and isinstance(inherited.get(key), dict):
                same = [k for k, v in value.items() if k in inherited[key] and inherited[key][k] == v]
                assert not same, f"{path.stem} [{key}] repeats its base's {same}"
            else:
                assert key not in inherited or inherited[key] != value, f"{path.stem} repeats its base's {key}"


def test_no_two_shipped_run_presets_of_one_method_state_the_same_table():
    # A table stated identically by two presets of one method belongs in one of them, the other
    # inheriting it (presets of different methods cannot share a base).
    runs = {p.stem: _read_preset(p) for p in sorted(SHIPPED.glob("*.toml"))}
    runs = {name: raw for name, raw in runs.items() if "study" not in raw}
    for a, b in combinations(sorted(runs), 2):
        if runs[a].get("method") != runs[b].get("method"):
            continue
        own_a, own_b = _own(a), _own(b)
        for key, table in own_a.items():
            if isinstance(table, dict):
                assert own_b.get(key) != table, f"{a} and {b} both state the same [{key}]"


def test_rows_that_must_match_across_methods_do():
    # What cannot be inherited across methods is kept equal here: the paper's two linear rows
    # probe alike, and the two semi-supervised rows fine-tune alike (the presets say so).
    (simclr_linear,), (rotnet_linear,) = resolve("simclr-linear").parts, resolve("rotnet-linear").parts
    assert simclr_linear.linear == rotnet_linear.linear
    (simclr_semi,), (rotnet_semi,) = resolve("simclr-semi").parts, resolve("rotnet-semi").parts
    assert simclr_semi.semi == rotnet_semi.semi


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


@pytest.mark.parametrize(
    "files, fragment",
    [
        ({"a.toml": 'base = "nowhere"\nmethod = "simclr"\n'}, "base 'nowhere'"),
        ({"a.toml": 'base = "b"\n', "b.toml": 'base = "a"\n'}, "circular"),
        ({"a.toml": 'base = "a"\n'}, "circular"),
        ({"a.toml": "base = 3\n"}, "base must name a preset"),
        ({"a.toml": 'base = "paper"\nmethod = "simclr"\n'}, "a study's base is a study"),
    ],
)
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
    out = subprocess.run(
        [sys.executable, "-m", "ssltui", "run", "--preset", "a", "--device", "cpu"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert out.returncode == 2 and "circular" in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_a_base_is_looked_up_beside_its_preset_first(presets_dir, tmp_path):
    """A user's simclr-linear.toml does not change what a shipped preset built on it resolves to."""
    (presets_dir / "simclr-linear.toml").write_text('base = "supervised"\ndescription = "mine"\n')
    (tuned,) = resolve(str(Path(__file__).resolve().parents[1] / "presets" / "simclr-tuned.toml")).parts
    assert tuned.method == "simclr"
