"""What a running run uses: CPU and resident memory of its process and the worker processes it
started (from /proc), and each GPU's utilisation and memory (from `nvidia-smi`, when there is one).
Read by the live screen every few seconds, off the UI thread; torch-free."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

PROC = Path("/proc")
TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


@dataclass(frozen=True)
class Gpu:
    index: int
    name: str
    util_percent: float
    memory_used_mb: float
    memory_total_mb: float


@dataclass(frozen=True)
class Usage:
    cpu_percent: float | None  # of one core: 200 is two cores busy (None: first sample, or gone)
    rss_bytes: int | None
    processes: int
    gpus: list[Gpu] = field(default_factory=list)

    def line(self) -> str:
        """'CPU 183%  RAM 1.2 GB (3 processes)  GPU0 87% 12.3/80.0 GB'."""
        parts = []
        if self.cpu_percent is not None:
            parts.append(f"CPU {self.cpu_percent:.0f}%")
        if self.rss_bytes is not None:
            extra = f" ({self.processes} processes)" if self.processes > 1 else ""
            parts.append(f"RAM {self.rss_bytes / 1e9:.1f} GB{extra}")
        parts += [
            f"GPU{g.index} {g.util_percent:.0f}% {g.memory_used_mb / 1024:.1f}/{g.memory_total_mb / 1024:.1f} GB"
            for g in self.gpus
        ]
        return "  ".join(parts) if parts else "no usage to show"


def _stat(pid: int) -> tuple[int, int, int] | None:
    """(parent pid, CPU ticks used, resident pages) of a process, or None when it is gone."""
    try:
        text = (PROC / str(pid) / "stat").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    fields = text[text.rfind(")") + 2 :].split()  # after the command name, which may hold spaces
    return int(fields[1]), int(fields[11]) + int(fields[12]), int(fields[21])


def _family(pid: int) -> list[int]:
    """The process and every descendant (a study's worker processes)."""
    children: dict[int, list[int]] = {}
    for entry in PROC.iterdir() if PROC.is_dir() else ():
        if entry.name.isdigit():
            st = _stat(int(entry.name))
            if st is not None:
                children.setdefault(st[0], []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


def gpus(timeout: float = 3.0) -> list[Gpu]:
    """Each GPU's utilisation and memory from nvidia-smi; [] without one (or when it fails)."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return []
    try:
        out = subprocess.run(
            [exe, "--query-gpu=index,name,utilization.gpu,memory.used,memory.total", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except (OSError, subprocess.SubprocessError):
        return []
    found = []
    for line in out.stdout.splitlines():
        cells = [c.strip() for c in line.split(",")]
        try:
            found.append(Gpu(int(cells[0]), cells[1], float(cells[2]), float(cells[3]), float(cells[4])))
        except (IndexError, ValueError):
            continue
    return found


class UsageSampler:
    """Samples a process family's CPU (since the last sample) and memory, and the GPUs."""

    def __init__(self, pid: int):
        self.pid = pid
        self._last: tuple[float, int] | None = None

    def sample(self) -> Usage:
        stats = [s for s in map(_stat, _family(self.pid)) if s is not None]
        now = time.monotonic()
        if not stats:
            return Usage(None, None, 0, gpus())
        ticks = sum(s[1] for s in stats)
        cpu = None
        if self._last is not None and now > self._last[0]:
            cpu = max(0.0, 100.0 * (ticks - self._last[1]) / TICKS / (now - self._last[0]))
        self._last = (now, ticks)
        return Usage(cpu, sum(s[2] for s in stats) * PAGE, len(stats), gpus())
