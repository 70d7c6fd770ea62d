"""`ssltui table [GROUP]`: Table 1 of the paper beside ours, as rich, markdown, CSV or JSON."""

from __future__ import annotations

import csv
import io
import json

from ssltui.core.errors import ConfigError, quoted
from ssltui.core.store import RunStore
from ssltui.core.table import StudyTable, build_table, measured
from ssltui.view import format as fmt
from ssltui.view.tables import table1, table1_footer

FORMATS = ("rich", "markdown", "csv", "json")


def select_group(store: RunStore, group: str | None) -> tuple[str, list]:
    """The runs of `group` (a group name or run id); default: the group of the newest run with a
    finished result (else the newest run's)."""
    infos = [i for i in store.list() if i.status not in ("damaged", "created")]
    if not infos:
        raise ConfigError(f"no runs in {store.root}")
    if group is None:
        finished = [i for i in infos if measured(i.results)]
        newest = max(finished or infos, key=lambda i: i.started or 0)
        group = newest.group or newest.id
    chosen = [i for i in infos if i.group == group]
    if not chosen:  # a run id (or unique part of one) selects its whole group
        try:
            one = store.get(group).info()
        except ConfigError:
            raise ConfigError(f"no run or group {quoted(group)} in {store.root}") from None
        group = one.group or one.id
        chosen = [i for i in infos if i.group == group] or [one]
    return group, sorted(chosen, key=lambda i: i.started or 0)


def sweep_choice(store: RunStore, group: str, infos: list) -> tuple[list, list[str]]:
    """Where `group` is a sweep's (its runs are its trials): the chosen trial's runs only, and a
    note saying so. The sweep's storage (the run store's own) says which trial was chosen; where
    it cannot, every trial stays, each setting its own row."""
    trials = [
        i for i in infos if i.summary is not None and i.summary.sweep is not None and i.summary.sweep.name == group
    ]
    if not trials:
        return infos, []
    from ssltui.core.sweep.listing import storage_url
    from ssltui.core.sweep.report import open_report

    try:
        best = open_report(storage_url(None, store.sweeps_dir()), group).best
    except ConfigError as exc:
        return infos, [f"sweep {group}: the chosen trial is unknown ({exc.message}); a row per setting tried"]
    runs = [i for i in infos if best is not None and i.id == best.run_id]
    if not runs:
        return infos, [f"sweep {group}: no trial chosen yet; a row per setting tried (ssltui sweep show {group})"]
    params = ", ".join(f"{k}={v}" for k, v in best.params.items())
    return runs, [
        f"sweep {group}: the chosen trial {best.number} ({params}) only, the best on the validation "
        f"split of {len(trials)} trials (every trial: ssltui sweep show {group})"
    ]


def render_markdown(t: StudyTable) -> str:
    head = ["Model"] + [f"{fmt.label_fraction(f)} {col}" for f in t.labels for col in ("paper", "ours", "diff")]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in t.rows:
        cells = [_md(r.name)]
        for c in r.cells:
            cells += [fmt.number(c.paper), fmt.cell(c.mean, c.std), fmt.diff(c.diff)]
        lines.append("| " + " | ".join(cells) + " |")
    notes = "".join(f"\n\nnote: {_md(c)}" for c in t.caveats)
    return "\n".join(lines) + "\n\n" + _md(table1_footer(t)) + notes + "\n"


def _md(value: str) -> str:
    """A user-given string inside a markdown table cell: one line, pipes escaped."""
    return fmt.plain(value).replace("|", "\\|")


def render_csv(t: StudyTable) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["model", "method", "evaluation", "labels", "paper", "ours_mean", "ours_std", "seeds", "diff"])
    for r in t.rows:
        for c in r.cells:
            w.writerow(
                [
                    r.name,
                    r.method,
                    r.evaluation,
                    c.labels,
                    c.paper,
                    _csv_number(c.mean),
                    _csv_number(c.std),
                    len(c.ours),
                    _csv_number(c.diff),
                ]
            )
    return buf.getvalue()


def _csv_number(x: float | None) -> float | str:
    """A percentage to 4 decimals (33.8, never 33.800000000000004 from a fraction x 100); empty when none."""
    return "" if x is None else round(x, 4)


def table_command(store: RunStore, group: str | None, output: str) -> str | None:
    """The table of `group` as text in `output` format, or None once printed with rich."""
    if output not in FORMATS:
        raise ConfigError(f"--format: {output!r} is not one of {', '.join(FORMATS)}")
    group, infos = select_group(store, group)
    infos, notes = sweep_choice(store, group, infos)
    summaries = [i.summary.model_dump() for i in infos if i.summary is not None]
    t = build_table(infos, summaries, notes=notes)
    if output == "json":
        return json.dumps({"group": group, **t.to_json()})
    if output == "markdown":
        return render_markdown(t)
    if output == "csv":
        return render_csv(t)
    from rich.console import Console

    console = Console(highlight=False)
    console.print(table1(t, console.width))
    return None
