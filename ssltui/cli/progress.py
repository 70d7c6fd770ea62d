"""Progress on stderr: rich progress bars on a terminal, plain lines otherwise."""

from __future__ import annotations

import sys
from typing import TextIO

from ssltui.engine.events import format_event, stamp


class PlainProgress:
    """One line per event a person wants to read (phase, epoch, result, log)."""

    def __init__(self, stream: TextIO = sys.stderr):
        self.stream = stream

    def __call__(self, event: dict) -> None:
        line = format_event(event)
        if line is not None:
            print(stamp(line, event.get("t")), file=self.stream, flush=True)

    def close(self) -> None:
        pass


class RichProgress:
    """A progress bar per phase: epoch, loss, images/s and ETA."""

    def __init__(self, stream: TextIO = sys.stderr):
        from rich.console import Console
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                   TimeRemainingColumn)

        self.console = Console(file=stream, stderr=True)
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[status]}"), TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
            console=self.console, transient=False,
        )
        self.tasks: dict[str, int] = {}
        self.progress.start()

    def __call__(self, event: dict) -> None:
        kind = event.get("event")
        if kind == "phase_start":
            total = event.get("epochs", 1) * max(1, event.get("steps_per_epoch", 1))
            done = event.get("start_epoch", 0) * max(1, event.get("steps_per_epoch", 1))
            self.tasks[event["phase"]] = self.progress.add_task(event["phase"], total=total, completed=done,
                                                                status="")
        elif kind in ("step", "epoch") and event.get("phase") in self.tasks:
            status = f"ep {event['epoch'] + (0 if kind == 'epoch' else 1)} loss {event['loss']:.3f} " \
                     f"{event.get('images_per_s', 0):.0f} img/s"
            for k in ("val_acc", "knn_acc", "rot_acc"):
                if k in event:
                    status += f" {k} {100 * event[k]:.1f}%"
            self.progress.update(self.tasks[event["phase"]], completed=event["step"], status=status)
        elif kind == "phase_end" and event.get("phase") in self.tasks:
            task = self.tasks[event["phase"]]
            self.progress.update(task, completed=self.progress.tasks[task].total)
        elif kind in ("log", "result", "data", "run_end"):
            line = format_event(event)
            if line:
                self.progress.console.print(line, markup=False, highlight=False)

    def close(self) -> None:
        self.progress.stop()


def make_progress(quiet: bool = False):
    if quiet:
        return None
    if sys.stderr.isatty():
        return RichProgress()
    return PlainProgress()
