"""summary.json: a run's status, results, timings and provenance, as one declared model.

The training process writes it atomically after every phase; every reader validates it with
the same model, so a damaged or hand-edited file (a NaN accuracy, a year-3 million start time,
a list where a number belongs) is reported as damaged with its reason instead of breaking a
listing or a table. Pure Python (pydantic, no torch).
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import PydanticSerializationError

from ssltui.core.errors import validation_problem
from ssltui.core.events import SCHEMA_VERSION, ResultRecord

STATUSES = ("running", "completed", "failed", "interrupted", "pruned")
# pruned: a sweep's pruner stopped the run early (a checkpoint is kept; `ssltui resume` continues it).
TERMINAL_STATUSES = ("completed", "failed", "interrupted", "pruned")
# Unix times from 1970 to the year 5138: a summary outside it is damaged, not a date to format.
Timestamp = Field(None, ge=0.0, le=1e11, allow_inf_nan=False)
Status = Literal["running", "completed", "failed", "interrupted", "pruned"]


class PhaseRecord(BaseModel):
    model_config = ConfigDict(extra="allow")

    status: Literal["done", "running", "interrupted", "failed"] = "done"
    seconds: float | None = Field(None, allow_inf_nan=False)
    cached: bool = False


class SweepRef(BaseModel):
    """The sweep trial a run is (`ssltui sweep`): the sweep's name, the Optuna trial number and
    the values it tried, so a listing needs no database to say which trial a run was."""

    model_config = ConfigDict(extra="allow")

    name: str
    trial: int = Field(ge=0)
    params: dict[str, str | bool | int | float] = {}


class RunSummary(BaseModel):
    """What `ssltui runs/show/table` and the TUI know of a run without reading its events."""

    model_config = ConfigDict(extra="allow", validate_assignment=False)

    schema_version: int = 1  # absent in runs written before the typed events: version 1
    run_id: str = ""
    preset: str = ""
    description: str = ""
    group: str = ""
    status: Status = "running"
    methods: list[str] = []
    evaluations: list[str] = []
    labels: list[float] = []
    seeds: list[int] = []
    data: str = ""
    device: str | None = None
    results: list[ResultRecord] = []
    phases: dict[str, PhaseRecord] = {}
    timings: dict[str, float] = {}
    started: float | None = Timestamp
    ended: float | None = Timestamp
    error: str | None = None
    pid: int | None = None
    host: str | None = None
    resumes: int = 0
    versions: dict[str, str] = {}
    argv: list[str] = []
    memory: dict[str, float] = {}
    sweep: SweepRef | None = None

    @classmethod
    def new(cls, **values: Any) -> RunSummary:
        return cls(schema_version=SCHEMA_VERSION, **values)

    def add_timing(self, kind: str, seconds: float) -> None:
        self.timings[kind] = round(self.timings.get(kind, 0.0) + seconds, 3)

    def to_json_text(self) -> str:
        try:
            return self.model_dump_json(indent=2) + "\n"
        except PydanticSerializationError:
            # A lone surrogate (an undecodable file name in argv or in an error message) has no
            # UTF-8 form: write it as '\\udcff' text rather than fail to record the run.
            return json.dumps(_utf8_safe(self.model_dump(mode="json")), indent=2, ensure_ascii=False) + "\n"


def _utf8_safe(value: Any) -> Any:
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {_utf8_safe(k): _utf8_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_utf8_safe(v) for v in value]
    return value


class RunOrder(BaseModel):
    """The two fields a listing sorts by, validated exactly as RunSummary validates them: a
    listing of thousands of runs reads these for every run and the whole model only for the
    rows it shows (about ten times cheaper per run)."""

    model_config = ConfigDict(extra="ignore")

    status: Status = "running"
    started: float | None = Timestamp


class SummaryDamaged(ValueError):
    """summary.json exists but cannot be used; the message says why, in one line."""


def parse_summary(data: bytes) -> RunSummary:
    """Validate summary.json's bytes; SummaryDamaged with the first problem otherwise."""
    try:
        return RunSummary.model_validate_json(data)
    except ValidationError as exc:
        raise SummaryDamaged(validation_problem(exc)) from None


def parse_order(data: bytes) -> RunOrder:
    """Only the status and start time of summary.json's bytes (SummaryDamaged as parse_summary)."""
    try:
        return RunOrder.model_validate_json(data)
    except ValidationError as exc:
        raise SummaryDamaged(validation_problem(exc)) from None
