"""One stop request for a run, and the one place SIGINT/SIGTERM become it.

A `StopToken` is made by whoever starts the work (the CLI, a sweep worker, a worker process) and
shared by everything that must stop together: the data load polls it, the training loop checks
it after every step, the phase executor between phases, the scheduler passes it on to its
worker processes. Asking is signal-safe (it only sets attributes). A sweep trial's token is a
child of the sweep worker's: a Ctrl-C stops the trial, a pruned trial stops only itself.
"""

from __future__ import annotations

import os
import signal
import sys

from ssltui.core.errors import ExitCode

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopToken:
    """Asked once to stop (`request`), checked anywhere (`requested`, `reason`, `status`)."""

    def __init__(self, parent: StopToken | None = None):
        self.parent = parent
        self._reason: str | None = None
        self._status = "interrupted"

    def request(self, reason: str = "interrupted", status: str = "interrupted") -> None:
        """Stop after the current step. `status` is what the run is marked: "interrupted", or
        "pruned" when a sweep's pruner asks; the first reason stays, except that a user's
        interrupt replaces a prune (the sweep must not count that trial as pruned)."""
        if self._reason is None or (status == "interrupted" and self._status != "interrupted"):
            self._reason, self._status = reason, status

    @property
    def reason(self) -> str | None:
        """Why it was asked to stop; None while it was not."""
        if self.parent is not None and self.parent.reason is not None:
            return self.parent.reason
        return self._reason

    @property
    def status(self) -> str:
        if self.parent is not None and self.parent.reason is not None:
            return self.parent.status
        return self._status

    @property
    def requested(self) -> bool:
        return self.reason is not None

    def poll(self) -> str | None:
        """The reason, for checks that take a callable (a data load between images)."""
        return self.reason


def on_stop_signals(token: StopToken, stopping: str | None = None, again: str | None = None) -> None:
    """SIGINT/SIGTERM ask `token` to stop ("stopped by SIGINT"); a second one exits with 130 at
    once. `stopping` and `again`, when given, are what the user is told each time (a worker
    process, whose coordinator speaks for it, says nothing)."""
    count = [0]

    def handler(signum: int, _frame: object) -> None:
        count[0] += 1
        name = signal.Signals(signum).name
        if count[0] > 1:
            if again is not None:
                print(f"ssltui: {name} again, exiting now ({again})", file=sys.stderr, flush=True)
            os._exit(ExitCode.INTERRUPTED)
        if stopping is not None:
            print(f"ssltui: {name}: {stopping} (again to exit at once)", file=sys.stderr, flush=True)
        token.request(f"stopped by {name}")

    for sig in STOP_SIGNALS:
        signal.signal(sig, handler)
