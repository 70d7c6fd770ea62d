"""A sweep: its trials ranked by the validation metric (running ones updated as they report),
the metric against each parameter, the chosen trial, and a key to open any trial's run.

Reads the sweep's Optuna study (Optuna loads when this screen first opens, never at start-up).
"""

from __future__ import annotations

import threading

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static
from textual_plotext import PlotextPlot

from ssltui.core.errors import SsltuiError
from ssltui.view.sweeps import (
    TRIAL_COLUMNS,
    chosen,
    draw_effect,
    importances_text,
    ranks,
    short_keys,
    sweep_header,
    trial_cells,
)

POLL_SECONDS = 2.0


class EffectChart(PlotextPlot):
    """The sweep's metric against one parameter (complete trials)."""

    def show(self, report, param) -> None:
        self.plt.clear_data()
        self.plt.clear_figure()
        if report is not None and param is not None:
            draw_effect(self.plt, report, param)
        self.refresh()


class SweepScreen(Screen):
    """One sweep of the default storage ($SSLTUI_SWEEP_STORAGE or the run store's SQLite file):
    the named one, else the newest; `s` goes to the next sweep."""

    DEFAULT_CSS = """
    #sweep-summary { height: 1; padding: 0 1; text-wrap: nowrap; text-overflow: ellipsis; }
    #trials { height: 1fr; min-height: 4; }
    #sweep-lower { height: 11; }
    #effect { width: 1fr; }
    #sweep-notes { width: 1fr; max-width: 40; padding: 0 1; }
    """
    BINDINGS = [
        Binding("escape,q", "app.pop_screen", "Back"),  # q too, as on every screen
        Binding("enter", "open_trial", "Open run", show=True),
        Binding("r", "trial_results", "Results"),
        Binding("p", "next_param", "Chart param"),
        Binding("s", "next_sweep", "Next sweep"),
        Binding("n", "new_sweep", "New sweep"),
    ]

    def __init__(self, name: str | None = None) -> None:
        super().__init__()
        self.sweep_name = name
        self.report = None  # the latest SweepReport
        self.param_index = 0
        self.message = ""
        self.loaded = False
        self._shown: list | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="sweep-summary")
        yield DataTable(id="trials", cursor_type="row", zebra_stripes=True)
        with Horizontal(id="sweep-lower"):
            yield EffectChart(id="effect")
            yield Static(id="sweep-notes")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "sweep"
        self.query_one("#trials", DataTable).focus()
        self.poll_sweep()

    def on_unmount(self) -> None:
        self._stop.set()
        self._wake.set()

    # ------------------------------------------------------------ reading the study
    @work(thread=True, exclusive=True, group="sweep")
    def poll_sweep(self) -> None:
        """Read the study in a thread every POLL_SECONDS; only reports cross into the UI."""
        from ssltui.core.sweep.report import SweepReport, list_sweeps
        from ssltui.core.sweep.study import Sweep, shown_url, storage_url

        url = storage_url(None, self.app.store.sweeps_dir())
        sweep = None
        while not self._stop.is_set():
            try:
                if sweep is None or sweep.name != self.sweep_name:
                    if self.sweep_name is None:
                        found = list_sweeps(url)
                        if not found:
                            self.app.call_from_thread(
                                self._show_message,
                                "no sweeps yet: n starts one (or `ssltui "
                                f"sweep --param KEY=SPEC ...`); storage {shown_url(url)}",
                            )
                            self._wake.wait(POLL_SECONDS)
                            self._wake.clear()
                            continue
                        self.sweep_name = found[0]["name"]
                    sweep = Sweep.open(url, self.sweep_name)
                report = SweepReport.of(sweep)
            except SsltuiError as exc:
                self.app.call_from_thread(self._show_message, self._starting(self.sweep_name) or exc.message)
                sweep = None
            else:
                self.app.call_from_thread(self._show_report, report)
            self._wake.wait(POLL_SECONDS)
            self._wake.clear()

    def _starting(self, name: str | None) -> str | None:
        """Why a sweep this app started is not in the storage yet: still starting, or its process
        ended first (the last line of its log says why)."""
        from ssltui.tui.newsweep import process_key, sweep_log

        launched = self.app.processes.get(process_key(name)) if name else None
        if launched is None:
            return None
        log = sweep_log(self.app.store, name)
        if launched.alive():
            return f"sweep {name} is starting (importing torch, creating its study); output in {log}"
        try:
            last = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-1]
        except (OSError, IndexError):
            last = ""
        return f"sweep {name} ended before its study was made (exit {launched.proc.returncode}): {last} ({log})"

    def _show_message(self, message: str) -> None:
        self.loaded = True
        self.query_one("#sweep-summary", Static).update(Text(message, style="yellow"))

    def _show_report(self, report) -> None:
        self.loaded = True
        self.report = report
        self.sub_title = f"sweep {report.name}"
        self.query_one("#sweep-summary", Static).update(sweep_header(report))
        key = [(r.number, r.state, r.value, r.reports) for r in report.rows]
        if key != self._shown:
            self._shown = key
            self._fill(report)
        self._draw_lower()

    def _fill(self, report) -> None:
        table = self.query_one("#trials", DataTable)
        current = self.selected_trial()
        table.clear(columns=True)
        headers = short_keys(report.keys)
        order = (*TRIAL_COLUMNS, *report.keys, "run")
        rows = [trial_cells(row, report.keys, rank) for row, rank in zip(report.rows, ranks(report))]
        labels = {c: f"{report.definition.metric} %" if c == "metric" else headers.get(c, c) for c in order}
        # Every width given, as in the runs list: a table left to measure its cells when idle can
        # draw a frame first and keep the columns at their headers' widths ("compl" for complete).
        for col in order:
            table.add_column(labels[col], key=col, width=max([len(labels[col])] + [r[col].cell_len for r in rows]))
        for row, cells in zip(report.rows, rows):
            table.add_row(*(cells[c] for c in order), key=str(row.number))
        numbers = [r.number for r in report.rows]
        if current is not None and current.number in numbers:
            table.move_cursor(row=numbers.index(current.number), animate=False)

    def _draw_lower(self) -> None:
        report = self.report
        params = report.definition.search_space() if report else []
        param = params[self.param_index % len(params)] if params else None
        self.query_one("#effect", EffectChart).show(report, param)
        notes = chosen(report)
        notes.append("\n\n")
        notes.append_text(importances_text(report))
        self.query_one("#sweep-notes", Static).update(notes)

    # ------------------------------------------------------------ actions
    def selected_trial(self):
        table = self.query_one("#trials", DataTable)
        if self.report is None or not table.row_count or table.cursor_row >= table.row_count:
            return None
        number = int(table.coordinate_to_cell_key((table.cursor_row, 0)).row_key.value)
        return next((r for r in self.report.rows if r.number == number), None)

    def _trial_run(self) -> str | None:
        """The selected trial's run id when it is in this run store, else a note why not."""
        row = self.selected_trial()
        if row is None:
            return None
        if row.run_id is None:
            self.notify(f"trial {row.number} has no run yet ({row.state})", severity="warning")
            return None
        if not (self.app.store.root / row.run_id).is_dir():
            self.notify(
                f"trial {row.number} ran on {row.host or 'another machine'}; its run {row.run_id} "
                f"is not in this run store",
                severity="warning",
            )
            return None
        return row.run_id

    @on(DataTable.RowSelected, "#trials")
    def _row_selected(self) -> None:
        self.action_open_trial()

    def action_open_trial(self) -> None:
        from ssltui.tui.screens.live import LiveScreen

        run_id = self._trial_run()
        if run_id:
            self.app.push_screen(LiveScreen(run_id))

    def action_trial_results(self) -> None:
        from ssltui.tui.screens.results import ResultsScreen

        run_id = self._trial_run()
        if run_id:
            self.app.push_screen(ResultsScreen([run_id]))

    def action_next_param(self) -> None:
        if self.report is not None:
            self.param_index += 1
            self._draw_lower()

    def action_new_sweep(self) -> None:
        from ssltui.tui.screens.newsweep import NewSweepScreen

        self.app.push_screen(NewSweepScreen(), self._sweep_started)

    def _sweep_started(self, name: str | None) -> None:
        """Show the new sweep: it appears once its process has made its study."""
        if name is None:
            return
        self.sweep_name = name
        self.report = None
        self.param_index = 0
        self._shown = None
        self.query_one("#trials", DataTable).clear(columns=True)
        self.query_one("#effect", EffectChart).show(None, None)
        self.query_one("#sweep-notes", Static).update("")
        self.sub_title = f"sweep {name}"
        self._wake.set()

    @work(thread=True, exclusive=True, group="sweep-list")
    def action_next_sweep(self) -> None:
        from ssltui.core.sweep.report import list_sweeps
        from ssltui.core.sweep.study import storage_url

        try:
            names = [s["name"] for s in list_sweeps(storage_url(None, self.app.store.sweeps_dir()))]
        except SsltuiError as exc:
            self.app.call_from_thread(self.notify, exc.message, severity="warning")
            return
        if len(names) > 1 or (names and self.sweep_name not in names):
            at = names.index(self.sweep_name) if self.sweep_name in names else -1
            self.sweep_name = names[(at + 1) % len(names)]
            self.param_index = 0
            self._shown = None
            self._wake.set()  # the poller opens it now
