"""Every key is read: the resolved configuration holds only the sections a run's parts read, and a
key typed by the user (`--set`, `--param`) that no part reads is refused in one line, exit 2.
Values are single-line TOML literals: a newline or a trailing comment is refused, never dropped."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib

import pytest

from ssltui.core.errors import ConfigError
from ssltui.core.presets import resolve
from ssltui.core.sweep.space import define_sweep, parse_params


def _ssltui(*args: str, tmp_path) -> subprocess.CompletedProcess:
    env = {**os.environ, "SSLTUI_RUNS_DIR": str(tmp_path / "runs"), "SSLTUI_DATA_DIR": str(tmp_path / "data")}
    return subprocess.run([sys.executable, "-m", "ssltui", *args], capture_output=True, text=True, timeout=120, env=env)


@pytest.mark.parametrize(
    "preset, method, key",
    [
        ("supervised", None, "linear.lr=5"),
        ("supervised", None, "pretrain.epochs=3"),
        ("supervised", None, "simclr.temperature=0.2"),
        ("smoke", "rotnet", "simclr.temperature=0.2"),
        ("rotnet-linear", None, "semi.lr=0.3"),
    ],
)
def test_a_key_no_part_reads_is_refused_naming_who_reads_it(preset, method, key):
    with pytest.raises(ConfigError) as err:
        resolve(preset, method=method, sets=[key])
    message = err.value.message
    section = key.split(".")[0]
    assert key.split("=")[0] in message and "no part of this run reads" in message
    assert "\n" not in message
    assert section in message.split("reads")[-1]  # names the section (and who would read it)


def test_keys_the_run_reads_are_accepted():
    resolve("supervised", sets=["supervised.lr=0.1", "data.val_fraction=0.2", "runtime.workers=1"])
    resolve("simclr-linear", sets=["pretrain.lr=0.5", "simclr.temperature=0.2", "knn.k=50", "linear.lr=0.3"])
    resolve("rotnet-linear", sets=["rotnet.crop_flip=false", "linear.lr=0.3"])


def test_a_study_accepts_a_key_one_of_its_parts_reads():
    resolve("paper", sets=["semi.lr=0.02"])  # RotNet's semi-supervised part reads it


def test_one_unread_key_among_read_ones_is_refused():
    with pytest.raises(ConfigError, match="no part of this run reads"):
        resolve("supervised", sets=["supervised.lr=0.1", "knn.k=5"])


def test_the_resolved_configuration_holds_only_the_sections_its_parts_read():
    from ssltui.core.config import run_options
    from ssltui.core.plan import plan_to_toml

    doc = tomllib.loads(plan_to_toml(resolve("supervised"), run_options()))
    (part,) = doc["parts"]
    assert set(part) == {"description", "method", "evaluation", "labels", "seeds", "data", "supervised", "runtime"}
    doc = tomllib.loads(plan_to_toml(resolve("rotnet-linear"), run_options()))
    assert {k for k, v in doc["parts"][0].items() if isinstance(v, dict)} == {
        "data",
        "pretrain",
        "rotnet",
        "linear",
        "runtime",
    }


@pytest.mark.parametrize(
    "value",
    ["supervised.lr=0.5\nsupervised.epochs=1", "supervised.lr=0.5\r", "supervised.lr=0.5 # x", "description=run #3"],
)
def test_a_value_is_one_line_without_a_comment(value):
    with pytest.raises(ConfigError) as err:
        resolve("supervised", sets=[value])
    assert "\n" not in err.value.message


def test_a_quoted_hash_is_text():
    (part,) = resolve("supervised", sets=['description="run #3"']).parts
    assert part.description == "run #3"


def test_a_sweep_over_a_key_the_run_never_reads_is_refused():
    with pytest.raises(ConfigError, match="no part of this run reads"):
        define_sweep("smoke", parse_params(["linear.lr=0.01,0.1"]), method="supervised")


def test_cli_refuses_an_unread_key_with_exit_2_and_creates_nothing(tmp_path):
    out = _ssltui("run", "--preset", "supervised", "--set", "linear.lr=5", "--dry-run", tmp_path=tmp_path)
    assert out.returncode == 2, out.stderr
    assert "linear.lr" in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
