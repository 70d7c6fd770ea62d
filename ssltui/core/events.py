"""Run events: the typed records a run appends to `metrics.jsonl`, one JSON object a line.

This module is the run store's event contract (docs/run-store.md): the engine emits these
classes, and every reader (CLI progress, `ssltui show`, the TUI) parses the file back into
the same classes with `parse_event`, so no reader interprets raw dicts. The JSON layout is
flat (a phase's fields sit beside the event's own) and `event` names the kind. Version 1
(before these classes) wrote the same layout, so older runs read back unchanged.

Pure Python (pydantic, no torch): the TUI imports it.
"""

from __future__ import annotations

import json
import math
import time
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

SCHEMA_VERSION = 2
ACCURACY_KEYS = ("val_acc", "knn_acc", "rot_acc")  # monitored accuracies an epoch event may carry
ACCURACY_NAMES = {"val_acc": "validation", "knn_acc": "kNN", "rot_acc": "rotation"}


def fraction_label(frac: float) -> str:
    """0.01 -> '1%' (torch- and UI-free, so the engine's phase labels can use it too)."""
    return f"{100 * frac:g}%"


def _finite_or_none(v: Any) -> Any:
    return None if isinstance(v, float) and not math.isfinite(v) else v


class Record(BaseModel):
    """Read leniently (unknown keys ignored: a newer writer may add some), never mutated."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class PhaseRef(Record):
    """Which phase an event belongs to. `phase` is its id, unique in the run (checkpoints are
    named by it); the other fields say what it is, so nobody parses the id."""

    phase: str
    kind: str  # pretrain | supervised | linear | semi | knn
    method: str
    seed: int = 0
    labels: float | None = None
    evaluation: str | None = None

    @classmethod
    def pretraining(cls, method: str, seed: int, key: str) -> PhaseRef:
        return cls(phase=f"{method}/pretrain/seed{seed}/{key[:8]}", kind="pretrain", method=method, seed=seed)

    @classmethod
    def evaluating(cls, part: int, method: str, evaluation: str, labels: float, seed: int) -> PhaseRef:
        return cls(
            phase=f"p{part}-{method}/{evaluation}/labels{labels:g}/seed{seed}",
            kind=evaluation,
            method=method,
            seed=seed,
            labels=labels,
            evaluation=evaluation,
        )

    @property
    def ref(self) -> PhaseRef:
        """Just the phase's identity (for an event that carries more)."""
        return PhaseRef(
            phase=self.phase,
            kind=self.kind,
            method=self.method,
            seed=self.seed,
            labels=self.labels,
            evaluation=self.evaluation,
        )

    def label(self) -> str:
        """Short and readable: 'simclr pretrain s0', 'rotnet semi 10% s0'."""
        words = [self.method, self.kind if self.kind != self.method else ""]
        if self.labels is not None:
            words.append(fraction_label(self.labels))
        words.append(f"s{self.seed}")
        return " ".join(w for w in words if w)


class ResultRecord(Record):
    """One evaluation's outcome (in `result` events and summary.json's `results`)."""

    method: str
    evaluation: str
    labels: float = Field(gt=0.0, le=1.0)
    seed: int = Field(ge=0)
    test_acc: float = Field(ge=0.0, le=1.0, allow_inf_nan=False)
    val_acc: float | None = Field(None, ge=0.0, le=1.0)
    label_count: int | None = None
    seconds: float | None = None
    part: int | None = None
    preset_description: str = ""
    probe: str | None = None  # the linear probe's features: "plain" or augmented copies

    @field_validator("val_acc", "seconds", mode="before")
    @classmethod
    def _nan_is_none(cls, v: Any) -> Any:
        return _finite_or_none(v)

    def key(self) -> tuple[Any, ...]:
        return (self.method, self.evaluation, self.labels, self.seed)


class Event(Record):
    """Base of every event: `t` is the Unix time it was emitted."""

    t: float = Field(default_factory=lambda: round(time.time(), 3))

    def line(self) -> str | None:
        """A line for run.log and plain progress; None for high-rate events."""
        return None

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


class RunStart(Event):
    event: Literal["run_start"] = "run_start"
    run_id: str
    preset: str = ""
    device: str = ""
    parts: int = 1
    phases: int | None = None  # how many phases the plan has (to show "3/10 phases done")
    schema_version: int = 1

    def line(self) -> str:
        return f"run {self.run_id} ({self.preset}) on {self.device}"


class DataLoaded(Event):
    event: Literal["data"] = "data"
    source: str
    train: int
    val: int
    test: int
    classes: list[str] = []
    decode_seconds: float = 0.0
    load_seconds: float = 0.0
    from_cache: bool = False
    notes: list[str] = []  # what the load logged (cache stale and why, cache not saved...)

    def line(self) -> str:
        how = "cache" if self.from_cache else "decoded"
        return (
            f"data {self.source}: {self.train} train / {self.val} val / {self.test} test, "
            f"{len(self.classes)} classes ({how} in {self.load_seconds:.2f} s)"
        )


class PhaseEvent(Event, PhaseRef):
    """An event of one phase: the phase's fields are flattened beside the event's."""


class PhaseStart(PhaseEvent):
    event: Literal["phase_start"] = "phase_start"
    epochs: int = 1
    steps_per_epoch: int = 1
    batch_size: int = 0
    start_epoch: int = 0
    worker: int | None = None  # the worker process (1, 2, ...) running it; None: the run's own process
    device: str | None = None  # that worker's device (`cuda:1`)

    def line(self) -> str:
        resuming = f" (resuming at epoch {self.start_epoch + 1})" if self.start_epoch else ""
        return f"{self.phase}: {self.epochs} epochs x {self.steps_per_epoch} steps{resuming}{self.where()}"

    def where(self) -> str:
        """' on worker 2 (cuda:1)', or '' when the run's own process runs the phase."""
        if self.worker is None:
            return ""
        return f" on worker {self.worker}" + (f" ({self.device})" if self.device else "")


class Step(PhaseEvent):
    """A log point inside an epoch: `step` global steps are done, `epoch` is 0-based."""

    event: Literal["step"] = "step"
    epoch: int
    step: int
    loss: float
    lr: float
    images_per_s: float | None = None


class Epoch(PhaseEvent):
    """The end of an epoch: `epoch` epochs (1-based) and `step` global steps are done."""

    event: Literal["epoch"] = "epoch"
    epoch: int
    epochs: int
    step: int
    loss: float
    lr: float
    images_per_s: float | None = None
    seconds: float | None = None
    val_acc: float | None = None
    knn_acc: float | None = None
    rot_acc: float | None = None
    knn_random: float | None = None  # kNN accuracy of the untrained encoder, for reference
    # A loss of several weighted parts (VICReg's three, Barlow Twins' two): each part's mean over
    # the epoch's steps, weighted as the loss weighs it, so the parts add up to `loss`.
    loss_terms: dict[str, float] | None = None

    @field_validator(*ACCURACY_KEYS, mode="before")
    @classmethod
    def _nan_is_none(cls, v: Any) -> Any:
        return _finite_or_none(v)

    def accuracies(self) -> dict[str, float]:
        return {k: getattr(self, k) for k in ACCURACY_KEYS if getattr(self, k) is not None}

    def line(self) -> str:
        extras = " ".join(f"{k}={100 * v:.2f}%" for k, v in self.accuracies().items())
        if self.loss_terms:
            extras += " (" + " + ".join(f"{k} {v:.4g}" for k, v in self.loss_terms.items()) + ")"
        return (
            f"{self.phase}: epoch {self.epoch}/{self.epochs} loss={self.loss:.4f} lr={self.lr:.4g} "
            f"{self.images_per_s or 0:.0f} img/s {extras}"
        ).rstrip()


class Resume(PhaseEvent):
    event: Literal["resume"] = "resume"
    epoch: int
    step_in_epoch: int

    def line(self) -> str:
        return f"{self.phase}: resumed from checkpoint at epoch {self.epoch + 1}, step {self.step_in_epoch}"


class PhaseEnd(PhaseEvent):
    event: Literal["phase_end"] = "phase_end"
    seconds: float = 0.0
    cached: bool = False

    def line(self) -> str:
        return f"{self.phase}: " + ("reused from cache" if self.cached else f"done in {self.seconds:.1f} s")


class Result(Event, ResultRecord):
    event: Literal["result"] = "result"

    def record(self) -> ResultRecord:
        return ResultRecord.model_validate(self.model_dump(exclude={"event", "t"}))

    def line(self) -> str:
        val = "-" if self.val_acc is None else f"{100 * self.val_acc:.2f}%"
        return (
            f"result {self.method}/{self.evaluation} labels={self.labels:g} seed={self.seed}: "
            f"test {100 * self.test_acc:.2f}% (val {val})"
        )


class Log(Event):
    event: Literal["log"] = "log"
    level: Literal["info", "warning", "error"] = "info"
    message: str

    def line(self) -> str:
        return f"{self.level}: {self.message}"


def warning_messages(events: list[Event]) -> list[str]:
    """A run's warnings, such as the SimCLR guard rail's "the encoder is barely training"."""
    return [e.message for e in events if isinstance(e, Log) and e.level == "warning"]


class RunEnd(Event):
    event: Literal["run_end"] = "run_end"
    status: str
    error: str | None = None

    def line(self) -> str:
        return f"run {self.status}" + (f": {self.error}" if self.error else "")


AnyEvent = Annotated[
    Union[RunStart, DataLoaded, PhaseStart, Step, Epoch, Resume, PhaseEnd, Result, Log, RunEnd],
    Field(discriminator="event"),
]
EVENT_TYPES = (RunStart, DataLoaded, PhaseStart, Step, Epoch, Resume, PhaseEnd, Result, Log, RunEnd)
_ADAPTER: TypeAdapter[Event] = TypeAdapter(AnyEvent)


def parse_event(obj: Any) -> Event | None:
    """The typed event of one metrics.jsonl object (a dict, or a JSON line as str/bytes);
    None for a torn, foreign or damaged line, which readers skip."""
    if isinstance(obj, (str, bytes)):
        try:
            obj = json.loads(obj)
        except ValueError:
            return None
    if not isinstance(obj, dict) or obj.get("event") not in _KINDS:
        return None
    try:
        return _ADAPTER.validate_python(obj)
    except ValidationError:
        return None


_KINDS = {cls.model_fields["event"].default for cls in EVENT_TYPES}


def stamp(line: str, t: float | None = None) -> str:
    """'12:34:56 line' in local time."""
    return time.strftime("%H:%M:%S", time.localtime(t or time.time())) + " " + line
