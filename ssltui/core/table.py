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
"""

from __future__ import annotations

import math
import statistics
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources

from ssltui.core import registry
from ssltui.core.store import RunInfo

PAPER_DATA = "cifar10"  # what the paper's numbers were measured on


def load_paper_table() -> dict:
    """The paper's Table 1 from the shipped data file."""
    text = resources.files("ssltui.reference").joinpath("paper_table1.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)


def mean_std(values: list[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (None for a single value)."""
    if not values:
        return math.nan, None
    mean = statistics.fmean(values)
    return mean, (statistics.stdev(values) if len(values) > 1 else None)


def _number(v: object) -> bool:
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

    @property
    def cell_key(self) -> tuple[str, str, float, int]:
        return (self.method, self.evaluation, self.labels, self.seed)


def measured(results: Iterable[object], run_id: str = "") -> list[Measured]:
    """The valid results of one run, in the order recorded (see the module's rules)."""
    out = []
    for r in results:
        if not isinstance(r, Mapping):
            continue
        method, evaluation, labels, seed, acc = (r.get(k) for k in ("method", "evaluation", "labels", "seed",
                                                                  "test_acc"))
        if isinstance(method, str) and isinstance(evaluation, str) and _number(labels) and 0 < labels <= 1 \
                and isinstance(seed, int) and not isinstance(seed, bool) and _number(acc) and 0 <= acc <= 1:
            probe = r.get("probe")
            out.append(Measured(run_id, method, evaluation, float(labels), seed, float(acc),
                                probe if isinstance(probe, str) else None))
    return out


def newest_per_seed(results: Iterable[Measured]) -> list[Measured]:
    """One result per (method, evaluation, labels, seed): the last one given wins, so pass
    results oldest first."""
    latest: dict[tuple, Measured] = {}
    for m in results:
        latest.pop(m.cell_key, None)  # re-insert: the dict's order is the order of the winners
        latest[m.cell_key] = m
    return list(latest.values())


def probes(results: Iterable[Measured]) -> dict[tuple[str, str], list[str]]:
    """(method, evaluation) -> the probes behind its pooled numbers, sorted, for evaluations that
    read features a chosen way (the linear probe). A result recorded before probes were named used
    the evaluation's default probe."""
    defaults = {e.name: e.default_probe for e in registry.evaluations()}
    out: dict[tuple[str, str], set[str]] = {}
    for m in newest_per_seed(results):
        probe = m.probe or defaults.get(m.evaluation)
        if probe:
            out.setdefault((m.method, m.evaluation), set()).add(probe)
    return {k: sorted(v) for k, v in out.items()}


def pool(results: Iterable[Measured]) -> dict[tuple[str, str], dict[float, dict[int, float]]]:
    """(method, evaluation) -> label fraction -> seed -> accuracy in percent (one per seed)."""
    out: dict[tuple[str, str], dict[float, dict[int, float]]] = {}
    for m in newest_per_seed(results):
        out.setdefault((m.method, m.evaluation), {}).setdefault(m.labels, {})[m.seed] = 100 * m.test_acc
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

    def to_json(self) -> dict:
        return {"labels": self.labels, "paper": self.paper, "ours_mean": self.mean, "ours_std": self.std,
                "seeds": len(self.ours), "seed_ids": self.seeds, "ours": self.ours, "diff": self.diff,
                "best": self.best}


@dataclass
class Row:
    name: str
    method: str
    evaluation: str
    cells: list[Cell]
    run_id: str | None = None  # the run of the row when the table compares runs
    in_paper: bool = False
    probes: list[str] = field(default_factory=list)  # a linear row's probes ("plain", "aug8")

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

    @property
    def seed_counts(self) -> list[int]:
        """The distinct numbers of seeds behind the measured cells, e.g. [3] or [1, 3]."""
        return sorted({len(c.ours) for r in self.rows for c in r.cells if c.ours})

    @property
    def caveats(self) -> list[str]:
        """What stops ours from being read beside the paper's numbers as they stand."""
        out = []
        other = [d for d in self.data if d != PAPER_DATA and not d.startswith("folder:")]
        if other:
            out.append(f"ours on {', '.join(other)} data, the paper's on CIFAR-10: not comparable")
        if self.runs and not self.data:
            out.append("the data of these runs is not recorded")
        if not any(r.measured for r in self.rows):
            out.append("no finished results in these runs yet")
        return out

    def to_json(self) -> dict:
        return {"title": self.title, "labels": self.labels, "runs": self.runs, "timings": self.timings,
                "devices": self.devices, "data": self.data, "per_run": self.per_run, "caveats": self.caveats,
                "rows": [{"name": r.name, "method": r.method, "evaluation": r.evaluation, "run": r.run_id,
                          "in_paper": r.in_paper, "probes": r.probes, "cells": [c.to_json() for c in r.cells]}
                         for r in self.rows]}


def _order(key: tuple[str, str]) -> tuple:
    m, e = key
    methods, evaluations = registry.method_names(), registry.evaluation_names()
    return (methods.index(m) if m in methods else len(methods), m,
            evaluations.index(e) if e in evaluations else len(evaluations), e)


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


def build_table(infos: list[RunInfo], summaries: list[Mapping] | None = None, *,
                per_run: bool = False) -> StudyTable:
    """Rows of the paper first (in its order), then any other (method, evaluation) we ran.

    Pooled over the runs (one number per seed, the newest wins), or, with `per_run` and
    results from more than one run, a row per run beside the same paper numbers."""
    paper = load_paper_table()
    infos = sorted(infos, key=lambda i: (i.started or 0, i.id))
    results = [m for i in infos for m in measured(i.results, i.id)]
    per_run = per_run and len({m.run_id for m in results}) > 1
    run_ids = [i.id for i in infos] if per_run else [""]
    mine_of = {rid: [m for m in results if not per_run or m.run_id == rid] for rid in run_ids}
    pooled = {rid: pool(mine_of[rid]) for rid in run_ids}
    probes_of = {rid: probes(mine_of[rid]) for rid in run_ids}
    labels = sorted(set(paper["labels"]) | {m.labels for m in results})
    rows = []
    for prow in paper["rows"]:
        key = (prow["method"], prow["evaluation"])
        pvals = dict(zip(paper["labels"], prow["test_acc"]))
        mine = [(rid, pooled[rid].pop(key)) for rid in run_ids if key in pooled[rid]] or [("", {})]
        rows += [Row(prow["name"], *key, _cells(labels, pvals, ours), rid or None, True,
                     probes_of.get(rid, {}).get(key, [])) for rid, ours in mine]
    extra = sorted(((k, rid) for rid in run_ids for k in pooled[rid]), key=lambda kr: (_order(kr[0]),
                                                                                     run_ids.index(kr[1])))
    for key, rid in extra:
        name = row_name(*key)
        rows.append(Row(name, *key, _cells(labels, {}, pooled[rid][key]), rid or None,
                        probes=probes_of[rid].get(key, [])))
    _mark_best(rows)
    timings, devices, data = _provenance(summaries or [])
    return StudyTable(paper["title"], labels, rows, [i.id for i in infos], timings, devices, data, per_run)


def _provenance(summaries: list[Mapping]) -> tuple[dict[str, float], list[str], list[str]]:
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
