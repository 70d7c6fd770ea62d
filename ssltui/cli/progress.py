"""Progress on stderr: rich progress bars on a terminal, plain lines otherwise."""

from __future__ import annotations

import sys
from typing import TextIO

from ssltui.engine.events import Epoch, Event, PhaseEnd, PhaseStart, Step, stamp


class PlainProgress:
    """One line per event a person wants to read (phase, epoch, result, log)."""

    def __init__(self, stream: TextIO = sys.stderr):
        self.stream = stream

    def __call__(self, event: Event) -> None:
        line = event.line()
        if line is not None:
            print(stamp(line, event.t), file=self.stream, flush=True)

    def close(self) -> None:
        pass


class RichProgress:
    """A progress bar per phase: epoch, loss, images/s and ETA; phases running side by side
    (worker processes) each have their live bar, labelled with their worker."""

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

    def __call__(self, event: Event) -> None:
        if isinstance(event, PhaseStart):
            label = event.label() + (f" (w{event.worker})" if event.worker is not None else "")
            self.tasks[event.phase] = self.progress.add_task(
                label, total=event.epochs * event.steps_per_epoch,
                completed=event.start_epoch * event.steps_per_epoch, status="")
        elif isinstance(event, (Step, Epoch)) and event.phase in self.tasks:
            epoch = event.epoch if isinstance(event, Epoch) else event.epoch + 1
            status = f"ep {epoch} loss {event.loss:.3f} {event.images_per_s or 0:.0f} img/s"
            if isinstance(event, Epoch):
                status += "".join(f" {k} {100 * v:.1f}%" for k, v in event.accuracies().items())
            self.progress.update(self.tasks[event.phase], completed=event.step, status=status)
        elif isinstance(event, PhaseEnd) and event.phase in self.tasks:
            task = self.tasks[event.phase]
            self.progress.update(task, completed=self.progress.tasks[task].total)
        elif not isinstance(event, (PhaseStart, Step, Epoch, PhaseEnd)):
            line = event.line()
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
