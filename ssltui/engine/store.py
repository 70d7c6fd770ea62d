"""The run store: one folder per run, the only contract between the engine and its faces.

    <runs_dir>/<run_id>/
        config.toml        the resolved plan (every hyperparameter)
        metrics.jsonl      append-only, one JSON object a line
        summary.json       status, results, timings, device, versions (written atomically)
        run.log            the training process's own output
        run.lock           flock held by the live training process
        labels/            label-subset indices, one JSON file per (fraction, seed)
        checkpoints/       phase checkpoints (resume)
        encoders/          pretrained encoders
        featuremaps.json   feature-map thumbnails for the TUI and `ssltui maps`

No torch import here: `ssltui runs` and the TUI read the store without it.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import secrets
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from ssltui.engine.errors import ConfigError, RunFailed

TERMINAL_STATUSES = ("completed", "failed", "interrupted")
_ID_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file beside `path`, fsync, then rename: never half-written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            raise RunFailed(f"disk full while writing {path}; the previous file is kept") from None
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def read_jsonl(path: Path) -> list[dict]:
    """Every whole JSON line of a file; a torn last line (a crash mid-write) is skipped."""
    out = []
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        return out
    for line in data.split(b"\n"):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict):
            out.append(obj)
    return out


class RunLock:
    """An exclusive flock on run.lock, held while a process trains the run."""

    def __init__(self, path: Path):
        self.path = path
        self.fd: int | None = None

    def acquire(self) -> "RunLock":
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ConfigError(f"run {self.path.parent.name} is already being trained by another process") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def lock_is_held(path: Path) -> bool:
    """True when some live process holds the run's lock."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


@dataclass
class RunInfo:
    """What a listing shows of one run."""

    id: str
    path: Path
    status: str  # running | completed | failed | interrupted | stale | damaged | created
    preset: str = ""
    group: str = ""
    methods: list[str] = field(default_factory=list)
    evaluations: list[str] = field(default_factory=list)
    labels: list[float] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)
    results: list[dict] = field(default_factory=list)
    started: float | None = None
    ended: float | None = None
    error: str | None = None

    def to_json(self) -> dict:
        return {
            "run_id": self.id, "status": self.status, "preset": self.preset, "group": self.group,
            "methods": self.methods, "evaluations": self.evaluations, "labels": self.labels,
            "seeds": self.seeds, "results": self.results, "started": self.started,
            "ended": self.ended, "error": self.error, "path": str(self.path),
        }


class RunDir:
    """One run's folder."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.id = self.path.name

    # paths
    config_path = property(lambda self: self.path / "config.toml")
    metrics_path = property(lambda self: self.path / "metrics.jsonl")
    summary_path = property(lambda self: self.path / "summary.json")
    log_path = property(lambda self: self.path / "run.log")
    lock_path = property(lambda self: self.path / "run.lock")
    labels_dir = property(lambda self: self.path / "labels")
    checkpoints_dir = property(lambda self: self.path / "checkpoints")
    encoders_dir = property(lambda self: self.path / "encoders")
    featuremaps_path = property(lambda self: self.path / "featuremaps.json")

    def lock(self) -> RunLock:
        return RunLock(self.lock_path)

    def is_live(self) -> bool:
        return lock_is_held(self.lock_path)

    # metrics
    def append_metrics(self, record: dict) -> None:
        line = json.dumps(record, separators=(",", ":")) + "\n"
        try:
            with open(self.metrics_path, "a", encoding="utf-8") as fh:
                fh.write(line)
                fh.flush()
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise RunFailed(f"disk full while writing {self.metrics_path}; the last checkpoint is kept") from None
            raise

    def tidy_after_crash(self) -> None:
        """Before a resume (lock held): remove temporary files a killed writer left behind, and
        cut a half-written last metrics line so the next record does not glue onto it."""
        for d in (self.path, self.checkpoints_dir, self.encoders_dir, self.labels_dir):
            for tmp in d.glob(".*.tmp") if d.is_dir() else ():
                try:
                    tmp.unlink()
                except OSError:
                    pass
        try:
            with open(self.metrics_path, "r+b") as fh:
                data = fh.read()
                if data and not data.endswith(b"\n"):
                    fh.truncate(data.rfind(b"\n") + 1)
        except FileNotFoundError:
            pass

    def metrics_size(self) -> int:
        try:
            return self.metrics_path.stat().st_size
        except FileNotFoundError:
            return 0

    def truncate_metrics(self, size: int) -> None:
        """Drop records written after a checkpoint (they are recomputed on resume)."""
        if self.metrics_path.exists() and self.metrics_size() > size:
            with open(self.metrics_path, "r+b") as fh:
                fh.truncate(size)

    def read_metrics(self) -> list[dict]:
        return read_jsonl(self.metrics_path)

    # summary
    def read_summary(self) -> dict:
        """The summary; raises ValueError when it is damaged, FileNotFoundError when absent."""
        with open(self.summary_path, "rb") as fh:
            obj = json.loads(fh.read())
        if not isinstance(obj, dict):
            raise ValueError("summary.json is not an object")
        return obj

    def write_summary(self, summary: dict) -> None:
        atomic_write_json(self.summary_path, summary)

    def read_featuremaps(self) -> dict | None:
        """featuremaps.json (see ssltui.engine.featuremaps), or None when absent or damaged."""
        try:
            obj = json.loads(self.featuremaps_path.read_text())
        except (OSError, ValueError):
            return None
        return obj if isinstance(obj, dict) else None

    def info(self) -> RunInfo:
        try:
            s = self.read_summary()
        except FileNotFoundError:
            return RunInfo(self.id, self.path, "running" if self.is_live() else "created")
        except (ValueError, OSError) as exc:
            return RunInfo(self.id, self.path, "damaged", error=f"summary.json unreadable: {exc}")
        problem = _summary_problem(s)
        if problem:
            return RunInfo(self.id, self.path, "damaged", error=f"summary.json damaged: {problem}")
        status = s.get("status", "damaged")
        if status == "running" and not self.is_live():
            status = "stale"
        return RunInfo(
            id=self.id, path=self.path, status=status, preset=s.get("preset", ""),
            group=s.get("group", ""), methods=s.get("methods", []), evaluations=s.get("evaluations", []),
            labels=s.get("labels", []), seeds=s.get("seeds", []), results=s.get("results", []),
            started=s.get("started"), ended=s.get("ended"), error=s.get("error"),
        )


_SUMMARY_TYPES: dict[str, tuple] = {
    "status": (str,), "preset": (str,), "group": (str,), "methods": (list,), "evaluations": (list,),
    "labels": (list,), "seeds": (list,), "results": (list,), "started": (int, float, type(None)),
    "ended": (int, float, type(None)), "error": (str, type(None)),
}
_RESULT_TYPES: dict[str, tuple] = {
    "method": (str,), "evaluation": (str,), "labels": (int, float), "seed": (int,),
    "test_acc": (int, float),
}


def _summary_problem(s: dict) -> str | None:
    """What makes a parseable summary.json unusable for a listing (wrong types), or None."""
    for key, types in _SUMMARY_TYPES.items():
        if key in s and (not isinstance(s[key], types) or isinstance(s[key], bool)):
            return f"{key!r} is {type(s[key]).__name__}"
    if s.get("status", "") not in (*TERMINAL_STATUSES, "running"):
        return f"unknown status {s.get('status')!r}"
    for m in ("methods", "evaluations"):
        if not all(isinstance(v, str) for v in s.get(m, [])):
            return f"{m!r} holds a non-string"
    for m in ("labels", "seeds"):
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in s.get(m, [])):
            return f"{m!r} holds a non-number"
    for r in s.get("results", []):
        if not isinstance(r, dict):
            return "a result is not an object"
        for key, types in _RESULT_TYPES.items():
            if not isinstance(r.get(key), types) or isinstance(r.get(key), bool):
                return f"a result's {key!r} is {type(r.get(key)).__name__}"
    return None


class RunStore:
    """The runs dir."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def create(self, preset: str) -> RunDir:
        """A new run folder with a unique id (mkdir is the atomic claim)."""
        self.root.mkdir(parents=True, exist_ok=True)
        safe = _ID_SAFE.sub("-", Path(preset).stem)[:40] or "run"
        for _ in range(100):
            run_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{safe}-{secrets.token_hex(3)}"
            path = self.root / run_id
            try:
                path.mkdir()
            except FileExistsError:
                continue
            return RunDir(path)
        raise RunFailed(f"could not create a run folder in {self.root}")

    def iter_dirs(self) -> Iterator[RunDir]:
        if not self.root.is_dir():
            return
        for p in sorted(self.root.iterdir()):
            if p.is_dir() and not p.name.startswith(".") and p.name != "cache":
                yield RunDir(p)

    def list(self) -> list[RunInfo]:
        """Every run, running ones first, then newest first."""
        infos = [d.info() for d in self.iter_dirs()]
        infos.sort(key=lambda i: (i.status != "running", -(i.started or 0), i.id), reverse=False)
        return infos

    def get(self, run_id: str) -> RunDir:
        """A run by id or unique id prefix/suffix."""
        exact = self.root / run_id
        if run_id and "/" not in run_id and exact.is_dir():
            return RunDir(exact)
        matches = [d for d in self.iter_dirs() if d.id.startswith(run_id) or d.id.endswith(run_id)]
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise ConfigError(f"no run {run_id!r} in {self.root}")
        raise ConfigError(f"run id {run_id!r} is ambiguous ({len(matches)} runs match)")

    def cache_dir(self) -> Path:
        return self.root / "cache"
