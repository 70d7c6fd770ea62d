"""End to end: the real `ssltui` in a tmux pane (send-keys, capture-pane), on fixture runs, then a
study launched from the app (a real training process at toy scale), cancelled, resumed to the
end and deleted.

Also measures the time to first screen (from starting the process to the runs list drawn).
Set SSLTUI_TMUX_CAPTURES=DIR to keep a text capture of each screen (docs/tui.md uses them).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, cli_env
from tests.tui_fixtures import make_fixture_runs

FIXTURE_PRESETS = Path(__file__).parent / "fixtures" / "presets"  # tiny-study: two parts at toy scale

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")

WIDTH, HEIGHT = (int(v) for v in os.environ.get("SSLTUI_TMUX_SIZE", "80x24").split("x"))


class Pane:
    """One tmux server (private socket) with one session running a command."""

    def __init__(self, socket: str):
        self.socket = socket

    def tmux(self, *args: str) -> str:
        return subprocess.run(
            ["tmux", "-L", self.socket, *args], capture_output=True, text=True, timeout=20, check=True
        ).stdout

    def start(self, command: str, env: dict) -> None:
        env_args = [
            a
            for k in (
                "PYTHONPATH",
                "SSLTUI_RUNS_DIR",
                "SSLTUI_DATA_DIR",
                "SSLTUI_STATE_DIR",
                "SSLTUI_PRESETS_DIR",
                "OMP_NUM_THREADS",
                "TZ",
            )
            for a in ("-e", f"{k}={env[k]}")
        ]
        self.tmux(
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-s",
            "e2e",
            "-x",
            str(WIDTH),
            "-y",
            str(HEIGHT),
            *env_args,
            "-e",
            "TERM=xterm-256color",
            "-e",
            "COLORTERM=truecolor",
            command,
        )
        self.tmux("set-option", "-s", "escape-time", "0")

    def capture(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "e2e")

    def keys(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", "e2e", *keys)

    def wait_for(self, *texts: str, timeout: float = 30.0) -> str:
        """The pane's text once every one of `texts` is on it."""
        deadline = time.monotonic() + timeout
        while True:
            screen = self.capture()
            if all(t in screen for t in texts):
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"{texts!r} did not appear; the pane shows:\n{screen}")
            time.sleep(0.02)

    def wait_gone(self, text: str, timeout: float = 30.0) -> str:
        """The pane's text once `text` has left it (an escape must not merge with the next key)."""
        deadline = time.monotonic() + timeout
        while True:
            screen = self.capture()
            if text not in screen:
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} did not go away; the pane shows:\n{screen}")
            time.sleep(0.02)

    def wait_line(self, start: str, value: str, timeout: float = 30.0) -> str:
        """The pane's text once its line beginning with `start` (after blanks) reads `value` next."""
        deadline = time.monotonic() + timeout
        while True:
            screen = self.capture()
            if any(line.split()[:2] == [start, value] for line in screen.splitlines() if line.strip()):
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"{start} {value} did not appear; the pane shows:\n{screen}")
            time.sleep(0.02)

    def kill(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True, timeout=20)


def app_cpu_seconds(pane: Pane) -> float | None:
    """CPU seconds (user + system) the app's process has used so far: on a loaded machine the
    wall time to the first screen says more about the neighbours than about the app."""
    try:
        shell = pane.tmux("list-panes", "-t", "e2e", "-F", "#{pane_pid}").split()[0]
        for child in Path(f"/proc/{shell}/task/{shell}/children").read_text().split():
            fields = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()
            return round((int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"), 2)
    except (OSError, IndexError, ValueError):
        return None
    return None


def launch_study(pane: Pane, runs: Path, captures: dict) -> str:
    """From the launch form: the `tiny-study` study (the data field follows its preset to
    synthetic), launched; its id."""
    pane.keys("Enter")  # the method select is focused: open it, down to 'study', choose
    pane.wait_for("study (several methods)")
    pane.keys("End", "Enter")  # 'study' is the last choice, after every registered method
    pane.wait_for("(an edit applies to every part")
    pane.keys("Tab", "Tab", "Enter")  # the preset select: the study presets by name, tiny-study last
    pane.wait_for("tiny-study")
    pane.keys("End", "Enter")
    pane.wait_for("tiny-study", "synthetic")
    captures["launch-study"] = pane.wait_line("supervised.batch_size", "4")  # tiny-study's values, not paper's
    pane.keys("C-r")
    live = pane.wait_for("tiny-study", "· starting", timeout=20)  # before Python has even imported torch
    captures["live-starting"] = live
    return next(p.name for p in runs.iterdir() if "tiny-study" in p.name)


def follow_cancel_resume(pane: Pane, run: Path, captures: dict) -> None:
    """Watch the study train, cancel it mid-phase, resume it from the app and let it finish."""
    training = pane.wait_for("supervised 10% s0", "eta ", timeout=180)
    captures["live-training"] = training
    pane.keys("x")
    pane.wait_for("Stop run")
    pane.keys("y")
    stopped = pane.wait_for("· interrupted", "R resumes it", timeout=120)
    captures["live-interrupted"] = stopped
    assert "error" not in stopped.splitlines()[2]  # a cancel is no error
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "interrupted" and "SIGINT" in summary["error"]
    pane.keys("R")
    pane.wait_for("· resuming", timeout=20)
    pane.wait_for("· completed", "3/3 phases done", "run completed", timeout=300)
    done = pane.wait_gone("x Cancel run")  # nothing to cancel any more; R is not offered either
    captures["live-completed"] = done
    assert "R Resume" not in done
    # The first attempt's stop is history after the resume: not in the run's header (a notice of the
    # interruption may still be fading out in the corner, where the app announces ended runs).
    assert "SIGINT" not in "\n".join(done.splitlines()[:4]), done
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["resumes"] == 1
    pane.keys("r")  # its results: our numbers beside the paper's
    table = pane.wait_for("Table 1", "not comparable")
    captures["study-results"] = table
    for r in summary["results"]:
        assert f"{100 * r['test_acc']:.2f}" in table
    pane.keys("m")
    pane.wait_for("rows s1-s3: end of stages")  # the feature maps it saved
    pane.keys("Escape")
    pane.wait_gone("rows s1-s3")


def test_ssltui_in_tmux(tmp_path, data_dir):
    runs = make_fixture_runs(tmp_path / "runs")
    env = cli_env(
        runs,
        data_dir,
        TZ="UTC",
        SSLTUI_STATE_DIR=str(tmp_path / "state"),
        SSLTUI_PRESETS_DIR=str(FIXTURE_PRESETS),
        OMP_NUM_THREADS="1",
    )
    done = tmp_path / "exit-code"
    command = f"cd {REPO} && {sys.executable} -m ssltui; echo $? > {done}; sleep 30"
    pane = Pane(f"ssltui-e2e-{os.getpid()}")
    captures: dict[str, str] = {}
    try:
        t0 = time.perf_counter()
        pane.start(command, env)
        first = pane.wait_for("3 of 3 runs", "New run", "sup+simclr+rot", timeout=60)
        first_screen_s = time.perf_counter() - t0
        first_screen_cpu = app_cpu_seconds(pane)
        captures["runs"] = first
        assert "completed" in first and "interrupted" in first and "failed" in first
        assert "paper-a1b2c3" in first  # the run column fits in 80 columns
        assert "Compare" in first and "New run" in first  # the footer lists the actions

        pane.keys("?")
        captures["help"] = pane.wait_for("ssltui keys")
        pane.keys("Escape")
        pane.wait_gone("ssltui keys")

        pane.keys(*"paper")  # typing filters: the filter field takes the focus (its footer has no Compare)
        pane.wait_for("1 of 3 runs")
        pane.wait_gone("Compare")
        pane.keys("Enter")  # leave the filter: the table has the focus, its footer again
        pane.wait_for("Compare")
        pane.keys("Enter")  # open the run
        live = pane.wait_for("accuracy %")
        live = pane.wait_for("run completed")
        captures["live"] = live
        assert "completed" in live and "loss" in live and "learning rate" in live

        pane.keys("r")
        table = pane.wait_for("Table 1", "not comparable")  # the caveat: synthetic data beside CIFAR-10
        captures["results"] = table
        assert "70.71" in table and "83.64" in table  # the paper's RotNet semi-supervised numbers
        # the fixture's rotnet/semi 10% mean ± std over two seeds (± std under it at 80 columns), and Δ
        assert "82.12" in table and "± 0.25" in table and "-1.52" in table
        pane.keys("c")
        captures["curves"] = pane.wait_for("pretrain phases", "rotnet pretrain s0")
        pane.keys("m")
        maps = pane.wait_for("rows s1-s3: end of stages")
        captures["featuremaps"] = maps
        assert "supervised · seed 0" in maps and "▀" in maps
        pane.keys("a")  # ASCII shading
        captures["featuremaps-ascii"] = maps_ascii = pane.wait_gone("▀")
        assert "supervised · seed 0" in maps_ascii and "image 1/4" in maps_ascii

        pane.keys("Escape")
        pane.wait_gone("rows s1-s3: end of stages")
        pane.keys("L")  # the run's whole log
        captures["log"] = pane.wait_for("run.log · 18 lines")
        pane.keys("Escape")
        pane.wait_gone("run.log ·")
        pane.keys("Escape")
        pane.wait_for("1 of 3 runs")
        pane.keys("Escape")  # clear the filter
        pane.wait_for("3 of 3 runs")
        pane.keys("n")
        captures["launch"] = pane.wait_for("hyperparameter", "Preset values")
        run_id = launch_study(pane, runs, captures)
        follow_cancel_resume(pane, runs / run_id, captures)
        pane.keys("Escape")
        summary = json.loads((runs / run_id / "summary.json").read_text())
        best = max(r["test_acc"] for r in summary["results"])
        # the list (refreshed every 2 s) shows it completed, with its best result and one more
        pane.wait_for("4 of 4 runs", "ssltui — runs", f"completed    sup+rot         10%     10% {100 * best:.1f} (+1)")
        pane.keys("g")  # the newest run is on top: the study
        for _ in range(30):  # refused (a notice) until the process that resumed it has exited
            pane.keys("D")
            try:
                pane.wait_for(f"Delete {run_id}?", timeout=2)
                break
            except AssertionError:
                continue
        pane.keys("y")
        pane.wait_for("3 of 3 runs")
        assert not (runs / run_id).exists()
        pane.keys("q")
        deadline = time.monotonic() + 20
        while not done.exists():
            assert time.monotonic() < deadline, "ssltui did not quit on q"
            time.sleep(0.05)
        assert done.read_text().strip() == "0"
    finally:
        pane.kill()
        if out := os.environ.get("SSLTUI_TMUX_CAPTURES"):
            d = Path(out)
            d.mkdir(parents=True, exist_ok=True)
            for name, text in captures.items():
                (d / f"{name}-{WIDTH}x{HEIGHT}.txt").write_text(text)
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3]) if Path("/proc/loadavg").exists() else "?"
    figure = (
        f"time to first screen in tmux ({WIDTH}x{HEIGHT}): {first_screen_s:.2f} s, "
        f"{first_screen_cpu if first_screen_cpu is not None else '?'} s of CPU, load average {load}"
    )
    print(figure)
    if out:
        (Path(out) / f"first-screen-{WIDTH}x{HEIGHT}.txt").write_text(figure + "\n")
    assert first_screen_s < 15, "the first screen took far too long"
