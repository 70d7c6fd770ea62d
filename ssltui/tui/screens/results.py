"""Results: the chosen runs in Table 1 beside the paper (a row per run when they differ), their
curves overlaid on one chart, and feature-map thumbnails. The table is the model `ssltui table`
prints (core/table.py)."""

from __future__ import annotations

import tomllib

from rich.columns import Columns
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Footer, Header, Static, TabbedContent, TabPane

from ssltui.core.errors import ConfigError
from ssltui.core.events import Epoch
from ssltui.core.featuremaps_schema import FeatureMaps
from ssltui.core.store import RunDir, RunInfo
from ssltui.core.table import StudyTable, build_table
from ssltui.tui.screens.common import BACK, HELP, NavScroll
from ssltui.tui.widgets.charts import OverlayChart, series_style
from ssltui.view.compare import differing_table
from ssltui.view.curves import SMOOTHING, Curve, kinds, phase_curves, smooth
from ssltui.view.featuremaps import MapsUnavailable, color_available, load_featuremaps, merge_featuremaps, render_maps
from ssltui.view.format import plain
from ssltui.view.tables import short_id, table1, table1_caption

MAX_SERIES = 10  # lines on one chart before it stops being readable


class ResultsScreen(Screen):
    """The chosen runs (or one study run): table, curves, feature maps."""

    BINDINGS = [
        BACK,
        Binding("t", "show_tab('table')", "Table", show=False),  # the tab titles name these keys
        Binding("c", "show_tab('curves')", "Curves", show=False),
        Binding("m", "show_tab('maps')", "Maps", show=False),
        # priority: the tab bar would take ←/→ to switch tabs, though here they page through
        # images (maps) or phase kinds (curves); on the table tab they fall through to it.
        Binding("left,comma", "step(-1)", "Prev", priority=True),
        Binding("right,full_stop", "step(1)", "Next", priority=True),
        Binding("v", "next_view", "Models"),
        Binding("z", "toggle_compact", "All models", show=False),
        Binding("a", "toggle_ascii", "ASCII/colour"),
        Binding("s", "smoothing", "Smooth", show=False),
        Binding("l", "log_scale", "Log scale", show=False),
        Binding("j", "scroll(1)", "Down", show=False),
        Binding("k", "scroll(-1)", "Up", show=False),
        Binding("g,home", "scroll_to(0)", "Top", show=False),
        Binding("G,end", "scroll_to(1)", "Bottom", show=False),
        HELP,
    ]

    def __init__(self, run_ids: list[str]) -> None:
        super().__init__()
        self.run_ids = run_ids
        self.image = 0
        self.view = 0  # the page of models, at the largest size a model fits
        self.compact = False  # every model at once, at the size where all fit
        self.color = color_available()
        self.maps: FeatureMaps | None = None
        self.maps_problem = "loading feature maps…"
        self.table: StudyTable | None = None
        self.curves: list[Curve] | None = None
        self.kind_index = 0
        self.smoothing = 0  # index into SMOOTHING (curves)
        self.log_y = False  # the loss on a log scale (curves)

    def compose(self) -> ComposeResult:
        yield Header()
        with TabbedContent(initial="table"):
            with TabPane("Table t", id="table"):
                with NavScroll(id="table-scroll"):
                    yield Static(id="comparison")
                    yield Static(id="table-caption")
                    yield Static(id="runs-note")
                    yield Static(id="settings-diff")
            with TabPane("Curves c", id="curves"):
                yield Static("loading curves…", id="curves-title")
                with Horizontal(id="curve-charts"):
                    yield OverlayChart(id="curve-loss")
                    yield OverlayChart(id="curve-acc")
                yield Static(id="curves-legend")
            with TabPane("Feature maps m", id="maps"):
                yield Static(id="maps-note")
                with NavScroll(id="maps-scroll"):
                    yield Static("loading feature maps…", id="featuremaps")
        yield Footer()

    def on_mount(self) -> None:
        runs, infos, notes = self._open_runs()
        self.sub_title = self.run_ids[0] if len(self.run_ids) == 1 else f"{len(self.run_ids)} runs"
        self.table = build_table(infos, [i.summary.model_dump() for i in infos if i.summary], per_run=True)
        self._draw_table()
        self.query_one("#runs-note", Static).update(Text("\n".join(notes), style="yellow"))
        self.load_files(runs, {i.id: i.status for i in infos})

    def on_resize(self) -> None:
        self._draw_table()
        # after the resize's layout pass: the maps' pane has its new size then, and the maps
        # drawn for it take their own width (drawn during the pass, they kept the old one)
        self.call_after_refresh(self._draw_maps)

    # ------------------------------------------------------------ loading
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

    @work(thread=True, exclusive=True, group="files")
    def load_files(self, runs: list[RunDir], statuses: dict[str, str]) -> None:
        """featuremaps.json can be a megabyte per run, metrics.jsonl more: read them off the UI thread."""
        docs, problems = [], []
        for r in runs:
            try:
                docs.append((r.id, load_featuremaps(r.featuremaps_path, statuses.get(r.id) != "running")))
            except MapsUnavailable as exc:
                problems.append(f"{r.id}: {exc}" if len(runs) > 1 else str(exc))
        left_out: list[str] = []
        doc = merge_featuremaps(docs, left_out)
        problem = "\n".join(problems) or "no feature maps of the same test images in these runs"
        # beside maps that are shown, say which runs' maps are not and why
        note = "\n".join(left_out + (problems if doc is not None else []))
        configs = {}
        for r in runs:  # what differs between the runs' settings (a run without a readable config: skipped)
            try:
                configs[r.id] = tomllib.loads(r.read_config_text())
            except (ConfigError, OSError, ValueError):
                continue
        self.app.call_from_thread(self._settings_ready, configs)
        curves = []
        for n, r in enumerate(runs, 1):
            epochs = [e for e in r.read_events() if isinstance(e, Epoch)]
            curves += phase_curves(epochs, f"{n} " if len(runs) > 1 else "")
        self.app.call_from_thread(self._files_ready, doc, problem, note, curves)

    def _settings_ready(self, configs: dict[str, dict]) -> None:
        widget = self.query_one("#settings-diff", Static)
        widget.display = len(configs) > 1
        if widget.display:
            widget.update(differing_table(configs, {rid: short_id(rid) for rid in configs}))

    def _files_ready(self, doc: FeatureMaps | None, problem: str, note: str, curves: list[Curve]) -> None:
        self.maps, self.maps_problem, self.curves = doc, problem, curves
        notice = self.query_one("#maps-note", Static)
        notice.update(Text(note, style="yellow"))
        notice.display = bool(note)
        self._draw_maps()
        if note:  # the note takes lines from the maps' pane: lay them out again at its new size
            self.call_after_refresh(self._draw_maps)
        self._draw_curves()

    # ------------------------------------------------------------ drawing
    def _draw_table(self) -> None:
        if self.table is not None:  # the width decides whether ± std fits beside the mean
            width = self.size.width - 2
            self.query_one("#comparison", Static).update(table1(self.table, width, caption=False))
            # below the table, not as its caption: a caption wraps at the table's width and cut run ids
            self.query_one("#table-caption", Static).update(table1_caption(self.table))

    def kinds(self) -> list[str]:
        return kinds(self.curves or [])

    def _draw_curves(self) -> None:
        if self.curves is None:
            return
        kinds = self.kinds()
        title = self.query_one("#curves-title", Static)
        if not kinds:
            title.update("no epochs recorded yet")
            return
        kind = kinds[self.kind_index % len(kinds)]
        chosen = [c for c in self.curves if c.kind == kind]
        shown = chosen[:MAX_SERIES]
        more = f" (first {MAX_SERIES} of {len(chosen)})" if len(chosen) > MAX_SERIES else ""
        weight = SMOOTHING[self.smoothing]
        view = (f" · smoothed {weight:g}" if weight else "") + (" · loss on a log scale" if self.log_y else "")
        # what is shown first (a narrow terminal cuts the end), then the keys
        title.update(
            Text.assemble(
                (f"{kind} phases{more}", "bold"),
                (view, "yellow"),
                f" · ←/→ other phases ({', '.join(kinds)})" if len(kinds) > 1 else "",
                (" · s smooth · l log", "dim"),
            )
        )
        acc_names = sorted({c.acc_name for c in shown if c.acc_name})
        acc_name = acc_names[0] if len(acc_names) == 1 else "monitored"
        self.query_one("#curve-loss", OverlayChart).show(
            "loss", "epoch", self.shown_series("loss"), self.color, log_y=self.log_y
        )
        self.query_one("#curve-acc", OverlayChart).show(
            f"{acc_name} accuracy %", "epoch", self.shown_series("acc"), self.color
        )
        entries = []
        for i, c in enumerate(shown):
            rgb, marker = series_style(i, self.color)
            swatch = ("━━", f"rgb({rgb[0]},{rgb[1]},{rgb[2]})") if self.color else (marker * 2, "")
            accuracy = f" ({c.acc_name})" if len(acc_names) > 1 and c.acc_name else ""
            entries.append(Text.assemble(swatch, " " + plain(c.label) + accuracy, no_wrap=True))
        legend = Columns(entries, padding=(0, 3))  # a name is never broken over two lines
        self.query_one("#curves-legend", Static).update(legend)

    def shown_series(self, what: str) -> list[tuple[list[float], list[float]]]:
        """The (x, y) series the curves tab draws for `what` (loss | acc), smoothed as chosen."""
        kinds = self.kinds()
        if not kinds or self.curves is None:
            return []
        kind = kinds[self.kind_index % len(kinds)]
        chosen = [c for c in self.curves if c.kind == kind][:MAX_SERIES]
        weight = SMOOTHING[self.smoothing]
        if what == "loss":
            return [(list(c.epochs), smooth(c.loss, weight)) for c in chosen]
        return [(list(c.acc_epochs), smooth(c.accuracy, weight)) for c in chosen]

    def action_smoothing(self) -> None:
        self.smoothing = (self.smoothing + 1) % len(SMOOTHING)
        self._draw_curves()

    def action_log_scale(self) -> None:
        self.log_y = not self.log_y
        self._draw_curves()

    def _draw_maps(self) -> None:
        widget = self.query_one("#featuremaps", Static)
        if self.maps is None:
            widget.update(Text(self.maps_problem, style="yellow"))
            return
        pane = self.query_one("#maps-scroll")
        width, height = max(40, pane.size.width - 1), max(10, pane.size.height)
        # a 256-colour terminal (tmux's default) gets a ramp made for its palette, not a downgrade
        eight_bit = self.app.console.color_system == "256"
        widget.update(render_maps(self.maps, self.image, self.color, width, height, self.view, self.compact, eight_bit))

    # ------------------------------------------------------------ actions
    @property
    def active(self) -> str:
        return self.query_one(TabbedContent).active

    def on_tabbed_content_tab_activated(self) -> None:
        self.refresh_bindings()
        if self.active == "maps":  # a hidden pane has no size: lay the maps out once it shows
            self.call_after_refresh(self._draw_maps)

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        if action == "step":
            return self.active in ("maps", "curves")
        if action in ("smoothing", "log_scale"):
            return self.active == "curves"
        if action in ("next_view", "toggle_ascii", "toggle_compact"):
            return self.active == "maps" or (action == "toggle_ascii" and self.active == "curves")
        return True

    def action_show_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab

    def action_step(self, delta: int) -> None:
        if self.active == "maps" and self.maps:
            self.image = (self.image + delta) % len(self.maps.images)
            self._draw_maps()
        elif self.active == "curves" and self.kinds():
            self.kind_index = (self.kind_index + delta) % len(self.kinds())
            self._draw_curves()

    def action_next_view(self) -> None:
        if self.maps:
            self.view = (self.view + 1) % len(self.maps.models)
            self._draw_maps()

    def action_toggle_compact(self) -> None:
        if self.maps:
            self.compact, self.view = not self.compact, 0
            self._draw_maps()

    def action_toggle_ascii(self) -> None:
        self.color = not self.color
        self._draw_maps()
        self._draw_curves()

    def _pane(self) -> NavScroll | None:
        scroll = {"table": "#table-scroll", "maps": "#maps-scroll"}.get(self.active)
        return self.query_one(scroll, NavScroll) if scroll else None

    def action_scroll(self, lines: int) -> None:
        if pane := self._pane():
            pane.scroll_relative(y=lines, animate=False)

    def action_scroll_to(self, end: int) -> None:
        if pane := self._pane():
            pane.scroll_end(animate=False) if end else pane.scroll_home(animate=False)
