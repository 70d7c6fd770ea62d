"""The dry run is the truth: the epochs and steps it prints are those the run trains, and it names
the setting that decided them (`min_steps` stretching `epochs`). A schedule that does not fit a
shortened run is refused with the fix named."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest

from ssltui.core.errors import ConfigError
from ssltui.core.presets import resolve


def _ssltui(tmp_path, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "SSLTUI_RUNS_DIR": str(tmp_path / "runs"), "SSLTUI_DATA_DIR": str(tmp_path / "data")}
    return subprocess.run(
        [sys.executable, "-m", "ssltui", *args], capture_output=True, text=True, timeout=timeout, env=env
    )


def _plan(tmp_path, *args: str) -> dict:
    out = _ssltui(tmp_path, "run", *args, "--dry-run", "--json")
    assert out.returncode == 0, out.stderr
    return {p["node"]: p for p in json.loads(out.stdout.splitlines()[-1])["plan"]}


def test_the_supervised_preset_s_dry_run_shows_the_epochs_min_steps_gives_at_1_percent(tmp_path):
    (cfg,) = resolve("supervised").parts
    s = cfg.supervised
    images = 50 * 10  # 1% of CIFAR-10's training split: 50 images a class
    steps_per_epoch = images // s.batch_size
    epochs = max(s.epochs, math.ceil(s.min_steps / steps_per_epoch))
    assert epochs > s.epochs  # the preset's min_steps decides at 1%
    plan = _plan(tmp_path, "--preset", "supervised")
    one = next(p for name, p in plan.items() if "labels0.01" in name)
    assert (one["epochs"], one["steps_per_epoch"], one["steps"]) == (epochs, steps_per_epoch, epochs * steps_per_epoch)
    assert one["decided_by"] == "supervised.min_steps"
    ten = next(p for name, p in plan.items() if "labels0.1/" in name)
    assert ten["decided_by"] == "supervised.epochs"


def test_the_text_dry_run_says_min_steps_decided(tmp_path):
    out = _ssltui(
        tmp_path, "run", "--preset", "rotnet-semi", "--set", "semi.epochs=1", "--set", "semi.milestones=[]", "--dry-run"
    )
    assert out.returncode == 0, out.stderr
    semi = [line for line in out.stdout.splitlines() if "/semi/" in line]
    assert semi and all("semi.min_steps" in line and "(1 epochs)" not in line for line in semi)


def test_every_phase_trains_the_epochs_and_steps_its_dry_run_printed(tmp_path):
    args = (
        "--preset",
        "smoke",
        "--method",
        "simclr",
        "--evaluation",
        "linear,semi",
        "--device",
        "cpu",
        "--set",
        "data.synthetic_train_per_class=40",
        "--set",
        "data.synthetic_test_per_class=10",
        "--set",
        "pretrain.batch_size=64",
        "--set",
        "semi.batch_size=16",
        "--set",
        "semi.min_steps=24",
        "--set",
        "pretrain.epochs=1",
        "--set",
        "linear.epochs=2",
        "--set",
        "runtime.featuremaps=false",
        "--set",
        "knn.every_epochs=0",
    )
    plan = _plan(tmp_path, *args)
    out = _ssltui(tmp_path, "run", *args, "--json", "--quiet")
    assert out.returncode == 0, out.stderr
    run_id = json.loads(out.stdout.splitlines()[-1])["run_id"]
    starts = [json.loads(line) for line in (tmp_path / "runs" / run_id / "metrics.jsonl").read_text().splitlines()]
    starts = {e["phase"]: e for e in starts if e["event"] == "phase_start"}
    trained = [p for p in plan.values() if p["steps"]]
    assert len(trained) == len(starts) == 3
    for p in trained:  # a pretraining's phase id also names its data: it starts with the node's
        s = next(v for k, v in starts.items() if k == p["phase"] or k.startswith(p["phase"] + "/"))
        assert (s["epochs"], s["steps_per_epoch"]) == (p["epochs"], p["steps_per_epoch"]), p
    assert any(p["decided_by"] == "semi.min_steps" for p in trained)


def test_a_short_override_that_leaves_milestones_outside_names_the_fix():
    with pytest.raises(ConfigError) as err:
        resolve("rotnet-linear", sets=["pretrain.epochs=1"])
    assert "pretrain.milestones=[]" in err.value.message


def test_a_warmup_longer_than_the_run_names_the_fix():
    with pytest.raises(ConfigError) as err:
        resolve("simclr-linear", sets=["pretrain.epochs=5"])
    assert "pretrain.warmup_epochs" in err.value.message and "--set" in err.value.message
