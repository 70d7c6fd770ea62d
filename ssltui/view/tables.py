"""Rich renderables shared by the CLI and the TUI: Table 1, the runs list, a run's results.

Every string that came from a user or a file (a group, a description, a preset, an error) is
put in as `rich.text.Text` through `text()`, never as a markup string: `a[/b]` is a name,
not a closing tag. No torch, no textual.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping

from rich import box
from rich.table import Table
from rich.text import Text

from ssltui.core import registry
from ssltui.core.store import RunInfo
from ssltui.core.table import Cell, StudyTable, measured, pool
from ssltui.view import format as fmt

STATUS_STYLE = {
    "running": "bold green",
    "completed": "",
    "failed": "red",
    "interrupted": "yellow",
    "pruned": "yellow",
    "stale": "red",
    "damaged": "red",
    "created": "dim",
}


def text(value: object, style: str = "", limit: int | None = None) -> Text:
    """User-given text as a rich Text: no markup parsed, no control character passed through."""
    return Text(fmt.plain(value, limit=limit), style=style)


# ------------------------------------------------------------------ Table 1


def seeds_phrase(t: StudyTable) -> str:
    """', mean ± std over 3 distinct seeds', '... over 1-3 distinct seeds per cell', or nothing."""
    counts = t.seed_counts
    if not counts:
        return ""
    n = str(counts[0]) if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"
    per_cell = " per cell" if len(counts) > 1 else ""
    return f", mean ± std over {n} distinct seed{'s' if counts[-1] > 1 else ''}{per_cell} (newest result per seed)"


def run_legend(t: StudyTable) -> dict[str, str]:
    """Run id -> the short label of its rows ('1', '2', ...) when the table has a row per run."""
    return {rid: str(n) for n, rid in enumerate(t.runs, 1)} if t.per_run else {}


# What the parts of a probe's name mean ("aug8", "plain s1+s2+s3 1x1"), said when a name uses them.
PROBE_NOTES = {
    "aug": "augN: trained also on N crop/flip copies of each labelled image",
    " s": "sA+sB GxG: the outputs of stages A and B, each pooled to GxG, instead of the encoder's own feature",
}


def probes_phrase(t: StudyTable) -> str:
    """'; linear probe: RotNet Linear Evaluation aug8, ... (what the names mean)', or nothing."""
    named = list(dict.fromkeys(f"{r.name} {'/'.join(r.probes)}" for r in t.rows if r.probes))
    if not named:
        return ""
    probes = {p for r in t.rows for p in r.probes}
    notes = [note for part, note in PROBE_NOTES.items() if any(part in p for p in probes)]
    return f"; linear probe: {', '.join(named)}" + (f" ({'; '.join(notes)})" if notes else "")


def table1_footer(t: StudyTable) -> str:
    """What the numbers are and where they come from: seeds, runs, data, device, time, probes."""
    timing = ", ".join(f"{k} {v:.1f} s" for k, v in t.timings.items() if k != "wall")
    wall = f"; wall {t.timings['wall']:.1f} s" if "wall" in t.timings else ""
    legend = run_legend(t)
    runs = ", ".join(f"{legend[r]} = {r}" if legend else r for r in t.runs)
    return (
        f"test accuracy %{seeds_phrase(t)}; "
        f"runs: {runs or fmt.MISSING}; data: {', '.join(t.data) or fmt.MISSING}; "
        f"device: {', '.join(t.devices) or fmt.MISSING}; time per phase: {timing or fmt.MISSING}{wall}"
        f"{probes_phrase(t)}"
    )


def table1_caption(t: StudyTable) -> Text:
    """The footer, then each caveat on its own line (highlighted: they change how to read it)."""
    caption = text(table1_footer(t), style="dim")
    for caveat in t.caveats:
        caption.append("\n")
        caption.append_text(text(f"note: {caveat}", style="yellow"))
    return caption


def _delta(d: float | None) -> Text:
    return Text(fmt.diff(d), style="" if d is None else "green" if d >= 0 else "red")


def _ours(c: Cell, stacked: bool) -> Text:
    mean_std = fmt.cell(c.mean, c.std)
    if stacked and c.std is not None:  # '55.00' over '± 7.07' rather than '55.00 ±' over '7.07'
        mean_std = mean_std.replace(" ± ", "\n± ", 1)
    return Text(mean_std, style="bold green" if c.best else "")


def table1(t: StudyTable, width: int | None = None, caption: bool = True) -> Table:
    """Per label fraction: the paper's number, ours (best of the column bold green) and Δ.
    On a terminal narrower than a line of it (`width`), headers and a cell's ± std take two lines."""
    legend = run_legend(t)
    # a label fraction on one line: ' 10% paper' + '  55.00 ± 7.07' + '  -40.54' with their gaps
    one_line = max((len(r.name) for r in t.rows), default=5) + len(t.labels) * 33 + (5 if legend else 0)
    stacked = width is not None and width < one_line
    table = Table(
        title=text(t.title),
        caption=table1_caption(t) if caption else None,
        caption_justify="left",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        padding=(0, 1, 0, 0),
    )
    if legend:
        table.add_column("run", justify="right", no_wrap=True)
    table.add_column("Model", no_wrap=True)
    for f in t.labels:
        for what in ("paper", "ours", "Δ"):
            header = f"{fmt.label_fraction(f)}{chr(10) if stacked else ' '}{what}"
            table.add_column(header, justify="right", no_wrap=True, style="dim" if what == "paper" else "")
    for r in t.rows:
        cells: list[Text] = [Text(legend.get(r.run_id or "", ""))] if legend else []
        cells.append(text(r.name, style="" if r.measured else "dim"))
        for c in r.cells:
            cells += [Text(fmt.number(c.paper)), _ours(c, stacked), _delta(c.diff)]
        table.add_row(*cells)
    return table


# ------------------------------------------------------------------ runs


def run_accuracy(results: Iterable[object]) -> str:
    """A run's accuracy in one cell: the mean test accuracy per label fraction of its best
    method/evaluation ('1% 48.2 10% 80.1'), and how many others it has ('(+2)')."""
    pooled = pool(measured(results))
    if not pooled:
        return fmt.MISSING

    def best_mean(by_frac: dict[float, dict[int, float]]) -> float:
        return max(sum(s.values()) / len(s) for s in by_frac.values())

    ranked = sorted(pooled.values(), key=best_mean, reverse=True)
    text_ = " ".join(
        f"{fmt.label_fraction(f)} {fmt.number(sum(s.values()) / len(s), 1)}" for f, s in sorted(ranked[0].items())
    )
    return text_ + (f" (+{len(ranked) - 1})" if len(ranked) > 1 else "")


def names(values: list[str]) -> str:
    """'simclr' alone; several names shortened and joined ('sup+simclr+rot')."""
    if not values:
        return fmt.MISSING
    return values[0] if len(values) == 1 else "+".join(registry.short_name(n) for n in values)


RUN_COLUMNS = ("status", "method", "evaluation", "labels", "test acc %", "started", "group", "id")
# From the widest to the narrowest: the first that fits the terminal is printed. The id stays
# whole while any set fits (it is what a user copies), so narrower tables drop columns first;
# the sets after WRAPPED_FROM put the accuracy one label fraction a line. Status, accuracy,
# start and id always stay; `ssltui runs --json` has everything.
RUN_COLUMN_SETS = (
    RUN_COLUMNS,
    ("status", "method", "labels", "test acc %", "started", "group", "id"),
    ("status", "method", "labels", "test acc %", "started", "id"),
    ("status", "method", "test acc %", "started", "id"),
    ("status", "method", "labels", "test acc %", "started", "id"),
    ("status", "method", "test acc %", "started", "id"),
    ("status", "test acc %", "started", "id"),
)
WRAPPED_FROM = 4
NARROW_RUN_COLUMNS = RUN_COLUMN_SETS[-1]  # with the id cut from the left when even these do not fit
ACC_PAIR = len("10% 99.9")
MIN_ID = len("…") + 12  # enough of the end of an id to tell runs apart


def tail(value: str, width: int) -> str:
    """`value` whole when it fits in `width` cells, else its end after an ellipsis: an id's end is a
    unique suffix that `ssltui show/resume/...` accept (never starting with '-', which would read as
    an option)."""
    if len(value) <= width:
        return value
    end = value[len(value) - max(1, width - 1) :]
    return "…" + (end.lstrip("-") or end)


_DATED_ID = re.compile(r"\d{8}-\d{6}-(.+)")


def short_id(run_id: str) -> str:
    """The id without its start time ('20260101-120000-paper-a1b2c3' -> 'paper-a1b2c3'): a unique
    suffix that `ssltui show/resume/...` accept, for narrow terminals."""
    m = _DATED_ID.fullmatch(run_id)
    return m.group(1) if m else run_id


def run_cells(info: RunInfo) -> dict[str, Text]:
    """One run as the runs list shows it, by column (RUN_COLUMNS); each face picks columns."""
    return {
        "status": Text(info.status, style=STATUS_STYLE.get(info.status, "")),
        "method": text(names(info.methods)),
        "evaluation": text(names(info.evaluations)),
        "labels": Text(fmt.label_fractions(info.labels)),
        "test acc %": Text(run_accuracy(info.results)),
        "started": Text(fmt.timestamp(info.started, short=True)),
        "group": text("" if info.group in ("", info.id) else info.group, limit=24),
        "id": text(info.id),
    }


def runs_table(infos: list[RunInfo], width: int | None = None) -> Table:
    """The runs list for a terminal `width` columns wide: the first column set of RUN_COLUMN_SETS
    that fits, each cell on one line or (narrow) the accuracy one label fraction a line; where
    not even the narrowest fits, the id is cut from the left (`tail`)."""
    rows = [run_cells(i) for i in infos]
    widths = {c: max([len(c)] + [r[c].cell_len for r in rows]) for c in RUN_COLUMNS}
    wrapped = dict(widths, **{"test acc %": max(ACC_PAIR, len("test acc"))})

    def needs(n: int, cols: tuple[str, ...]) -> int:
        w = widths if n < WRAPPED_FROM else wrapped
        return sum(w[c] for c in cols) + len(cols) - 1

    chosen = next((n for n, cols in enumerate(RUN_COLUMN_SETS) if width is None or needs(n, cols) <= width), None)
    n = len(RUN_COLUMN_SETS) - 1 if chosen is None else chosen
    columns = RUN_COLUMN_SETS[n]
    id_width = widths["id"]
    if chosen is None:
        id_width = max(MIN_ID, widths["id"] - (needs(n, columns) - width))
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, padding=0, collapse_padding=True)
    for col in columns:
        wrap = n >= WRAPPED_FROM and col == "test acc %"
        table.add_column(
            "test acc" if wrap else col,
            no_wrap=not wrap,
            max_width=ACC_PAIR if wrap else None,
            min_width={"id": id_width, "status": widths["status"]}.get(col),
        )
    for r in rows:
        cells = dict(r, id=Text(tail(r["id"].plain, id_width)))
        table.add_row(*(cells[c] for c in columns))
    return table


# Plain lines (a pipe, a file): fixed widths so that lines stream out as runs are read; the id last, whole.
PLAIN_WIDTHS = {"status": 11, "method": 16, "evaluation": 16, "labels": 9, "test acc %": 22, "started": 11, "group": 24}


def _fit(value: str, width: int) -> str:
    return value.ljust(width) if len(value) <= width else value[: width - 1] + "…"


def runs_lines(infos: Iterable[RunInfo]) -> Iterator[str]:
    """The runs list as plain text, a header and then one line per run (what `grep` and `less`
    want): every user string made safe by `run_cells`, nothing held back to measure widths."""
    yield "  ".join(_fit(col, w) for col, w in PLAIN_WIDTHS.items()) + "  id"
    for info in infos:
        cells = run_cells(info)
        yield (
            "  ".join(_fit(cells[col].plain, w) for col, w in PLAIN_WIDTHS.items())
            + "  "
            + cells["id"].plain
            + "".join(f"  #{tag}" for tag in info.tags)
        )


def run_header(info: RunInfo) -> Text:
    """'run ID  status: S  preset: P', and the run's error on the next line."""
    head = Text.assemble(
        ("run ", "bold"), (fmt.plain(info.id), "bold"), f"  status: {info.status}  preset: ", fmt.plain(info.preset)
    )
    if info.tags:
        head.append("  tags: " + " ".join(f"#{tag}" for tag in info.tags))
    if info.note:
        head.append("\nnote: ")
        head.append_text(text(info.note))
    if info.error:
        head.append("\nerror: ")
        head.append_text(text(info.error, style="red"))
    return head


# ------------------------------------------------------------------ a run's results, presets


def results_table(results: Iterable[object], title: str | None = None) -> Table:
    """Every result of a run as recorded (one line each); a malformed value shows '-'."""
    table = Table(title=None if title is None else text(title))
    for col in ("method", "evaluation", "labels", "seed", "test acc %", "val acc %", "seconds"):
        table.add_column(col, justify="left" if col in ("method", "evaluation") else "right")
    for r in results:
        if not isinstance(r, Mapping):
            continue
        evaluation = r.get("evaluation") if r.get("probe") is None else f"{r.get('evaluation')} ({r.get('probe')})"
        table.add_row(
            text(r.get("method")),
            text(evaluation),
            Text(fmt.label_fraction(r.get("labels"))),
            text(r.get("seed")),
            Text(fmt.pct(r.get("test_acc"))),
            Text(fmt.pct(r.get("val_acc"))),
            Text(fmt.seconds(r.get("seconds", 0))),
        )
    return table


def presets_table(items: Iterable[object]) -> Table:
    """Presets: name, method, evaluation, description (anything with those attributes)."""
    table = Table()
    for col in ("name", "method", "evaluation", "description"):
        table.add_column(col, no_wrap=col != "description", ratio=1 if col == "description" else None)
    for i in items:
        table.add_row(*(text(getattr(i, col, "")) for col in ("name", "method", "evaluation", "description")))
    return table
