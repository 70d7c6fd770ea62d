"""Table 1 as the paper lays it out: paper number, ours (mean ± std over seeds), difference.

Pure Python (no torch): the CLI's `ssltui table` and the TUI both use it.
"""

from __future__ import annotations

import math
import statistics
import tomllib
from dataclasses import dataclass, field
from importlib import resources

from ssltui.engine.store import RunInfo

EXTRA_ROW_NAMES = {
    ("simclr", "semi"): "SimCLR Semi-supervised",
    ("simclr", "knn"): "SimCLR kNN",
    ("rotnet", "knn"): "RotNet kNN",
}


def load_paper_table() -> dict:
    """The paper's Table 1 from the shipped data file."""
    text = resources.files("ssltui.reference").joinpath("paper_table1.toml").read_text()
    return tomllib.loads(text)


def mean_std(values: list[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (None for a single value)."""
    if not values:
        return math.nan, None
    mean = statistics.fmean(values)
    return mean, (statistics.stdev(values) if len(values) > 1 else None)


@dataclass
class Cell:
    labels: float
    paper: float | None  # percent
    ours: list[float] = field(default_factory=list)  # percent, one per seed

    @property
    def mean(self) -> float | None:
        return mean_std(self.ours)[0] if self.ours else None

    @property
    def std(self) -> float | None:
        return mean_std(self.ours)[1] if self.ours else None

    @property
    def diff(self) -> float | None:
        return None if self.paper is None or self.mean is None else self.mean - self.paper

    def to_json(self) -> dict:
        return {"labels": self.labels, "paper": self.paper, "ours_mean": self.mean, "ours_std": self.std,
                "seeds": len(self.ours), "ours": self.ours, "diff": self.diff}


@dataclass
class Row:
    name: str
    method: str
    evaluation: str
    cells: list[Cell]


@dataclass
class StudyTable:
    title: str
    labels: list[float]
    rows: list[Row]
    runs: list[str]
    timings: dict[str, float]
    devices: list[str]
    data: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"title": self.title, "labels": self.labels, "runs": self.runs, "timings": self.timings,
                "devices": self.devices, "data": self.data,
                "rows": [{"name": r.name, "method": r.method, "evaluation": r.evaluation,
                          "cells": [c.to_json() for c in r.cells]} for r in self.rows]}


def build_table(infos: list[RunInfo], summaries: list[dict] | None = None) -> StudyTable:
    """Rows of the paper first (in its order), then any other (method, evaluation) we ran."""
    paper = load_paper_table()
    results = [r for i in infos for r in i.results]
    labels = sorted(set(paper["labels"]) | {r["labels"] for r in results})
    by_key: dict[tuple, dict[float, list[float]]] = {}
    for r in results:
        by_key.setdefault((r["method"], r["evaluation"]), {}).setdefault(r["labels"], []).append(100 * r["test_acc"])
    rows = []
    for prow in paper["rows"]:
        key = (prow["method"], prow["evaluation"])
        pvals = dict(zip(paper["labels"], prow["test_acc"]))
        ours = by_key.pop(key, {})
        rows.append(Row(prow["name"], *key, [Cell(f, pvals.get(f), ours.get(f, [])) for f in labels]))
    for key, ours in sorted(by_key.items()):
        name = EXTRA_ROW_NAMES.get(key, f"{key[0]} {key[1]}")
        rows.append(Row(name, *key, [Cell(f, None, ours.get(f, [])) for f in labels]))
    timings: dict[str, float] = {}
    devices, data = [], []
    for s in summaries or []:
        if s.get("data") and s["data"] not in data:
            data.append(s["data"])
        for k, v in (s.get("timings") or {}).items():
            timings[k] = round(timings.get(k, 0.0) + v, 3)
        if s.get("device") and s["device"] not in devices:
            devices.append(s["device"])
    return StudyTable(paper["title"], labels, rows, [i.id for i in infos], timings, devices, data)


def best_per_column(table: StudyTable) -> dict[float, str]:
    """The row name with the highest mean of ours per label fraction."""
    best: dict[float, tuple[float, str]] = {}
    for row in table.rows:
        for c in row.cells:
            if c.mean is not None and (c.labels not in best or c.mean > best[c.labels][0]):
                best[c.labels] = (c.mean, row.name)
    return {k: v[1] for k, v in best.items()}


def fmt_cell(mean: float | None, std: float | None) -> str:
    if mean is None:
        return "-"
    return f"{mean:.2f} ± {std:.2f}" if std is not None else f"{mean:.2f}"


def fmt_diff(diff: float | None) -> str:
    return "-" if diff is None else f"{diff:+.2f}"
