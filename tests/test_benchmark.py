"""The throughput benchmark runs end to end at toy size and reports both pipelines."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import REPO


def test_throughput_script_json(data_dir):
    p = subprocess.run([sys.executable, str(REPO / "benchmarks" / "throughput.py"), "--device", "cpu",
                        "--workers", "0", "--steps", "1", "--warmup", "0", "--batch-size", "8",
                        "--data", "synthetic", "--data-dir", str(data_dir), "--json"],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    out = json.loads(p.stdout.strip().splitlines()[-1])
    e = out["methods"]["simclr"]
    assert e["ours"]["views_per_step"] == 16 and e["usual"]["views_per_step"] == 16
    assert e["ours"]["views_per_s"] > 0 and e["usual"]["views_per_s"] > 0
    assert abs(e["ratio"] - e["ours"]["views_per_s"] / e["usual"]["views_per_s"]) < 0.01 * e["ratio"]
    # ResNet-20 forward + backward is ~0.24 GFLOP per 32x32 view.
    assert 0.15e9 < e["ours"]["flops_per_step"] / 16 < 0.4e9
    assert "fraction_of_bf16_peak" not in e  # only on CUDA


def test_throughput_script_bad_data(data_dir):
    p = subprocess.run([sys.executable, str(REPO / "benchmarks" / "throughput.py"), "--device", "cpu",
                        "--data", "nonsense", "--data-dir", str(data_dir)], capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 3 and "Traceback" not in p.stderr
