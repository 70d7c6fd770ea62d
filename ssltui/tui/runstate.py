"""What the live screen knows about one run, folded from its metrics.jsonl events.

Pure Python (no Textual, no torch) so it is tested on its own and shared by every screen.
Times come from the events' own "t" stamps, never from the clock, so the same events always
give the same picture (snapshot tests, a finished run reopened later).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from ssltui.core.events import (
    ACCURACY_NAMES,
    DataLoaded,
    Epoch,
    Event,
    Log,
    PhaseEnd,
    PhaseRef,
    PhaseStart,
    Result,
    ResultRecord,
    Resume,
    RunEnd,
    RunStart,
    Step,
)
from ssltui.view.format import label_fraction, pct

LOG_TAIL = 200


@dataclass
class PhaseState:
    """One phase: its size, where it is, its step and epoch curves."""

    ref: PhaseRef
    epochs: int = 1
    steps_per_epoch: int = 1
    batch_size: int = 0
    start_epoch: int = 0
    step: int = 0  # global steps done
    epoch: int = 0  # epochs done
    loss: float | None = None
    lr: float | None = None
    step_rate: float | None = None  # images/s of the newest log point
    t_start: float | None = None  # first phase_start (or resume) of the current process
    step_start: int = 0  # steps done when t_start was taken
    t_last: float | None = None
    done: bool = False
    cached: bool = False
    seconds: float | None = None
    steps: dict[int, tuple[float, float]] = field(default_factory=dict)  # step -> (loss, lr)
    epoch_records: dict[int, Epoch] = field(default_factory=dict)  # epoch -> epoch event (later wins)

    @property
    def name(self) -> str:
        return self.ref.phase

    @property
    def total_steps(self) -> int:
        return max(1, self.epochs * self.steps_per_epoch)

    @property
    def fraction(self) -> float:
        return 1.0 if self.done else min(1.0, self.step / self.total_steps)

    @property
    def current_epoch(self) -> int:
        """The epoch shown, 1-based: the one in progress (as a stop message names it), or the
        last when done."""
        return self.epochs if self.done else min(self.epoch + 1, self.epochs)

    @property
    def started_steps(self) -> bool:
        return self.step > self.step_start or bool(self.epoch_records)

    @property
    def images_per_s(self) -> float | None:
        """Images a second over the epochs recorded so far (their images over their seconds), or
        the newest log point's rate inside the first epoch. A linear probe's epoch lasts a few
        milliseconds, so one epoch's own rate jumps by 30x with timer noise; the phase's mean does not."""
        timed = [(e.images_per_s, e.seconds) for e in self.epoch_records.values() if e.images_per_s and e.seconds]
        seconds = sum(s for _, s in timed)
        if seconds > 0:
            return sum(r * s for r, s in timed) / seconds
        return self.step_rate

    def eta_seconds(self) -> float | None:
        """Remaining seconds at the rate seen since this process started the phase."""
        if self.done:
            return 0.0
        if self.t_start is None or self.t_last is None:
            return None
        done_here = self.step - self.step_start
        elapsed = self.t_last - self.t_start
        if done_here <= 0 or elapsed <= 0:
            return None
        return (self.total_steps - self.step) * elapsed / done_here

    def accuracy(self) -> dict[str, list[tuple[int, float]]]:
        """Monitored accuracy curves: key -> [(epoch, accuracy)]."""
        out: dict[str, list[tuple[int, float]]] = {}
        for ep in sorted(self.epoch_records):
            for k, v in self.epoch_records[ep].accuracies().items():
                out.setdefault(k, []).append((ep, v))
        return out

    # ------------------------------------------------------------ folding
    def started(self, e: PhaseStart) -> None:
        self.epochs, self.steps_per_epoch = max(1, e.epochs), max(1, e.steps_per_epoch)
        self.batch_size, self.start_epoch = e.batch_size, e.start_epoch
        self.epoch = e.start_epoch
        self.step = e.start_epoch * self.steps_per_epoch if self.step == 0 else self.step
        self.done = False
        self.t_start, self.step_start, self.t_last = e.t, self.step, e.t
        # A resumed phase restarts the epoch it stopped in: its later records replace these.
        for ep in [ep for ep in self.epoch_records if ep > e.start_epoch]:
            del self.epoch_records[ep]

    def progressed(self, e: Step | Epoch) -> None:
        self.step, self.loss, self.lr = e.step, e.loss, e.lr
        if isinstance(e, Step) and e.images_per_s is not None:
            self.step_rate = e.images_per_s
        self.t_last = e.t
        if self.t_start is None:
            self.t_start, self.step_start = e.t, self.step
        if isinstance(e, Step):
            self.steps[e.step] = (e.loss, e.lr)
        else:
            self.epoch, self.epochs = e.epoch, max(1, e.epochs)
            self.epoch_records[e.epoch] = e

    def ended(self, e: PhaseEnd) -> None:
        self.done, self.seconds, self.cached = True, e.seconds, e.cached
        self.step = self.total_steps
        self.epoch = max(self.epoch, self.epochs)


def clock(t: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(t))


def event_line(e: Event) -> str | None:
    """A short line for the live log (the phase's label, not its id, so an epoch fits 80 columns);
    None for events that only move a bar."""
    if isinstance(e, Epoch):
        accs = " ".join(f"{ACCURACY_NAMES.get(k, k)} {pct(v, 1)}%" for k, v in e.accuracies().items())
        return f"{e.label()} epoch {e.epoch}/{e.epochs} loss {e.loss:.4f} lr {e.lr:.3g} {accs}".rstrip()
    if isinstance(e, PhaseStart):
        again = f" from epoch {e.start_epoch + 1}" if e.start_epoch else ""
        return f"{e.label()} started{again}: {e.epochs} epochs x {e.steps_per_epoch} steps"
    if isinstance(e, PhaseEnd):
        return f"{e.label()} " + ("reused from the cache" if e.cached else f"done in {e.seconds:.1f} s")
    if isinstance(e, Resume):
        return f"{e.label()} resumed from its checkpoint (epoch {e.epoch + 1}, step {e.step_in_epoch})"
    if isinstance(e, Result):
        val = "" if e.val_acc is None else f" (val {pct(e.val_acc)})"
        return f"result {e.method}/{e.evaluation} {label_fraction(e.labels)} s{e.seed}: test {pct(e.test_acc)}{val}"
    if isinstance(e, Log):
        return e.message if e.level == "info" else e.line()
    if isinstance(e, Step):
        return None
    return e.line()


@dataclass
class RunState:
    """The fold of a run's events; `apply` them in file order."""

    run_id: str = ""
    preset: str = ""
    device: str = ""
    status: str = "created"
    error: str | None = None
    data: str = ""
    data_loaded: bool = False
    attempts: int = 0  # run_start events: 2 and more after a resume
    started_at: float | None = None  # the newest run_start's time
    planned_phases: int | None = None  # from run_start (None in runs written before schema 2)
    phases: dict[str, PhaseState] = field(default_factory=dict)
    results: list[ResultRecord] = field(default_factory=list)
    logs: list[str] = field(default_factory=list)  # the newest event lines of this attempt, stamped
    last_log: str = ""  # the newest log event's message (what loading data is doing)
    warnings: list[str] = field(default_factory=list)  # every attempt's, once each (the SimCLR guard rail's)
    log_count: int = 0  # lines ever added to `logs` (a reader's bookmark)
    events_seen: int = 0

    def reset(self) -> None:
        """Forget everything (the metrics file was truncated by a resume)."""
        self.__init__()  # type: ignore[misc]

    @property
    def current(self) -> PhaseState | None:
        """The phase that started last."""
        return next(reversed(self.phases.values()), None) if self.phases else None

    def phase(self, ref: PhaseRef) -> PhaseState:
        if ref.phase not in self.phases:
            self.phases[ref.phase] = PhaseState(ref.ref)
        return self.phases[ref.phase]

    @property
    def phases_done(self) -> int:
        return sum(p.done for p in self.phases.values())

    @property
    def total_phases(self) -> int:
        """The plan's phase count (run_start says it), else those seen so far."""
        return max(self.planned_phases or 0, len(self.phases))

    def activity(self) -> str | None:
        """What the run is doing when no bar moves yet: loading data, waiting for a first step."""
        if self.status != "running":
            return None
        if not self.data_loaded:
            return f"loading data: {self.last_log}" if self.last_log else "loading data…"
        p = self.current
        if p is None:
            return "data loaded; preparing the first phase…"
        if not p.done and not p.started_steps:
            return f"{p.ref.label()}: waiting for the first step…"
        return None

    def apply(self, e: Event) -> None:
        self.events_seen += 1
        if isinstance(e, RunStart):
            if self.attempts:  # a resume: the earlier attempt's end (its error, its log) is history
                self.logs.clear()
                self.error, self.data_loaded, self.last_log = None, False, ""
            self.attempts += 1
            self.started_at = e.t
            self.run_id, self.preset, self.device = e.run_id or self.run_id, e.preset, e.device
            self.planned_phases = e.phases
            self.status = "running"
        elif isinstance(e, DataLoaded):
            self.data, self.data_loaded = e.source, True
        elif isinstance(e, PhaseStart):
            self.phase(e).started(e)
        elif isinstance(e, Resume):
            p = self.phase(e)
            p.step = e.epoch * p.steps_per_epoch + e.step_in_epoch
        elif isinstance(e, (Step, Epoch)):
            self.phase(e).progressed(e)
        elif isinstance(e, PhaseEnd):
            self.phase(e).ended(e)
        elif isinstance(e, Result):
            self.results = [r for r in self.results if r.key() != e.key()] + [e.record()]
        elif isinstance(e, Log):
            self.last_log = e.message
            if e.level == "warning" and e.message not in self.warnings:
                self.warnings.append(e.message)
        elif isinstance(e, RunEnd):
            self.status, self.error = e.status, e.error
            if self.status == "completed":
                for p in self.phases.values():
                    p.done = True
        line = event_line(e)
        if line is not None:
            self.logs.append(f"{clock(e.t)} {line}")
            self.log_count += 1
            del self.logs[:-LOG_TAIL]
