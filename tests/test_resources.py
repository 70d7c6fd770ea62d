"""The live screen's usage line: CPU and memory of a run's process family from /proc, GPUs from
nvidia-smi (none here: the line says CPU and RAM only)."""

from __future__ import annotations

import subprocess
import sys
import time

from ssltui.tui.resources import Gpu, Usage, UsageSampler


def test_a_busy_child_is_counted_in_its_parent_s_cpu_and_memory():
    code = "import subprocess, sys; p = subprocess.Popen([sys.executable, '-c', 'while True: pass']); p.wait()"
    parent = subprocess.Popen([sys.executable, "-c", code])
    try:
        sampler = UsageSampler(parent.pid)
        time.sleep(0.5)
        first = sampler.sample()
        assert first.cpu_percent is None and first.processes == 2 and first.rss_bytes > 5e6
        time.sleep(1.0)
        usage = sampler.sample()
        # the parent only waits: the CPU counted is the spinning child's (a loaded machine gives it less than a core)
        assert usage.cpu_percent is not None and usage.cpu_percent > 3
        assert "CPU" in usage.line() and "RAM" in usage.line() and "(2 processes)" in usage.line()
    finally:
        subprocess.run(["pkill", "-P", str(parent.pid)])
        parent.kill()
        parent.wait()


def test_a_gone_process_reads_as_nothing():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    usage = UsageSampler(proc.pid).sample()
    assert usage.cpu_percent is None and usage.rss_bytes is None and usage.processes == 0


def test_the_line_names_each_gpu():
    usage = Usage(150.0, 2_000_000_000, 1, [Gpu(0, "NVIDIA H100", 87.0, 12_595.0, 81_559.0)])
    assert usage.line() == "CPU 150%  RAM 2.0 GB  GPU0 87% 12.3/79.6 GB"
