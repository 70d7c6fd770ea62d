"""The runs browser: every saved run (running first), filter by typing, open, mark, compare."""

from __future__ import annotations

import time

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Input, Static
from textual.worker import get_current_worker

from ssltui.engine.store import RunInfo
from ssltui.view.format import label_fraction
from ssltui.view.tables import run_cells

REFRESH_SECONDS = 2.0
COLUMNS = ("status", "method", "labels", "test acc %", "started", "id")  # of view.tables.run_cells


def matches(info: RunInfo, needle: str) -> bool:
    """Every word of the filter appears in the run's id, status, preset, methods or evaluations."""
    hay = " ".join([info.id, info.status, info.preset, info.group, *info.methods, *info.evaluations,
                    *(label_fraction(f) for f in info.labels)]).lower()
    return all(w in hay for w in needle.lower().split())


class RunsTable(DataTable):
    BINDINGS = [Binding("enter", "select_cursor", "Open")]


class RunsScreen(Screen):
    """The home screen."""

    BINDINGS = [
        Binding("space", "mark", "Mark"),
        Binding("c", "compare", "Compare"),
        Binding("n", "launch", "New run"),
        Binding("w", "sweep", "Sweeps"),
        Binding("slash", "filter", "Filter"),
        Binding("escape", "clear_filter", "Clear"),
        Binding("question_mark", "app.help", "Help"),
        Binding("q", "app.quit", "Quit"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.infos: list[RunInfo] = []
        self.marked: set[str] = set()
        self.loaded = False

    def compose(self) -> ComposeResult:
        yield Header()
        yield Input(placeholder="filter: type to narrow (id, status, method, preset)…", id="filter", compact=True)
        table = RunsTable(id="runs", cursor_type="row", zebra_stripes=True)
        yield table
        yield Static(id="runs-hint")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "runs"
        table = self.query_one("#runs", DataTable)
        for col in COLUMNS:
            table.add_column(col, key=col)
        table.focus()
        self.refresh_runs()

    def on_screen_resume(self) -> None:
        self.refresh_runs()

    @work(thread=True, exclusive=True, group="runs")
    def refresh_runs(self, repeat: bool = True) -> None:
        """List the store in a thread (it reads every summary.json), then keep it fresh."""
        worker = get_current_worker()
        while not worker.is_cancelled:
            infos = self.app.store.list()
            self.app.call_from_thread(self.show_runs, infos)
            if not repeat:
                return
            for _ in range(int(REFRESH_SECONDS / 0.1)):
                if worker.is_cancelled:
                    return
                time.sleep(0.1)

    def show_runs(self, infos: list[RunInfo]) -> None:
        for proc in self.app.processes.values():
            proc.poll()  # reap runs this app started that have ended (no zombies)
        key = [(i.id, i.status, len(i.results)) for i in infos]
        if self.loaded and key == [(i.id, i.status, len(i.results)) for i in self.infos]:
            return
        self.infos = infos
        self.loaded = True
        self._fill()

    def _fill(self) -> None:
        table = self.query_one("#runs", DataTable)
        current = None
        if table.row_count and table.cursor_row < table.row_count:
            current = table.coordinate_to_cell_key((table.cursor_row, 0)).row_key.value
        needle = self.query_one("#filter", Input).value
        table.clear()
        shown = [i for i in self.infos if matches(i, needle)]
        for i in shown:
            cells = run_cells(i)
            status = cells["status"]
            cells["status"] = Text(("✓ " if i.id in self.marked else "  ") + status.plain, style=status.style)
            table.add_row(*(cells[c] for c in COLUMNS), key=i.id)
        if current is not None and current in [i.id for i in shown]:
            table.move_cursor(row=[i.id for i in shown].index(current), animate=False)
        hint = f"{len(shown)} of {len(self.infos)} runs"
        if self.marked:
            hint += f" · {len(self.marked)} marked (c: compare)"
        if not self.infos:
            hint = f"no runs yet in {self.app.store.root} · n: launch one"
        self.query_one("#runs-hint", Static).update(Text(hint, style="dim"))

    @on(Input.Changed, "#filter")
    def _filter_changed(self) -> None:
        self._fill()

    @on(Input.Submitted, "#filter")
    def _filter_done(self) -> None:
        self.query_one("#runs", DataTable).focus()

    def on_key(self, event) -> None:
        """Typing a character that is no key binding starts filtering."""
        table = self.query_one("#runs", DataTable)
        if self.focused is table and event.character and event.character.isprintable() \
                and event.character not in " cnqw?/" and len(event.character) == 1:
            flt = self.query_one("#filter", Input)
            flt.focus()
            flt.insert_text_at_cursor(event.character)
            event.stop()

    # ------------------------------------------------------------ actions
    def selected_id(self) -> str | None:
        table = self.query_one("#runs", DataTable)
        if not table.row_count:
            return None
        return table.coordinate_to_cell_key((table.cursor_row, 0)).row_key.value

    def action_open(self) -> None:
        from ssltui.tui.screens.live import LiveScreen

        run_id = self.selected_id()
        if run_id:
            self.app.push_screen(LiveScreen(run_id))

    @on(DataTable.RowSelected, "#runs")
    def _row_selected(self) -> None:
        self.action_open()

    def action_mark(self) -> None:
        run_id = self.selected_id()
        if run_id:
            self.marked ^= {run_id}
            self._fill()
            table = self.query_one("#runs", DataTable)
            if table.cursor_row + 1 < table.row_count:
                table.move_cursor(row=table.cursor_row + 1, animate=False)

    def action_compare(self) -> None:
        from ssltui.tui.screens.results import ResultsScreen

        ids = [i.id for i in self.infos if i.id in self.marked] or ([self.selected_id()] if self.selected_id() else [])
        if ids:
            self.app.push_screen(ResultsScreen(ids))

    def action_launch(self) -> None:
        from ssltui.tui.screens.launch import LaunchScreen

        self.app.push_screen(LaunchScreen())

    def action_sweep(self) -> None:
        """The sweep of the selected run when it is a trial of one, else the newest sweep."""
        from ssltui.tui.screens.sweep import SweepScreen

        info = next((i for i in self.infos if i.id == self.selected_id()), None)
        sweep = info.summary.sweep if info is not None and info.summary is not None else None
        self.app.push_screen(SweepScreen(sweep.name if sweep is not None else None))

    def action_filter(self) -> None:
        self.query_one("#filter", Input).focus()

    def action_clear_filter(self) -> None:
        flt = self.query_one("#filter", Input)
        flt.value = ""
        self.query_one("#runs", DataTable).focus()
