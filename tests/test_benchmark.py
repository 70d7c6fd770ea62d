"""The throughput benchmark (`python -m benchmarks.throughput`) runs end to end at toy size."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import REPO


def _throughput(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "benchmarks.throughput", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )


def test_throughput_module_json(data_dir):
    p = _throughput(
        "--device",
        "cpu",
        "--method",
        "all",
        "--workers",
        "0",
        "--steps",
        "1",
        "--warmup",
        "0",
        "--batch-size",
        "4",
        "--threads",
        "1",
        "--data",
        "synthetic",
        "--data-dir",
        str(data_dir),
        "--json",
    )
    assert p.returncode == 0, p.stderr[-2000:]
    out = json.loads(p.stdout.strip().splitlines()[-1])
    for method, views in (("simclr", 8), ("rotnet", 16)):
        e = out["methods"][method]
        assert e["ours"]["views_per_step"] == views and e["usual"]["views_per_step"] == views
        assert e["ours"]["views_per_s"] > 0 and e["usual"]["views_per_s"] > 0
        assert abs(e["ratio"] - e["ours"]["views_per_s"] / e["usual"]["views_per_s"]) < 0.01 * e["ratio"]
        # ResNet-20 forward + backward is ~0.24 GFLOP per 32x32 view.
        assert 0.15e9 < e["ours"]["flops_per_step"] / views < 0.4e9
        assert "fraction_of_bf16_peak" not in e  # only on CUDA
        assert f"the engine's {method} step" in e["ours"]["pipeline"]
    # The engine's data path: the training split outside the validation images.
    assert out["images"] == 2700 and out["data"] == "synthetic"


def test_throughput_bad_data_is_one_line(data_dir):
    p = _throughput("--device", "cpu", "--data", "nonsense", "--data-dir", str(data_dir), timeout=120)
    assert p.returncode == 3 and "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1


def test_benchmarks_do_not_edit_sys_path():
    for path in (REPO / "benchmarks").glob("*.py"):
        assert "sys.path" not in path.read_text(), path
