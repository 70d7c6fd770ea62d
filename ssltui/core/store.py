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
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar

from ssltui.core.errors import ConfigError, DataError, RunFailed, quoted
from ssltui.core.events import Event, parse_event
from ssltui.core.featuremaps_schema import FeatureMaps, FeatureMapsDamaged, parse_featuremaps
from ssltui.core.notes import RunNotes, parse_notes
from ssltui.core.summary import TERMINAL_STATUSES, RunOrder, RunSummary, SummaryDamaged, parse_order, parse_summary

__all__ = ["TERMINAL_STATUSES", "RunDir", "RunInfo", "RunStore", "atomic_write_json", "atomic_write_text"]
_ID_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")
_ID_OK = re.compile(r"[A-Za-z0-9_.-]{1,255}")
# Folders of the runs dir that are no run: the encoder cache and the sweeps' SQLite database.
NOT_RUNS = ("cache", "sweeps")


T = TypeVar("T")


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


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Every whole JSON line of a file; a torn last line (a crash mid-write) is skipped."""
    out: list[dict[str, Any]] = []
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


def append_line(path: Path, line: str) -> None:
    """Append one line with a single write() on an O_APPEND descriptor: processes appending
    to the same file at once (the scheduler's workers) never interleave inside a line."""
    data = (line + "\n").encode("utf-8")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            if os.write(fd, data) != len(data):
                raise OSError(errno.ENOSPC, "short write")
        finally:
            os.close(fd)
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise RunFailed(f"disk full while writing {path}; the last checkpoint is kept") from None
        raise


def _io_error(exc: OSError, path: Path) -> Exception:
    """One line for a file the run store cannot write: full disk (exit 1) or no permission (2)."""
    if exc.errno == errno.ENOSPC:
        return RunFailed(f"disk full while writing {path}")
    return ConfigError(f"cannot write {path} ({exc.strerror})")


class RunLock:
    """An exclusive flock on run.lock, held while a process trains the run."""

    def __init__(self, path: Path):
        self.path = path
        self.fd: int | None = None

    def acquire(self) -> RunLock:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise _io_error(exc, self.path) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ConfigError(f"run {self.path.parent.name} is already being trained by another process") from None
        try:
            # The pid is a hint for `x` in the TUI; the flock is what counts.
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        except OSError as exc:
            os.close(fd)
            raise _io_error(exc, self.path) from None
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def lock_is_held(path: Path | str) -> bool:
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
    """What a listing shows of one run, from its validated summary.json (`summary`; None for a
    run that has none yet or a damaged one)."""

    id: str
    path: Path
    status: str  # running | completed | failed | interrupted | pruned | stale | damaged | created
    preset: str = ""
    description: str = ""
    group: str = ""
    methods: list[str] = field(default_factory=list)
    evaluations: list[str] = field(default_factory=list)
    labels: list[float] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)
    results: list[dict[str, Any]] = field(default_factory=list)
    started: float | None = None
    ended: float | None = None
    error: str | None = None
    summary: RunSummary | None = None
    note: str = ""
    tags: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, run_id: str, path: Path, status: str, s: RunSummary) -> RunInfo:
        return cls(
            run_id,
            path,
            status,
            preset=s.preset,
            description=s.description,
            group=s.group,
            methods=s.methods,
            evaluations=s.evaluations,
            labels=s.labels,
            seeds=s.seeds,
            results=s.model_dump(include={"results"})["results"],
            started=s.started,
            ended=s.ended,
            error=s.error,
            summary=s,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.id,
            "status": self.status,
            "preset": self.preset,
            "group": self.group,
            "methods": self.methods,
            "evaluations": self.evaluations,
            "labels": self.labels,
            "seeds": self.seeds,
            "results": self.results,
            "started": self.started,
            "ended": self.ended,
            "error": self.error,
            "path": str(self.path),
            "note": self.note,
            "tags": self.tags,
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
    notes_path = property(lambda self: self.path / "notes.json")

    def lock(self) -> RunLock:
        return RunLock(self.lock_path)

    def is_live(self) -> bool:
        return lock_is_held(self.lock_path)

    # metrics
    def append_event(self, event: Event) -> None:
        append_line(self.metrics_path, json.dumps(event.to_json(), separators=(",", ":")))

    def append_log(self, text: str) -> None:
        """Text (a stamped line, a traceback) at the end of run.log."""
        append_line(self.log_path, text.rstrip("\n"))

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

    def read_events(self) -> list[Event]:
        """Every event of metrics.jsonl, typed; torn, foreign or damaged lines are skipped."""
        return [e for e in map(parse_event, read_jsonl(self.metrics_path)) if e is not None]

    def read_config_text(self) -> str:
        """config.toml as text ('' when absent); a one-line ConfigError when unreadable."""
        try:
            text: str = self.config_path.read_text(encoding="utf-8")
            return text
        except FileNotFoundError:
            return ""
        except UnicodeDecodeError:
            raise ConfigError(f"{self.config_path}: not UTF-8 text (damaged)") from None
        except OSError as exc:
            raise ConfigError(f"{self.config_path}: cannot read ({exc.strerror})") from None

    # summary
    def read_summary(self) -> RunSummary:
        """The validated summary; SummaryDamaged when unusable, FileNotFoundError when absent."""
        with open(self.summary_path, "rb") as fh:
            return parse_summary(fh.read())

    def write_summary(self, summary: RunSummary) -> None:
        atomic_write_text(self.summary_path, summary.to_json_text())

    def read_notes(self) -> RunNotes:
        """The run's note and tags (none when absent, unreadable or damaged)."""
        try:
            return parse_notes(self.notes_path.read_bytes())
        except OSError:
            return RunNotes()

    def write_notes(self, notes: RunNotes) -> None:
        atomic_write_text(self.notes_path, notes.model_dump_json() + "\n")

    def read_featuremaps(self) -> FeatureMaps | None:
        """featuremaps.json, validated; None when absent or damaged (a view then shows none)."""
        try:
            return self.load_featuremaps()
        except ConfigError:
            return None

    def load_featuremaps(self) -> FeatureMaps | None:
        """featuremaps.json, validated; None when absent; ConfigError naming the file and its
        first problem when it cannot be read or drawn."""
        try:
            data = self.featuremaps_path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise ConfigError(f"{self.featuremaps_path}: cannot read ({exc.strerror})") from None
        try:
            return parse_featuremaps(data)
        except FeatureMapsDamaged as exc:
            raise ConfigError(f"{self.featuremaps_path}: damaged ({exc})") from None

    def info(self) -> RunInfo:
        try:
            return self.info_from(read_summary_file(str(self.summary_path)))
        except OSError as exc:
            return RunInfo(self.id, self.path, "damaged", error=f"summary.json unreadable: {exc.strerror}")

    def info_from(self, file: SummaryFile | None, status: str | None = None) -> RunInfo:
        """The run as listed from one read of its summary.json; `status` when already known."""
        lock = str(self.lock_path)
        if file is None:
            status = status or listed_status(None, lock)
            if status == "created" and (self.config_path.exists() or self.metrics_path.exists()):
                # The engine writes summary.json right after config.toml: without it the run is
                # no "created" one; `ssltui resume` rebuilds it.
                return RunInfo(self.id, self.path, "damaged", error="summary.json is missing")
            return RunInfo(self.id, self.path, status)
        s = file.summary
        if isinstance(s, SummaryDamaged):
            return RunInfo(self.id, self.path, "damaged", error=f"summary.json damaged: {s}")
        info = RunInfo.of(self.id, self.path, status or listed_status(s.status, lock), s)
        notes = self.read_notes()
        info.note, info.tags = notes.note, list(notes.tags)
        return info


@dataclass
class SummaryFile:
    """One version of a summary.json, parsed at most once: a long-lived store (the TUI's,
    relisting every few seconds) rereads and revalidates only the runs that changed."""

    key: tuple[int, int, int]  # inode, mtime, size: an atomic rewrite always makes a new inode
    data: bytes

    @cached_property
    def order(self) -> RunOrder | SummaryDamaged:
        return _or_damage(parse_order, self.data)

    @cached_property
    def summary(self) -> RunSummary | SummaryDamaged:
        return _or_damage(parse_summary, self.data)


def _or_damage(parse: Callable[[bytes], T], data: bytes) -> T | SummaryDamaged:
    """The parsed value, or the SummaryDamaged saying why not (kept, so it is not parsed again)."""
    try:
        return parse(data)
    except SummaryDamaged as exc:
        return exc


def read_summary_file(path: str, known: SummaryFile | None = None) -> SummaryFile | None:
    """A summary.json as it is now (None when absent; OSError when unreadable); `known` is
    returned again, unread, when the file has not changed since it was read. Plain str paths
    and os calls: a listing calls it once per run, 10,000 times in a big store."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        st = os.fstat(fd)
        key = (st.st_ino, st.st_mtime_ns, st.st_size)
        if known is not None and known.key == key:
            return known
        chunks = []
        while chunk := os.read(fd, max(st.st_size, 4096)):
            chunks.append(chunk)
        return SummaryFile(key, b"".join(chunks))
    finally:
        os.close(fd)


def listed_status(declared: str | None, lock_path: str) -> str:
    """The status a listing shows for a summary that says `declared` (None: no summary yet):
    'running' only while a live process holds the lock, so a killed run reads 'stale'."""
    if declared is None:
        return "running" if lock_is_held(lock_path) else "created"
    if declared == "running" and not lock_is_held(lock_path):
        return "stale"
    return declared


@dataclass
class _Listed:
    """A run as the first pass of a listing sees it: enough to sort, not yet to show."""

    id: str
    where: str
    file: SummaryFile | None
    status: str
    started: float = 0.0
    error: str | None = None  # why it is damaged, when the first pass already knows

    def sort_key(self) -> tuple[Any, ...]:
        return (self.status != "running", -self.started, self.id)

    def info(self) -> RunInfo:
        run = RunDir(Path(self.where))
        if self.error is not None:
            return RunInfo(run.id, run.path, "damaged", error=self.error)
        return run.info_from(self.file, self.status)


class RunStore:
    """The runs dir."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self._files: dict[str, SummaryFile] = {}  # run id -> its summary.json as last listed

    def create(self, preset: str) -> RunDir:
        """A new run folder with a unique id (mkdir is the atomic claim)."""
        self.make_root()
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

    @staticmethod
    def check_new_id(run_id: str) -> str:
        """A name a new run folder may take (`--run-id`): a plain folder name."""
        if not _ID_OK.fullmatch(run_id) or run_id in (".", "..", *NOT_RUNS) or run_id.startswith("."):
            raise ConfigError(
                f"--run-id {quoted(run_id)}: use a plain folder name (letters, digits, - _ ., at most 255)"
            )
        return run_id

    def claim(self, run_id: str) -> RunDir:
        """The folder `run_id` for a new run (the TUI names its runs): new, or made empty by a
        launcher that has not started it yet."""
        self.check_new_id(run_id)
        self.make_root()
        path = self.root / run_id
        if (path / "config.toml").exists():
            raise ConfigError(f"--run-id {run_id!r}: that run already exists")
        try:
            path.mkdir(exist_ok=True)
        except OSError as exc:
            raise _io_error(exc, path) from None
        return RunDir(path)

    def make_root(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except FileExistsError:
            raise ConfigError(f"runs dir {self.root} is a file, not a folder (--runs-dir / $SSLTUI_RUNS_DIR)") from None
        except OSError as exc:
            raise ConfigError(
                f"cannot create the runs dir {self.root} ({exc.strerror}); "
                f"choose another with --runs-dir or $SSLTUI_RUNS_DIR"
            ) from None

    def check_writable(self) -> None:
        """Make the runs dir and prove a run folder can be created in it, before any data loads
        or run starts: a read-only or foreign runs dir is exit 3 naming it, not a failure later."""
        self.make_root()
        try:
            os.rmdir(tempfile.mkdtemp(prefix=".writable-", dir=self.root))
        except OSError as exc:
            raise DataError(
                f"runs dir {self.root} is not writable ({exc.strerror}); choose another with "
                f"--runs-dir or $SSLTUI_RUNS_DIR"
            ) from None

    def run_entries(self) -> list[os.DirEntry[str]]:
        """The run folders' directory entries, by name (no dot folders, not the cache)."""
        try:
            entries = sorted(os.scandir(self.root), key=lambda e: e.name)
        except FileNotFoundError:
            return []
        except NotADirectoryError:
            if not self.root.is_file():
                return []  # a folder above it is a file (HOME, say): no runs dir, so no runs yet
            raise ConfigError(f"runs dir {self.root} is a file, not a folder (--runs-dir / $SSLTUI_RUNS_DIR)") from None
        except OSError as exc:
            raise ConfigError(f"runs dir {self.root}: cannot list ({exc.strerror})") from None
        return [e for e in entries if e.is_dir() and not e.name.startswith(".") and e.name not in NOT_RUNS]

    def iter_dirs(self) -> Iterator[RunDir]:
        for e in self.run_entries():
            yield RunDir(Path(e.path))

    def list(self) -> list[RunInfo]:
        """Every run, running ones first, then newest first."""
        return list(self.listing()[0])

    def listing(self, limit: int | None = None) -> tuple[Iterator[RunInfo], int]:
        """The first `limit` runs in the order of `list` (all when None), made one by one as
        they are consumed, and how many runs there are. Every summary is read, but only its
        status and start time are validated to sort (a ninth of the work of validating it
        whole, measured on 10,000 runs); only the runs consumed are validated whole."""
        listed = sorted(self._first_pass(), key=_Listed.sort_key)
        chosen = listed if limit is None else listed[: max(0, limit)]
        return (entry.info() for entry in chosen), len(listed)

    def _first_pass(self) -> Iterator[_Listed]:
        files: dict[str, SummaryFile] = {}
        for e in self.run_entries():
            name, where, lock = e.name, e.path, os.path.join(e.path, "run.lock")
            try:
                file = read_summary_file(os.path.join(where, "summary.json"), self._files.get(name))
            except OSError as exc:
                yield _Listed(name, where, None, "damaged", error=f"summary.json unreadable: {exc.strerror}")
                continue
            if file is None:
                yield _Listed(name, where, None, listed_status(None, lock))
                continue
            files[name] = file
            order = file.order
            if isinstance(order, SummaryDamaged):
                yield _Listed(name, where, file, "damaged", error=f"summary.json damaged: {order}")
            else:
                yield _Listed(name, where, file, listed_status(order.status, lock), order.started or 0.0)
        self._files = files

    def get(self, run_id: str) -> RunDir:
        """A run by id or unique id prefix/suffix (never a path: `..` is no run)."""
        if not _ID_OK.fullmatch(run_id) or run_id in (".", ".."):
            raise ConfigError(f"{quoted(run_id)} is not a run id (letters, digits, - _ .; see `ssltui runs`)")
        if run_id.startswith(".") or run_id in NOT_RUNS:  # hidden folders and the store's own are no runs
            raise ConfigError(
                f"no run {run_id!r} in {self.root} (a run id never starts with '.' and is not "
                f"{' or '.join(NOT_RUNS)}; see `ssltui runs`)"
            )
        exact = self.root / run_id
        if exact.is_dir():
            return RunDir(exact)
        matches = [d for d in self.iter_dirs() if d.id.startswith(run_id) or d.id.endswith(run_id)]
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise ConfigError(f"no run {run_id!r} in {self.root}")
        raise ConfigError(f"run id {run_id!r} is ambiguous ({len(matches)} runs match)")

    def cache_dir(self) -> Path:
        return self.root / "cache"

    def sweeps_dir(self) -> Path:
        """Where the default sweep storage (an SQLite file) lives."""
        return self.root / "sweeps"

    def find_unfinished(self, same: Callable[[RunDir], bool]) -> RunDir | None:
        """The newest interrupted, failed or stale run for which `same(run)` holds (for
        `ssltui run ... --resume`: the same identity); ConfigError when one is still running elsewhere."""
        for info in self.list():
            if info.status not in ("interrupted", "failed", "stale", "running"):
                continue
            run = RunDir(info.path)
            try:
                match = same(run)
            except ConfigError:
                continue
            if match:
                if info.status == "running":
                    raise ConfigError(f"run {info.id} is still running in another process")
                return run
        return None
