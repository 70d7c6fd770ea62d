"""Tail a run folder from a thread worker: new metrics events, new log lines, the run's status.

The UI never reads files itself: a thread worker calls `RunTail.poll()` a few times a second
and posts one `RunUpdate` message per poll that found something. Events are batched, so the
message rate is bounded by the poll rate whatever the training speed (no backlog).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from textual.message import Message

from ssltui.core.events import Event, parse_event
from ssltui.core.store import RunDir

POLL_SECONDS = 0.25
STATUS_EVERY_SECONDS = 1.0
PROCESS_LOG = "process.log"  # the launched process's own stdout/stderr (see launch.py)
LAUNCH_MARK = "──── ssltui"  # starts the line the app writes before each process it starts
GONE = "gone"  # the status of a run whose folder was deleted or moved while it was shown


class FileTail:
    """New whole lines of a growing file; notices when it shrank (rewritten from scratch)."""

    def __init__(self, path: Path):
        self.path = path
        self.offset = 0
        self.partial = b""

    def read(self) -> tuple[list[bytes], bool]:
        """(new complete lines, whether the file was truncated since the last read)."""
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return [], False
        truncated = size < self.offset
        if truncated:
            self.offset, self.partial = 0, b""
        if size == self.offset:
            return [], truncated
        with open(self.path, "rb") as fh:
            fh.seek(self.offset)
            data = fh.read(size - self.offset)
        self.offset += len(data)
        data = self.partial + data
        *lines, self.partial = data.split(b"\n")  # a torn last line waits for its end
        return [ln for ln in lines if ln.strip()], truncated


@dataclass
class Poll:
    events: list[Event] = field(default_factory=list)
    process_lines: list[str] = field(default_factory=list)  # new lines of process.log
    reset: bool = False
    status: str | None = None
    error: str | None = None

    def __bool__(self) -> bool:
        return bool(self.events or self.process_lines or self.reset or self.status)


class RunTail:
    """Everything new in one run folder since the last poll."""

    def __init__(self, run: RunDir):
        self.run = run
        self.metrics = FileTail(run.metrics_path)
        self.process_log = FileTail(run.path / PROCESS_LOG)
        self.last_status: tuple[str, str | None] | None = None
        self.last_status_check = 0.0

    def poll(self, now: float | None = None) -> Poll:
        out = Poll()
        lines, out.reset = self.metrics.read()
        out.events = [e for e in map(parse_event, lines) if e is not None]
        new, _ = self.process_log.read()
        out.process_lines = [ln.decode("utf-8", "replace").rstrip() for ln in new]
        now = time.monotonic() if now is None else now
        if now - self.last_status_check >= STATUS_EVERY_SECONDS or out.events:
            self.last_status_check = now
            info = self.run.info()
            status = (info.status, info.error) if self.run.path.is_dir() else (GONE, None)
            if status != self.last_status:
                self.last_status = status
                out.status, out.error = status
        return out


class RunUpdate(Message):
    """New things in a run folder, posted by the watcher thread."""

    def __init__(self, run_id: str, poll: Poll) -> None:
        super().__init__()
        self.run_id = run_id
        self.poll = poll
