"""Table 1 as the paper lays it out: paper number, ours (mean ± std over seeds), difference.

The one model of the table, pure Python (no torch, no rich): `ssltui table` pools a group of
runs into it, the TUI's results screen compares chosen runs with it (a row per run when
they differ), and both render it through `ssltui.view.tables`.

Rules:
- Only a finite test accuracy in [0, 1] with a method, an evaluation, a label fraction in
  (0, 1] and an integer seed is a result; anything else in a summary is skipped, never pooled.
- A seed counts once per cell: when one (method, evaluation, labels, seed) was measured more
  than once (the same seed in two runs of a group, or recorded again after a resume), the
  newest wins: the result of the run started last, and within a run the one recorded last.
  A cell's `ours` holds one number per distinct seed.
- Results pool across seeds only when every other setting agrees: the resolved configuration
  of the part that made them (config.toml), and the run's data source, apart from what never
  changes a number (UNCOMPARED: seeds and label fractions are the table's own dimensions, the
  list of evaluations, descriptions, checkpoint and log cadence). Results whose settings differ
  are separate rows, each named by the settings that set it apart ("linear.lr=0.2"). A run
  whose configuration cannot be read pools only with others like it.
"""

from __future__ import annotations

import math
import statistics
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, TypeGuard

from ssltui.core import registry
from ssltui.core.store import RunInfo

PAPER_DATA = "cifar10"  # what the paper's numbers were measured on


# Run options and part keys that never change a result, left out when settings are compared.
RUN_OPTIONS = ("preset", "description", "device", "devices", "group", "data_dir", "use_cache", "parts")
UNCOMPARED = ("description", "seeds", "labels", "evaluation")  # a part's own keys
UNCOMPARED_KEYS = (
    "checkpoint_every",
    "checkpoint_seconds",
    "log_seconds",
    "featuremaps",
    "workers",
    "eval_batch_size",
)  # in any section
Settings = tuple[tuple[str, object], ...]  # sorted (dotted key, value) pairs


def _flat(prefix: str, value: object, out: dict[str, object]) -> None:
    if isinstance(value, Mapping):
        for k, v in value.items():
            _flat(f"{prefix}.{k}" if prefix else str(k), v, out)
    elif prefix.rsplit(".", 1)[-1] not in UNCOMPARED_KEYS:
        out[prefix] = tuple(value) if isinstance(value, list) else value


def run_parts(path: Path | str) -> list[tuple[dict[str, Any], Settings]] | None:
    """The parts of the run in folder `path` (its config.toml), each with the settings its results
    are compared by; None when the configuration cannot be read."""
    try:
        doc = tomllib.loads((Path(path) / "config.toml").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    parts = doc.get("parts")
    if not isinstance(parts, list):
        return None
    common: dict[str, object] = {}
    _flat("", {k: v for k, v in doc.items() if k not in RUN_OPTIONS}, common)
    out = []
    for part in parts:
        if isinstance(part, dict):
            flat = dict(common)
            _flat("", {k: v for k, v in part.items() if k not in UNCOMPARED}, flat)
            out.append((part, tuple(sorted(flat.items(), key=lambda kv: kv[0]))))
    return out


def settings_of(
    parts: list[tuple[dict[str, Any], Settings]] | None, method: str, evaluation: str, labels: float, seed: int
) -> Settings | None:
    """The settings of the part that made a result (the one whose method, evaluations, label
    fractions and seeds hold it; else the first of that method and evaluation)."""
    found = [
        (p, st) for p, st in parts or () if p.get("method") == method and evaluation in (p.get("evaluation") or ())
    ]
    exact = [st for p, st in found if labels in (p.get("labels") or ()) and seed in (p.get("seeds") or ())]
    return exact[0] if exact else found[0][1] if found else None


def differences(variants: list[Settings | None]) -> list[dict[str, object]]:
    """For each variant, the settings (dotted key -> value) in which the variants differ."""
    known = [dict(v) for v in variants if v is not None]
    keys = sorted({k for d in known for k in d})
    differ = [k for k in keys if len({repr(d.get(k)) for d in known}) > 1]
    return [{k: dict(v).get(k) for k in differ} if v is not None else {"settings": "not recorded"} for v in variants]


def describe(differs: Mapping[str, object], limit: int = 3) -> str:
    """'linear.lr=0.2, pretrain.epochs=200' (and '+N more')."""

    def show(v: object) -> str:
        return ",".join(map(str, v)) if isinstance(v, tuple) else str(v)

    items = [f"{k}={show(v)}" for k, v in differs.items()]
    return ", ".join(items[:limit]) + (f" +{len(items) - limit} more" if len(items) > limit else "")


def load_paper_table() -> dict[str, Any]:
    """The paper's Table 1 from the shipped data file."""
    text = resources.files("ssltui.reference").joinpath("paper_table1.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)


def mean_std(values: list[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (None for a single value)."""
    if not values:
        return math.nan, None
    mean = statistics.fmean(values)
    return mean, (statistics.stdev(values) if len(values) > 1 else None)


def _number(v: object) -> TypeGuard[int | float]:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


@dataclass(frozen=True)
class Measured:
    """One valid result of one run; `test_acc` is a fraction in [0, 1]."""

    run_id: str
    method: str
    evaluation: str
    labels: float
    seed: int
    test_acc: float
    probe: str | None = None  # a linear result's probe ("plain", "aug8"); None: not recorded
    settings: Settings | None = None  # what the result was made with (see the module's rules)

    @property
    def row_key(self) -> tuple[str, str, Settings | None]:
        return (self.method, self.evaluation, self.settings)

    @property
    def cell_key(self) -> tuple[Any, ...]:
        return (*self.row_key, self.labels, self.seed)


def measured(
    results: Iterable[object], run_id: str = "", parts: list[tuple[dict[str, Any], Settings]] | None = None
) -> list[Measured]:
    """The valid results of one run, in the order recorded (see the module's rules), each with
    the settings of its part where `parts` (run_parts) are given."""
    out = []
    for r in results:
        if not isinstance(r, Mapping):
            continue
        method, evaluation, labels, seed, acc = (
            r.get(k) for k in ("method", "evaluation", "labels", "seed", "test_acc")
        )
        if (
            isinstance(method, str)
            and isinstance(evaluation, str)
            and _number(labels)
            and 0 < labels <= 1
            and isinstance(seed, int)
            and not isinstance(seed, bool)
            and _number(acc)
            and 0 <= acc <= 1
        ):
            probe = r.get("probe")
            out.append(
                Measured(
                    run_id,
                    method,
                    evaluation,
                    float(labels),
                    seed,
                    float(acc),
                    probe if isinstance(probe, str) else None,
                    settings_of(parts, method, evaluation, float(labels), seed),
                )
            )
    return out


def newest_per_seed(results: Iterable[Measured]) -> list[Measured]:
    """One result per (method, evaluation, settings, labels, seed): the last one given wins, so
    pass results oldest first."""
    latest: dict[tuple[Any, ...], Measured] = {}
    for m in results:
        latest.pop(m.cell_key, None)  # re-insert: the dict's order is the order of the winners
        latest[m.cell_key] = m
    return list(latest.values())


def probes(results: Iterable[Measured]) -> dict[tuple[Any, ...], list[str]]:
    """(method, evaluation, settings) -> the probes behind its pooled numbers, sorted, for
    evaluations that read features a chosen way (the linear probe). A result recorded before
    probes were named used the evaluation's default probe."""
    defaults = {e.name: e.default_probe for e in registry.evaluations()}
    out: dict[tuple[Any, ...], set[str]] = {}
    for m in newest_per_seed(results):
        probe = m.probe or defaults.get(m.evaluation)
        if probe:
            out.setdefault(m.row_key, set()).add(probe)
    return {k: sorted(v) for k, v in out.items()}


def pool(results: Iterable[Measured]) -> dict[tuple[Any, ...], dict[float, dict[int, float]]]:
    """(method, evaluation, settings) -> label fraction -> seed -> accuracy in percent (one per seed)."""
    out: dict[tuple[Any, ...], dict[float, dict[int, float]]] = {}
    for m in newest_per_seed(results):
        out.setdefault(m.row_key, {}).setdefault(m.labels, {})[m.seed] = 100 * m.test_acc
    return out


@dataclass
class Cell:
    labels: float
    paper: float | None  # percent
    ours: list[float] = field(default_factory=list)  # percent, one per distinct seed
    seeds: list[int] = field(default_factory=list)  # the seed of each number in `ours`
    best: bool = False  # the highest mean of ours in its column

    @property
    def mean(self) -> float | None:
        return mean_std(self.ours)[0] if self.ours else None

    @property
    def std(self) -> float | None:
        return mean_std(self.ours)[1] if self.ours else None

    @property
    def diff(self) -> float | None:
        """Ours minus the paper, in points (Δ)."""
        return None if self.paper is None or self.mean is None else self.mean - self.paper

    def to_json(self) -> dict[str, Any]:
        return {
            "labels": self.labels,
            "paper": self.paper,
            "ours_mean": self.mean,
            "ours_std": self.std,
            "seeds": len(self.ours),
            "seed_ids": self.seeds,
            "ours": self.ours,
            "diff": self.diff,
            "best": self.best,
        }


@dataclass
class Row:
    name: str
    method: str
    evaluation: str
    cells: list[Cell]
    run_id: str | None = None  # the run of the row when the table compares runs
    in_paper: bool = False
    probes: list[str] = field(default_factory=list)  # a linear row's probes ("plain", "aug8")
    differs: dict[str, object] = field(default_factory=dict)  # the settings that set it apart from its namesakes

    @property
    def measured(self) -> bool:
        return any(c.ours for c in self.cells)


@dataclass
class StudyTable:
    title: str
    labels: list[float]
    rows: list[Row]
    runs: list[str]
    timings: dict[str, float]
    devices: list[str]
    data: list[str] = field(default_factory=list)
    per_run: bool = False  # a row per run (the runs differ) rather than pooled over them
    notes: list[str] = field(default_factory=list)  # how the runs were chosen (a sweep's chosen trial)

    @property
    def seed_counts(self) -> list[int]:
        """The distinct numbers of seeds behind the measured cells, e.g. [3] or [1, 3]."""
        return sorted({len(c.ours) for r in self.rows for c in r.cells if c.ours})

    @property
    def caveats(self) -> list[str]:
        """What stops ours from being read beside the paper's numbers as they stand."""
        out = list(self.notes)
        other = [d for d in self.data if d != PAPER_DATA and not d.startswith("folder:")]
        if other:
            out.append(f"ours on {', '.join(other)} data, the paper's on CIFAR-10: not comparable")
        if self.runs and not self.data:
            out.append("the data of these runs is not recorded")
        if not any(r.measured for r in self.rows):
            out.append("no finished results in these runs yet")
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "labels": self.labels,
            "runs": self.runs,
            "timings": self.timings,
            "devices": self.devices,
            "data": self.data,
            "per_run": self.per_run,
            "caveats": self.caveats,
            "rows": [
                {
                    "name": r.name,
                    "method": r.method,
                    "evaluation": r.evaluation,
                    "run": r.run_id,
                    "in_paper": r.in_paper,
                    "probes": r.probes,
                    "differs": _jsonable(r.differs),
                    "cells": [c.to_json() for c in r.cells],
                }
                for r in self.rows
            ],
        }


def _jsonable(differs: Mapping[str, object]) -> dict[str, object]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in differs.items()}


def _order(key: tuple[str, str]) -> tuple[Any, ...]:
    m, e = key
    methods, evaluations = registry.method_names(), registry.evaluation_names()
    return (
        methods.index(m) if m in methods else len(methods),
        m,
        evaluations.index(e) if e in evaluations else len(evaluations),
        e,
    )


def row_name(method: str, evaluation: str) -> str:
    """A row the paper lacks, named from the registries: "SimCLR Semi-supervised"."""
    try:
        return f"{registry.method(method).title} {registry.evaluation(evaluation).title}"
    except KeyError:  # a result of a method or evaluation no longer registered
        return f"{method} {evaluation}"


def _cells(labels: list[float], paper: dict[float, float], ours: dict[float, dict[int, float]]) -> list[Cell]:
    cells = []
    for f in labels:
        by_seed = sorted(ours.get(f, {}).items())
        cells.append(Cell(f, paper.get(f), [acc for _, acc in by_seed], [seed for seed, _ in by_seed]))
    return cells


def _mark_best(rows: list[Row]) -> None:
    columns = zip(*(r.cells for r in rows)) if rows else []
    for column in columns:
        means = [c.mean for c in column if c.mean is not None]
        for c in column:
            c.best = bool(means) and c.mean == max(means)


def build_table(
    infos: list[RunInfo],
    summaries: list[Mapping[str, Any]] | None = None,
    *,
    per_run: bool = False,
    notes: list[str] | None = None,
) -> StudyTable:
    """Rows of the paper first (in its order), then any other (method, evaluation) we ran.

    Pooled over the runs (one number per seed, the newest wins) where the settings agree, a
    row per setting where they differ; or, with `per_run` and results from more than one run,
    a row per run beside the same paper numbers. Each run's config.toml says its settings."""
    paper = load_paper_table()
    infos = sorted(infos, key=lambda i: (i.started or 0, i.id))
    results = [m for i in infos for m in measured(i.results, i.id, run_parts(i.path))]
    per_run = per_run and len({m.run_id for m in results}) > 1
    run_ids = [i.id for i in infos] if per_run else [""]
    mine_of = {rid: [m for m in results if not per_run or m.run_id == rid] for rid in run_ids}
    pooled = {rid: pool(mine_of[rid]) for rid in run_ids}
    probes_of = {rid: probes(mine_of[rid]) for rid in run_ids}
    labels = sorted(set(paper["labels"]) | {m.labels for m in results})
    # (method, evaluation) -> its variants, in the order first measured: (run id, settings)
    variants: dict[tuple[str, str], list[tuple[str, Settings | None]]] = {}
    for rid in run_ids:
        for method, evaluation, settings in pooled[rid]:
            variants.setdefault((method, evaluation), []).append((rid, settings))

    def rows_of(key: tuple[str, str], name: str, pvals: dict[float, float], in_paper: bool) -> list[Row]:
        out = []
        for rid, settings in variants.get(key, ()):
            # named by what sets it apart from the other variants of its row (of its run, per run)
            mates = [st for r, st in variants[key] if r == rid]
            diff = differences(mates)[mates.index(settings)] if len(mates) > 1 else {}
            out.append(
                Row(
                    f"{name} ({describe(diff)})" if diff else name,
                    *key,
                    _cells(labels, pvals, pooled[rid][(*key, settings)]),
                    rid or None,
                    in_paper,
                    probes_of[rid].get((*key, settings), []),
                    diff,
                )
            )
        return out

    rows = []
    for prow in paper["rows"]:
        key = (prow["method"], prow["evaluation"])
        pvals = dict(zip(paper["labels"], prow["test_acc"]))
        rows += rows_of(key, prow["name"], pvals, True) or [
            Row(prow["name"], *key, _cells(labels, pvals, {}), None, True)
        ]
    in_paper = {(r["method"], r["evaluation"]) for r in paper["rows"]}
    for key in sorted((k for k in variants if k not in in_paper), key=_order):
        rows += rows_of(key, row_name(*key), {}, False)
    _mark_best(rows)
    timings, devices, data = _provenance(summaries or [])
    return StudyTable(
        paper["title"], labels, rows, [i.id for i in infos], timings, devices, data, per_run, list(notes or ())
    )


def _provenance(summaries: list[Mapping[str, Any]]) -> tuple[dict[str, float], list[str], list[str]]:
    """Time per phase summed over the runs, and their devices and data sources (each once)."""
    timings: dict[str, float] = {}
    devices: list[str] = []
    data: list[str] = []
    for s in summaries:
        if not isinstance(s, Mapping):
            continue
        phases = s.get("timings")
        for k, v in phases.items() if isinstance(phases, Mapping) else ():
            if _number(v):
                timings[str(k)] = round(timings.get(str(k), 0.0) + v, 3)
        for value, seen in ((s.get("data"), data), (s.get("device"), devices)):
            if value and str(value) not in seen:
                seen.append(str(value))
    return timings, devices, data
