"""Tables and plots for the terminal (rich, plotext). No torch."""

from __future__ import annotations

import time
from collections import defaultdict

from rich.table import Table

from ssltui.engine.events import ACCURACY_KEYS, Epoch
from ssltui.engine.store import RunInfo


def pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.2f}"


def fmt_labels(labels: list[float]) -> str:
    return ",".join(f"{100 * f:g}%" for f in labels)


def fmt_time(t: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(t)) if t else "-"


def accuracy_summary(results: list[dict]) -> str:
    """'1%: 48.20 10%: 80.11' for one method/evaluation; a count when there are more."""
    groups: dict[tuple, dict[float, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in results:
        groups[(r["method"], r["evaluation"])][r["labels"]].append(r["test_acc"])
    if not groups:
        return "-"
    if len(groups) > 1:
        best = max(r["test_acc"] for r in results)
        return f"{len(results)} results, best {pct(best)}"
    (by_frac,) = groups.values()
    return " ".join(f"{100 * f:g}%: {pct(sum(v) / len(v))}" for f, v in sorted(by_frac.items()))


def results_table(results: list[dict], title: str | None = None) -> Table:
    table = Table(title=title)
    for col in ("method", "evaluation", "labels", "seed", "test acc %", "val acc %", "seconds"):
        table.add_column(col, justify="right" if col not in ("method", "evaluation") else "left")
    for r in results:
        table.add_row(r["method"], r["evaluation"], f"{100 * r['labels']:g}%", str(r["seed"]),
                      pct(r["test_acc"]), pct(r.get("val_acc")), f"{r.get('seconds') or 0:.1f}")
    return table


def runs_table(infos: list[RunInfo]) -> Table:
    table = Table(title=None)
    for col in ("id", "group", "method", "evaluation", "labels", "status", "test acc %", "started"):
        table.add_column(col, no_wrap=col in ("id", "status"))
    for i in infos:
        group = "" if i.group in ("", i.id) else i.group
        table.add_row(i.id, group, ",".join(i.methods), ",".join(i.evaluations), fmt_labels(i.labels),
                      i.status, accuracy_summary(i.results), fmt_time(i.started))
    return table


def curves_plot(epochs: list[Epoch], width: int = 100, height: int = 22) -> str:
    """plotext plot of the epoch loss of every phase and its monitored accuracy."""
    import plotext as plt

    by_phase: dict[str, dict[int, Epoch]] = defaultdict(dict)
    for e in epochs:
        by_phase[e.phase][e.epoch] = e  # a later record (after a resume) wins
    if not by_phase:
        return "(no epochs recorded yet)"
    plt.clear_figure()
    plt.plotsize(width, height)
    plt.subplots(1, 2)
    plt.subplot(1, 1)
    plt.title("loss")
    for phase, recs in by_phase.items():
        xs = sorted(recs)
        plt.plot(xs, [recs[x].loss for x in xs], label=recs[xs[0]].label()[-28:])
    plt.subplot(1, 2)
    plt.title("accuracy % (validation)")
    for phase, recs in by_phase.items():
        for key in ACCURACY_KEYS:
            xs = sorted(x for x in recs if getattr(recs[x], key) is not None)
            if xs:
                plt.plot(xs, [100 * getattr(recs[x], key) for x in xs], label=f"{key} {recs[xs[0]].label()[-20:]}")
    out = plt.build()
    plt.clear_figure()
    return out
