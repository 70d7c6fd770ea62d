"""Results: the chosen runs in Table 1 beside the paper (a row per run when they differ), and
feature-map thumbnails. The table is the model `ssltui table` prints (engine/table.py)."""

from __future__ import annotations

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import ScrollableContainer
from textual.screen import Screen
from textual.widgets import Footer, Header, Static, TabbedContent, TabPane

from ssltui.engine.errors import ConfigError
from ssltui.engine.featuremaps_schema import FeatureMaps
from ssltui.engine.store import RunDir, RunInfo
from ssltui.engine.table import StudyTable, build_table
from ssltui.view.featuremaps import color_available, merge_featuremaps, render_maps
from ssltui.view.format import plain
from ssltui.view.tables import table1


class ResultsScreen(Screen):
    """The chosen runs (or one study run): table, then feature maps."""

    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("t", "show_tab('table')", "Table"),
        Binding("m", "show_tab('maps')", "Maps"),
        Binding("left,comma", "image(-1)", "Prev image"),
        Binding("right,full_stop", "image(1)", "Next image"),
        Binding("a", "toggle_ascii", "ASCII/colour"),
        Binding("question_mark", "app.help", "Help"),
    ]

    def __init__(self, run_ids: list[str]) -> None:
        super().__init__()
        self.run_ids = run_ids
        self.image = 0
        self.color = color_available()
        self.maps: FeatureMaps | None = None
        self.table: StudyTable | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        with TabbedContent(initial="table"):
            with TabPane("Table", id="table"):
                with ScrollableContainer():
                    yield Static(id="comparison")
                    yield Static(id="runs-note")
            with TabPane("Feature maps", id="maps"):
                with ScrollableContainer(id="maps-scroll"):
                    yield Static("loading feature maps…", id="featuremaps")
        yield Footer()

    def on_mount(self) -> None:
        runs, infos, notes = self._open_runs()
        self.sub_title = self.run_ids[0] if len(self.run_ids) == 1 else f"{len(self.run_ids)} runs"
        self.table = build_table(infos, [i.summary.model_dump() for i in infos if i.summary], per_run=True)
        self._draw_table()
        self.query_one("#runs-note", Static).update(Text("\n".join(notes), style="yellow"))
        self.load_maps(runs)

    def on_resize(self) -> None:
        self._draw_table()

    def _draw_table(self) -> None:
        if self.table is not None:  # the width decides whether ± std fits beside the mean
            self.query_one("#comparison", Static).update(table1(self.table, self.size.width - 2))

    def _open_runs(self) -> tuple[list[RunDir], list[RunInfo], list[str]]:
        """The chosen runs still in the store, and a note for each one unfinished or gone."""
        runs, infos, notes = [], [], []
        for rid in self.run_ids:
            try:
                rd = self.app.store.get(rid)
                info = rd.info()
            except ConfigError as exc:  # deleted since the list was drawn
                notes.append(plain(f"{rid}: {exc}"))
                continue
            runs.append(rd)
            infos.append(info)
            if info.status != "completed":
                notes.append(plain(f"{info.id}: {info.status}" + (f" ({info.error})" if info.error else "")))
        return runs, infos, notes

    @work(thread=True, exclusive=True, group="maps")
    def load_maps(self, runs: list[RunDir]) -> None:
        """featuremaps.json can be a megabyte per run: parse it off the UI thread."""
        doc = merge_featuremaps([(r.id, r.read_featuremaps()) for r in runs])
        self.app.call_from_thread(self._maps_ready, doc)

    def _maps_ready(self, doc: FeatureMaps | None) -> None:
        self.maps = doc
        self._draw_maps()

    def _draw_maps(self) -> None:
        widget = self.query_one("#featuremaps", Static)
        if self.maps is None:
            widget.update("no feature maps: a run saves featuremaps.json when it ends")
            return
        widget.update(render_maps(self.maps, self.image, self.color))

    def action_show_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab

    def action_image(self, delta: int) -> None:
        if self.maps:
            self.image = (self.image + delta) % len(self.maps.images)
            self._draw_maps()

    def action_toggle_ascii(self) -> None:
        self.color = not self.color
        self._draw_maps()
