"""Ctrl-C and SIGTERM for the commands that train: the first stops cleanly, a second at once."""

from __future__ import annotations

import os
import signal
import sys
from typing import Callable

from ssltui.core.errors import ExitCode


def on_interrupt(request_stop: Callable[[str], None], stopping: str, again: str) -> None:
    """On SIGINT/SIGTERM call `request_stop("stopped by SIGINT")` (it must be signal-safe: it
    sets flags) and say `stopping`; a second signal exits with 130 at once, saying `again`."""
    count = {"n": 0}

    def handler(signum, _frame):
        count["n"] += 1
        name = signal.Signals(signum).name
        if count["n"] > 1:
            print(f"ssltui: {name} again, exiting now ({again})", file=sys.stderr, flush=True)
            os._exit(ExitCode.INTERRUPTED)
        print(f"ssltui: {name}: {stopping} (again to exit at once)", file=sys.stderr, flush=True)
        request_stop(f"stopped by {name}")

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
