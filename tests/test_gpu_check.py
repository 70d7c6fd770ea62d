"""The prepared GPU check: its shell script parses, its report reads nvidia-smi's samples, and
(slow) its graph checks run end to end in the CPU rehearsal."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.gpu_report import utilisation

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("script", ["gpu_check.sh", "gpu_prepare.sh"])
def test_the_scripts_parse(script: str) -> None:
    assert subprocess.run(["bash", "-n", str(ROOT / "benchmarks" / script)]).returncode == 0


def test_utilisation_of_nvidia_smi_samples(tmp_path: Path) -> None:
    csv = tmp_path / "smi.csv"
    csv.write_text(
        "2026/11/29 10:00:00.000, 40 %, 5000 MiB\n2026/11/29 10:00:01.000, 80 %, 7000 MiB\n"
        "garbage line\n2026/11/29 10:00:02.000, [N/A], [N/A]\n"
    )
    assert utilisation(csv) == {
        "samples": 2,
        "util_mean": 60.0,
        "util_median": 60.0,
        "util_max": 80.0,
        "memory_used_max_mib": 7000.0,
    }
    csv.write_text("")
    assert utilisation(csv) == {"samples": 0}


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_graph_checks_rehearse_on_the_cpu(tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SSLTUI_DATA_DIR": str(tmp_path / "data"), "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.graph_check", "--cpu-rehearsal", "--out", str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    report = json.loads((tmp_path / "graph_check.json").read_text())
    assert report["rehearsal"] and len(report["timings"]) == 6
    assert all(t["graphed"]["mode"] == "graph" for t in report["timings"].values())
    assert all(a["ok"] for a in report["agreement"].values())
    assert report["fallback"]["ok"] and report["resume"]["ok"]
    assert "CPU REHEARSAL" in proc.stdout
