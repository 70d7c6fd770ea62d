"""Shared fixtures: isolated run/data dirs, a subprocess runner for the real CLI, the CIFAR archive."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CIFAR_ARCHIVE = REPO.parent / "shared" / "data" / "cifar10-jpeg.tar.gz"

# One compute thread in the tests and the CLI processes they start: on a small shared CPU,
# torch's thread pool of a waiting parent competes with the child (measured 3-15x slower).
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture
def runs_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = tmp_path / "runs"
    monkeypatch.setenv("SSLTUI_RUNS_DIR", str(d))
    return d


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One decode cache for the whole session (the CIFAR archive decodes once)."""
    d = tmp_path_factory.mktemp("data")
    os.environ["SSLTUI_DATA_DIR"] = str(d)
    return d


def cli_env(runs_dir: Path, data_dir: Path, **extra: str) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["SSLTUI_RUNS_DIR"] = str(runs_dir)
    env["SSLTUI_DATA_DIR"] = str(data_dir)
    env.pop("NO_COLOR", None)
    env.update(extra)
    return env


@pytest.fixture
def run_cli(runs_dir: Path, data_dir: Path):
    """Run the real `ssltui` in a subprocess; returns CompletedProcess (text)."""

    def _run(*args: str, timeout: float = 300, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "ssltui", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=cli_env(runs_dir, data_dir, **env),
            stdin=subprocess.DEVNULL,
        )

    return _run


def last_json(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def cifar_archive() -> Path:
    if not CIFAR_ARCHIVE.is_file():
        pytest.skip(f"{CIFAR_ARCHIVE} is absent (a user's clone has no ../shared)")
    return CIFAR_ARCHIVE


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """`-n auto` (pyproject's addopts): one worker per core, at most 4. Each worker imports torch
    (~0.8 GB), so a 64-core box must not start 64 of them."""
    return max(1, min(4, len(os.sched_getaffinity(0))))


@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    """Freeze the heap that collection built (torch, Textual, hypothesis, optuna and the test
    modules: ~400k objects) so no later garbage collection traverses it again.

    Why: an xdist worker reports its last result, then pytest's unraisable-exception cleanup runs
    five full collections (`gc_collect_harder`). execnet gives the worker 5 s from the controller's
    exit request before it SIGINTs itself; with this heap each full collection took ~0.9 s on a
    busy 2-core machine (measured 4.6 s for the five), so a slower moment ended the suite with a
    KeyboardInterrupt inside hypothesis's gc callback printed as PytestUnraisableExceptionWarning.
    Nothing collected here is garbage (the collection just before the freeze takes what is), so
    freezing only makes every later full collection cheaper, the tests' own included."""
    gc.collect()
    gc.freeze()
