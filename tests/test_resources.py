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


def test_the_live_screen_shows_what_the_training_process_uses(tmp_path):
    """A run whose lock a live process holds: the live screen says its CPU and RAM (no GPU here)."""
    import asyncio

    from ssltui.tui.app import SsltuiApp
    from ssltui.tui.screens.live import LiveScreen
    from tests.tui_fixtures import make_fixture_runs, shows, wait_until

    runs = make_fixture_runs(tmp_path / "runs")
    run_id = "20991231-235959-smoke-abc123"
    (runs / run_id).mkdir()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "import fcntl, os, sys, time\n"
                f"fd = os.open({str(runs / run_id / 'run.lock')!r}, os.O_RDWR | os.O_CREAT)\n"
                "fcntl.flock(fd, fcntl.LOCK_EX); os.write(fd, f'{os.getpid()}\\n'.encode())\n"
                "print('held', flush=True)\nend = time.time() + 60\nwhile time.time() < end: pass\n"
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"

        async def scenario():
            app = SsltuiApp(runs, reattach=False)
            async with app.run_test(size=(120, 30)) as pilot:
                app.push_screen(LiveScreen(run_id))
                await wait_until(
                    pilot,
                    lambda: isinstance(app.screen, LiveScreen) and app.screen.usage and "CPU" in app.screen.usage,
                    20,
                    "the usage line",
                )
                await shows(pilot, "uses CPU", "RAM")

        asyncio.run(scenario())
    finally:
        holder.kill()
        holder.wait()
