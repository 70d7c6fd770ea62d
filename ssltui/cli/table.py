"""`ssltui table [GROUP]`: Table 1 of the paper beside ours, as rich, markdown, CSV or JSON."""

from __future__ import annotations

import csv
import io
import json

from ssltui.engine.errors import ConfigError
from ssltui.engine.store import RunStore
from ssltui.engine.table import StudyTable, best_per_column, build_table, fmt_cell, fmt_diff

FORMATS = ("rich", "markdown", "csv", "json")


def select_group(store: RunStore, group: str | None) -> tuple[str, list]:
    """The runs of `group` (a group name or run id); default: the newest run's group."""
    infos = [i for i in store.list() if i.status not in ("damaged", "created")]
    if not infos:
        raise ConfigError(f"no runs in {store.root}")
    if group is None:
        newest = max(infos, key=lambda i: i.started or 0)
        group = newest.group or newest.id
    chosen = [i for i in infos if i.group == group]
    if not chosen:  # a run id (or unique part of one) selects its whole group
        try:
            one = store.get(group).info()
        except ConfigError:
            raise ConfigError(f"no run or group {group!r} in {store.root}") from None
        group = one.group or one.id
        chosen = [i for i in infos if i.group == group] or [one]
    return group, sorted(chosen, key=lambda i: i.started or 0)


def _label_header(f: float) -> str:
    return f"{100 * f:g}%"


def render_markdown(t: StudyTable) -> str:
    head = ["Model"] + [f"{_label_header(f)} {col}" for f in t.labels for col in ("paper", "ours", "diff")]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in t.rows:
        cells = [r.name]
        for c in r.cells:
            cells += ["-" if c.paper is None else f"{c.paper:.2f}", fmt_cell(c.mean, c.std), fmt_diff(c.diff)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n\n" + footer(t) + "\n"


def render_csv(t: StudyTable) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["model", "method", "evaluation", "labels", "paper", "ours_mean", "ours_std", "seeds", "diff"])
    for r in t.rows:
        for c in r.cells:
            w.writerow([r.name, r.method, r.evaluation, c.labels, c.paper, c.mean, c.std, len(c.ours), c.diff])
    return buf.getvalue()


def footer(t: StudyTable) -> str:
    seeds = max((len(c.ours) for r in t.rows for c in r.cells), default=0)
    timing = ", ".join(f"{k} {v:.1f} s" for k, v in t.timings.items() if k != "wall")
    wall = f"; wall {t.timings['wall']:.1f} s" if "wall" in t.timings else ""
    return (f"test accuracy %, mean ± std over {seeds} seed(s); runs: {', '.join(t.runs)}; "
            f"data: {', '.join(t.data) or '-'}; device: {', '.join(t.devices) or '-'}; time per phase: {timing or '-'}{wall}")


def render_rich(t: StudyTable):
    from rich.table import Table

    best = best_per_column(t)
    table = Table(title=t.title, caption=footer(t), caption_justify="left")
    table.add_column("Model", no_wrap=True)
    for f in t.labels:
        for col in ("paper", "ours", "Δ"):
            table.add_column(f"{_label_header(f)} {col}", justify="right")
    for r in t.rows:
        cells = [r.name]
        for c in r.cells:
            ours = fmt_cell(c.mean, c.std)
            if best.get(c.labels) == r.name:
                ours = f"[bold green]{ours}[/]"
            diff = fmt_diff(c.diff)
            if c.diff is not None:
                diff = f"[{'green' if c.diff >= 0 else 'red'}]{diff}[/]"
            cells += ["-" if c.paper is None else f"{c.paper:.2f}", ours, diff]
        table.add_row(*cells)
    return table


def table_command(store: RunStore, group: str | None, fmt: str) -> str | None:
    if fmt not in FORMATS:
        raise ConfigError(f"--format: {fmt!r} is not one of {', '.join(FORMATS)}")
    group, infos = select_group(store, group)
    summaries = [i.summary.model_dump() for i in infos if i.summary is not None]
    t = build_table(infos, summaries)
    if fmt == "json":
        return json.dumps({"group": group, **t.to_json()})
    if fmt == "markdown":
        return render_markdown(t)
    if fmt == "csv":
        return render_csv(t)
    from rich.console import Console

    Console(highlight=False).print(render_rich(t))
    return None
