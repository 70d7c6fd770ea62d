"""What `benchmarks/gpu_check.sh` prints about the study it ran: wall time, time per phase,
peak memory and the GPU utilisation nvidia-smi sampled meanwhile.

    python -m benchmarks.gpu_report RUN_DIR [SMI_CSV]
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path


def utilisation(path: Path) -> dict:
    """Mean, median and max of the `utilization.gpu` and `memory.used` columns of an
    `nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv,noheader` log."""
    util, mem = [], []
    for line in path.read_text().splitlines():
        cells = [c.strip().split()[0] for c in line.split(",")[1:3] if c.strip()]
        if len(cells) == 2 and all(c.replace(".", "", 1).isdigit() for c in cells):
            util.append(float(cells[0]))
            mem.append(float(cells[1]))
    if not util:
        return {"samples": 0}
    return {
        "samples": len(util),
        "util_mean": round(statistics.fmean(util), 1),
        "util_median": statistics.median(util),
        "util_max": max(util),
        "memory_used_max_mib": max(mem),
    }


def main(argv: list[str]) -> int:
    run = Path(argv[0])
    summary = json.loads((run / "summary.json").read_text())
    print(
        f"study {summary.get('run_id')}: {summary.get('status')} on {summary.get('device')}, "
        f"wall {summary.get('timings', {}).get('wall')} s"
    )
    print(f"  timings by kind (s): {summary.get('timings')}")
    for phase, rec in summary.get("phases", {}).items():
        print(f"  {phase}: {rec.get('seconds')} s{' (cached)' if rec.get('cached') else ''}")
    print(f"  memory: {summary.get('memory')}")
    if len(argv) > 1 and Path(argv[1]).exists():
        print(f"  nvidia-smi: {utilisation(Path(argv[1]))}")
    if summary.get("error"):
        print(f"  error: {summary['error']}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
