"""Progress on stderr: rich progress bars on a terminal, plain lines otherwise."""

from __future__ import annotations

import sys
from typing import TextIO

from ssltui.core.events import Epoch, Event, PhaseEnd, PhaseStart, Step, stamp
from ssltui.view.format import duration, images_rate

SHORT_ACCURACY = {"val_acc": "val", "knn_acc": "kNN", "rot_acc": "rot"}


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
    """A progress bar per phase, one line each whatever the terminal's width: the phase's label,
    a bar, percent, ETA, then the worker (phases side by side), epoch, loss, monitored accuracy
    and images/s as far as they fit."""

    def __init__(self, stream: TextIO = sys.stderr, width: int | None = None):
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn
        from rich.table import Column

        self.console = Console(file=stream, stderr=True, width=width)
        narrow = self.console.width < 100
        self.progress = Progress(
            TextColumn("[bold]{task.description}", table_column=Column(width=20, no_wrap=True, overflow="ellipsis")),
            BarColumn(bar_width=5 if narrow else 24),
            TaskProgressColumn(),
            # as wide as its text (never cut: 'eta 1:0…' says nothing), at least an hour's width so
            # that the bar does not move while the ETA counts down
            TextColumn("{task.fields[eta]}", table_column=Column(min_width=len("eta 9:59:59"), no_wrap=True)),
            TextColumn("{task.fields[status]}", table_column=Column(ratio=1, no_wrap=True, overflow="ellipsis")),
            console=self.console,
            transient=False,
            expand=True,
        )
        self.tasks: dict[str, int] = {}
        self.epochs: dict[str, int] = {}
        self.workers: dict[str, str] = {}  # phase -> "w1 " when phases run side by side
        self.progress.start()

    def __call__(self, event: Event) -> None:
        if isinstance(event, PhaseStart):
            self.epochs[event.phase] = event.epochs
            # the worker leads the status: at the end of the label, an 80-column line would cut it
            self.workers[event.phase] = "" if event.worker is None else f"w{event.worker} "
            self.tasks[event.phase] = self.progress.add_task(
                event.label(),
                total=event.epochs * event.steps_per_epoch,
                completed=event.start_epoch * event.steps_per_epoch,
                status=f"{self.workers[event.phase]}first step…",
                eta="",
            )
        elif isinstance(event, (Step, Epoch)) and event.phase in self.tasks:
            # a step names the epoch in progress (1-based, as a stop message does); an epoch event the one done
            epoch = event.epoch if isinstance(event, Epoch) else min(event.epoch + 1, self.epochs[event.phase])
            status = f"{self.workers[event.phase]}ep {epoch}/{self.epochs[event.phase]} loss {event.loss:.3f}"
            if isinstance(event, Epoch):
                status += "".join(f" {SHORT_ACCURACY[k]} {100 * v:.1f}%" for k, v in event.accuracies().items())
            status += f" {images_rate(event.images_per_s)}"  # last: the first cut on a narrow terminal
            task = self.tasks[event.phase]
            self.progress.update(task, completed=event.step, status=status)
            self.progress.update(task, eta=f"eta {duration(self.progress.tasks[task].time_remaining)}")
        elif isinstance(event, PhaseEnd) and event.phase in self.tasks:
            task = self.tasks[event.phase]
            self.progress.update(task, completed=self.progress.tasks[task].total, eta="done")
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
