"""Results: the comparison table beside the paper's Table 1, and feature-map thumbnails."""

from __future__ import annotations

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import ScrollableContainer
from textual.screen import Screen
from textual.widgets import Footer, Header, Static, TabbedContent, TabPane

from ssltui.engine.store import RunDir
from ssltui.tui.widgets.comparison import comparison_table
from ssltui.tui.widgets.featuremap import color_available, render_maps


def merge_featuremaps(docs: list[tuple[str, dict]]) -> dict | None:
    """One document from several runs' featuremaps.json: the first run's images, and every
    run's models that were computed on the same images (named by run when there are several)."""
    docs = [(rid, d) for rid, d in docs if d and d.get("images") and d.get("models")]
    if not docs:
        return None
    images = docs[0][1]["images"]
    wanted = [im.get("index") for im in images]
    models = []
    for rid, d in docs:
        if [im.get("index") for im in d["images"]] != wanted:
            continue
        for m in d["models"]:
            models.append(dict(m, name=f"{m['name']} ({rid[-6:]})" if len(docs) > 1 else m["name"]))
    return {"images": images, "models": models}


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
        self.maps: dict | None = None
        self.maps_loaded = False
        self.compared: list[tuple[str, list[dict]]] = []  # (run id, results) in the table

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
        store = self.app.store
        runs: list[tuple[str, list[dict]]] = []
        notes = []
        for rid in self.run_ids:
            info = store.get(rid).info()
            runs.append((info.id, info.results))
            if info.status != "completed":
                notes.append(f"{info.id}: {info.status}" + (f" ({info.error})" if info.error else ""))
        self.compared = runs
        self.sub_title = self.run_ids[0] if len(self.run_ids) == 1 else f"{len(self.run_ids)} runs"
        self.query_one("#comparison", Static).update(comparison_table(runs))
        note = Text("test accuracy %, mean±std over seeds; best measured cell per column highlighted, "
                    "paper numbers (Table 1) dim, best paper cell bold", style="dim")
        if notes:
            note.append("\n" + "\n".join(notes), style="yellow")
        self.query_one("#runs-note", Static).update(note)
        self.load_maps([store.get(rid) for rid in self.run_ids])

    @work(thread=True, exclusive=True, group="maps")
    def load_maps(self, runs: list[RunDir]) -> None:
        """featuremaps.json can be a megabyte per run: parse it off the UI thread."""
        doc = merge_featuremaps([(r.id, r.read_featuremaps()) for r in runs])
        self.app.call_from_thread(self._maps_ready, doc)

    def _maps_ready(self, doc: dict | None) -> None:
        self.maps, self.maps_loaded = doc, True
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
            self.image = (self.image + delta) % len(self.maps["images"])
            self._draw_maps()

    def action_toggle_ascii(self) -> None:
        self.color = not self.color
        self._draw_maps()
