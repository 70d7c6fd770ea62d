"""Memory: a CIFAR-10 run on CPU (decode included) stays under 2.5 GB of resident memory."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import last_json

from ssltui.trainer.data.bundle import channel_stats


def test_channel_stats_are_exact():
    x = np.random.default_rng(0).integers(0, 256, (300, 32, 32, 3), dtype=np.uint8)
    idx = np.arange(0, 300, 3)
    mean, std = channel_stats(x, idx)
    ref = x[idx].reshape(-1, 3) / 255.0
    assert np.allclose(mean, ref.mean(0), atol=1e-12) and np.allclose(std, ref.std(0), atol=1e-5)


@pytest.mark.cifar
def test_cifar_run_peak_memory_under_2_5_gb(run_cli, runs_dir, cifar_archive):
    proc = run_cli(
        "run",
        "--preset",
        "supervised",
        "--data",
        f"folder:{cifar_archive}",
        "--device",
        "cpu",
        "--labels",
        "0.01",
        "--set",
        "supervised.epochs=1",
        "--set",
        "supervised.min_steps=0",
        "--set",
        "supervised.milestones=[]",
        "--json",
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = last_json(proc.stdout)
    summary = json.loads((runs_dir / out["run_id"] / "summary.json").read_text())
    print("peak RSS MB", summary["memory"]["peak_rss_mb"])
    assert 200 < summary["memory"]["peak_rss_mb"] < 2500
