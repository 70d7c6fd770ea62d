"""The comparison table: measured test accuracy per method/evaluation and label fraction,
beside the paper's Table 1 (read from ssltui/reference/paper_table1.toml), best cell per
column highlighted. Pure rich; shared by the results screen and tests.
"""

from __future__ import annotations

import statistics
import tomllib
from dataclasses import dataclass, field
from importlib import resources

from rich.table import Table
from rich.text import Text

METHOD_ORDER = ("supervised", "simclr", "rotnet")
EVAL_ORDER = ("supervised", "linear", "semi", "knn")


@dataclass
class PaperRow:
    method: str
    evaluation: str
    label: str
    acc: dict[float, float]  # label fraction -> accuracy %


def load_paper_table() -> list[PaperRow]:
    """The paper's Table 1 rows, from the shipped data file (shared with `ssltui table`)."""
    raw = tomllib.loads(resources.files("ssltui.reference").joinpath("paper_table1.toml").read_text())
    return [PaperRow(r["method"], r["evaluation"], r["name"],
                     {float(f): float(v) for f, v in zip(raw["labels"], r["test_acc"])}) for r in raw["rows"]]


@dataclass
class Row:
    """One measured method/evaluation of one run: accuracies (%) per label fraction over seeds."""

    run_id: str
    method: str
    evaluation: str
    acc: dict[float, list[float]] = field(default_factory=dict)

    def mean(self, frac: float) -> float | None:
        v = self.acc.get(frac)
        return statistics.fmean(v) if v else None

    def cell(self, frac: float) -> str:
        v = self.acc.get(frac)
        if not v:
            return "-"
        if len(v) == 1:
            return f"{v[0]:.2f}"
        return f"{statistics.fmean(v):.2f}±{statistics.stdev(v):.2f}"


def measured_rows(runs: list[tuple[str, list[dict]]]) -> list[Row]:
    """Rows from (run id, results) pairs, ordered by method then evaluation."""
    rows: dict[tuple, Row] = {}
    for run_id, results in runs:
        for r in results:
            if not isinstance(r.get("test_acc"), (int, float)):
                continue
            key = (run_id, r["method"], r["evaluation"])
            row = rows.setdefault(key, Row(run_id, r["method"], r["evaluation"]))
            row.acc.setdefault(float(r["labels"]), []).append(100 * float(r["test_acc"]))

    def order(row: Row) -> tuple:
        m = METHOD_ORDER.index(row.method) if row.method in METHOD_ORDER else 99
        e = EVAL_ORDER.index(row.evaluation) if row.evaluation in EVAL_ORDER else 99
        return (m, e, row.run_id)

    return sorted(rows.values(), key=order)


def frac_label(frac: float) -> str:
    return f"{100 * frac:g}%"


def comparison_table(runs: list[tuple[str, list[dict]]], paper: list[PaperRow] | None = None,
                     title: str | None = None) -> Table:
    """Measured rows (with the paper's number for the same method/evaluation beside each
    fraction) then the paper rows nobody measured; the best measured cell per column is
    highlighted, and so is the best paper cell."""
    paper = load_paper_table() if paper is None else paper
    rows = measured_rows(runs)
    paper_fracs = sorted({f for p in paper for f in p.acc})
    fracs = sorted({f for r in rows for f in r.acc} | set(paper_fracs))
    show_run = len({r.run_id for r in rows}) > 1
    by_key = {(p.method, p.evaluation): p for p in paper}

    table = Table(title=title, expand=False, pad_edge=False, show_edge=False)
    if show_run:
        table.add_column("run", no_wrap=True, max_width=18)
    table.add_column("method", no_wrap=True)
    table.add_column("eval", no_wrap=True)
    for f in fracs:
        table.add_column(frac_label(f), justify="right", no_wrap=True)
        if f in paper_fracs:
            table.add_column(f"paper {frac_label(f)}", justify="right", no_wrap=True, style="dim")

    best = {f: max((r.mean(f) for r in rows if r.mean(f) is not None), default=None) for f in fracs}
    best_paper = {f: max((p.acc[f] for p in paper if f in p.acc), default=None) for f in paper_fracs}

    def paper_cell(p: PaperRow | None, f: float) -> Text:
        if p is None or f not in p.acc:
            return Text("-")
        v = p.acc[f]
        return Text(f"{v:.2f}", style="bold" if v == best_paper[f] else "")

    for r in rows:
        cells: list[Text | str] = [r.run_id[-18:]] if show_run else []
        cells += [r.method, r.evaluation]
        p = by_key.get((r.method, r.evaluation))
        for f in fracs:
            m = r.mean(f)
            cells.append(Text(r.cell(f), style="bold reverse green" if m is not None and m == best[f] else ""))
            if f in paper_fracs:
                cells.append(paper_cell(p, f))
        table.add_row(*cells)
    measured = {(r.method, r.evaluation) for r in rows}
    for p in paper:
        if (p.method, p.evaluation) in measured:
            continue
        cells = ["paper"] if show_run else []
        cells += [Text(p.method, style="dim"), Text(p.evaluation, style="dim")]
        for f in fracs:
            cells.append(Text("-", style="dim"))
            if f in paper_fracs:
                cells.append(paper_cell(p, f))
        table.add_row(*cells)
    return table
