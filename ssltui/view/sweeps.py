"""A sweep on screen, for the CLI and the TUI alike: its header line, the ranked trials, the
chosen trial, parameter importances, and a plotext chart of the metric against each parameter.

Takes a `SweepReport` (ssltui.core.sweep.report); no torch, no textual.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich import box
from rich.table import Table
from rich.text import Text

from ssltui.core.sweep.space import Param
from ssltui.view import format as fmt
from ssltui.view.tables import text

if TYPE_CHECKING:  # Optuna loads with it; this module only reads the report's fields
    from ssltui.core.sweep.report import SweepReport, TrialRow

STATE_STYLE = {"complete": "", "running": "bold green", "pruned": "yellow", "failed": "red", "waiting": "dim"}
METRIC_NAMES = {"val_acc": "validation accuracy", "knn_acc": "kNN accuracy (validation)"}
TRIAL_COLUMNS = ("rank", "trial", "state", "metric")  # then one column per parameter, then the run


def value_text(value: Any) -> str:
    """A parameter value, short: 0.0003 -> '3e-04', 0.25 -> '0.25', 'sgd' -> 'sgd'."""
    if isinstance(value, float):
        return f"{value:.3g}" if 1e-3 <= abs(value) < 1e4 or value == 0 else f"{value:.1e}"
    return fmt.plain(value)


def sweep_header(report: SweepReport) -> Text:
    """'sweep NAME · val_acc · tpe · 12/20 trials: 8 complete, 2 pruned, ... · best #3 45.20%'."""
    d = report.definition
    counts = report.counts()
    done = ", ".join(f"{n} {state}" for state, n in counts.items())
    head = Text.assemble(
        ("sweep ", "bold"),
        (fmt.plain(report.name), "bold"),
        f" · {d.metric} · {d.sampler} · {sum(counts.values())}/{d.trials} trials",
    )
    head.append_text(text(f": {done}" if done else ""))
    best = report.best
    if best is not None:
        head.append(f" · best #{best.number} {fmt.pct(best.value)}%", style="bold green")
    return head


def short_keys(keys: list[str]) -> dict[str, str]:
    """Column headers of the parameters: 'lr' for 'pretrain.lr' unless two share a last name."""
    last = [k.rsplit(".", 1)[-1] for k in keys]
    return {k: s if last.count(s) == 1 else k for k, s in zip(keys, last)}


def run_suffix(run_id: str | None) -> str:
    """A run id's random tail: short, and enough for `ssltui show` (which takes a unique suffix)."""
    return run_id.rsplit("-", 1)[-1] if run_id else fmt.MISSING


def trial_cells(row: TrialRow, keys: list[str], rank: int | None) -> dict[str, Text]:
    """One trial as the tables show it: rank, number, state, metric %, each parameter, run id
    (its random tail)."""
    retry = f" (retry of {row.retry_of})" if row.retry_of is not None else ""
    metric = fmt.pct(row.value)
    if row.state in ("running", "pruned") and row.value is not None:
        metric += f" @{row.reports}"  # the last reported value, after this many reports
    cells = {
        "rank": Text(str(rank) if rank else ""),
        "trial": Text(f"{row.number}{retry}"),
        "state": Text(row.state, style=STATE_STYLE.get(row.state, "")),
        "metric": Text(metric),
    }
    for key in keys:
        cells[key] = text(value_text(row.params[key]) if key in row.params else fmt.MISSING)
    cells["run"] = text(run_suffix(row.run_id))
    return cells


def ranks(report: SweepReport) -> list[int | None]:
    """1, 2, ... for complete trials (best first); nothing for the others."""
    out, n = [], 0
    for row in report.rows:
        n += row.state == "complete"
        out.append(n if row.state == "complete" else None)
    return out


def trials_table(report: SweepReport, limit: int | None = None) -> Table:
    """The trials ranked by the validation metric (test accuracy is not in it: see `chosen`)."""
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, padding=(0, 1, 0, 0))
    for col in TRIAL_COLUMNS:
        table.add_column(
            f"{report.definition.metric} %" if col == "metric" else col,
            justify="right" if col in ("rank", "metric") else "left",
            no_wrap=True,
        )
    for _key, header in short_keys(report.keys).items():
        table.add_column(header, justify="right", no_wrap=True, overflow="ellipsis")
    table.add_column("run", no_wrap=True)
    for row, rank in list(zip(report.rows, ranks(report)))[:limit]:
        cells = trial_cells(row, report.keys, rank)
        table.add_row(*(cells[c] for c in (*TRIAL_COLUMNS, *report.keys, "run")))
    return table


def chosen(report: SweepReport) -> Text:
    """The chosen trial and, for it alone, the test accuracy of its run."""
    best = report.best
    if best is None:
        return Text("no complete trial yet", style="dim")
    params = " ".join(f"{k}={value_text(v)}" for k, v in best.params.items())
    out = text(
        f"chosen: trial {best.number} ({params}), {report.definition.metric} {fmt.pct(best.value)}% "
        f"on the validation split; test accuracy {fmt.pct(best.test_acc)}% (run {best.run_id or '?'})",
        style="bold",
    )
    return out


def importances_text(report: SweepReport) -> Text:
    if report.importances:
        parts = ", ".join(f"{k} {v:.2f}" for k, v in report.importances.items())
        return text(f"parameter importances (Optuna): {parts}")
    return text(report.importance_note, style="dim")


# ---------------------------------------------------------------- effect charts


def _numeric(values: list[Any]) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def draw_effect(plt: Any, report: SweepReport, param: Param) -> None:
    """Plot the metric of each complete trial against one parameter's value on a plotext
    figure (the plotext module, or a textual-plotext widget's `plt`)."""
    points = report.effect(param.key)
    plt.title(f"{report.definition.metric} % vs {param.key}")
    if not points:
        return
    xs, ys = [p[0] for p in points], [100 * p[1] for p in points]
    if param.kind == "choice" and not _numeric(list(param.choices)):
        labels = [value_text(v) for v in param.choices]
        xs = [labels.index(value_text(v)) + 1 for v in xs]
        plt.xticks(list(range(1, len(labels) + 1)), labels)
        plt.xlim(0.5, len(labels) + 0.5)
    elif param.kind == "log" or (_numeric(xs) and min(xs) > 0 and max(xs) / min(xs) >= 30):
        plt.xscale("log")
    plt.scatter(xs, ys, marker="o")
    if len(set(ys)) == 1:  # one level: plotext would draw no y range at all
        plt.ylim(ys[0] - 1, ys[0] + 1)


def effect_chart(report: SweepReport, param: Param, width: int = 80, height: int = 14, color: bool = True) -> str:
    """The effect of one parameter as text (for `ssltui sweep show`)."""
    import plotext as plt

    plt.clear_figure()
    plt.plotsize(width, height)
    draw_effect(plt, report, param)
    out = plt.build()
    plt.clear_figure()
    return out if color else plt.uncolorize(out)


def sweeps_table(items: list[dict]) -> Table:
    """`ssltui sweep list`: one line a sweep (items from `list_sweeps`)."""
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, padding=(0, 1, 0, 0))
    for col in ("name", "preset", "metric", "trials", "best %", "params"):
        table.add_column(
            col,
            no_wrap=col != "params",
            justify="right" if col in ("trials", "best %") else "left",
            min_width=24 if col == "params" else None,
        )
    for i in items:
        keys = short_keys([p.partition("=")[0] for p in i["params"]])
        params = " ".join(f"{keys[k]}={spec}" for k, _, spec in (p.partition("=") for p in i["params"]))
        table.add_row(
            text(i["name"]),
            text(i["preset"]),
            text(f"{i['metric']} ({i['sampler']})"),
            Text(f"{i['trials']}/{i['planned']}"),
            Text(fmt.pct(i["best"])),
            text(params),
        )
    return table
