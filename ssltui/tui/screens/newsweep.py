"""New sweep: a run preset, the parameters to search (`KEY=SPEC; KEY=SPEC`), fixed overrides
(`KEY=VALUE; ...`), method, evaluation, labels, seeds (blank: the preset's, shown greyed), metric,
pruning, trials, sampler, data, device and a name: every choice of `ssltui sweep`, checked as it is
typed by the sweep CLI's own code; ctrl+r starts `ssltui sweep` in its own process and the form
closes with the sweep's name."""

from __future__ import annotations

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Footer, Input, Label, Select, Static

from ssltui.core.config import METHODS
from ssltui.core.errors import ConfigError, SsltuiError
from ssltui.core.sweep.space import METRICS
from ssltui.tui.launch import DEFAULT_DATA, DEVICES
from ssltui.tui.newsweep import (
    PRESETS_OWN,
    SAMPLER_CHOICES,
    SweepRequest,
    preset_values,
    process_key,
    start_sweep,
    sweep_presets,
)

SAMPLER_NAMES = {"auto": "auto: grid, else tpe"}
METRIC_NAMES = {"val_acc": "val_acc (probe)", "knn_acc": "knn_acc (monitor)"}
PARAMS_HINT = "e.g. linear.lr=0.03,0.1,0.3; linear.weight_decay=0,1e-4   (log:LO:HI, int:LO:HI, LO:HI, a,b,c)"
PRESET_FIELDS = ("evaluation", "labels", "seeds")  # blank: the preset's value, shown as the placeholder


class NewSweepScreen(ModalScreen[str | None]):
    """Dismissed with the started sweep's name, or None when cancelled."""

    DEFAULT_CSS = """
    NewSweepScreen { align: center middle; }
    #sweep-form-box { width: 96%; max-width: 110; height: auto; border: round $accent; padding: 0 1;
                      background: $surface; }
    #sweep-form { grid-size: 4; grid-columns: 10 1fr 7 1fr; grid-rows: 1; grid-gutter: 0 1; height: auto; }
    #sweep-params, #sweep-sets { column-span: 3; }
    #sweep-form Checkbox { border: none; padding: 0; height: 1; }
    #sweep-form-title { text-style: bold; }
    #sweep-form-note { height: auto; }
    #sweep-start { margin-top: 1; }
    """
    BINDINGS = [
        Binding("ctrl+r", "start", "Start sweep", priority=True),
        Binding("escape", "cancel", "Cancel"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.presets = [p.name for p in sweep_presets()]
        self.data_default = DEFAULT_DATA  # what the form put in the data field (a preset's default)
        self.taken: frozenset[str] = frozenset()  # the storage's sweeps: a typed name must be new

    def compose(self) -> ComposeResult:
        with Vertical(id="sweep-form-box"):
            yield Static("New sweep: trials of one run preset, ranked on the validation split", id="sweep-form-title")
            with Grid(id="sweep-form"):
                yield Label("preset")
                yield Select(
                    [(n, n) for n in self.presets] or [("", "")], allow_blank=False, compact=True, id="sweep-preset"
                )
                yield Label("method")
                # blank: the preset's own method (no --method), named by the prompt as the inputs' placeholders
                yield Select([(m, m) for m in METHODS], prompt="preset's", compact=True, id="sweep-method")
                yield Label("params")
                yield Input("", placeholder="KEY=SPEC; KEY=SPEC", compact=True, id="sweep-params")
                yield Label("set")
                yield Input("", placeholder="fixed in every trial: KEY=VALUE; KEY=VALUE", compact=True, id="sweep-sets")
                yield Label("evaluation")
                yield Input("", compact=True, id="sweep-evaluation")
                yield Label("metric")
                yield Select(
                    [(METRIC_NAMES.get(m, m), m) for m in METRICS], allow_blank=False, compact=True, id="sweep-metric"
                )
                yield Label("labels")
                yield Input("", compact=True, id="sweep-labels")
                yield Label("seeds")
                yield Input("", compact=True, id="sweep-seeds")
                yield Label("sampler")
                yield Select(
                    [(SAMPLER_NAMES.get(s, s), s) for s in SAMPLER_CHOICES],
                    allow_blank=False,
                    compact=True,
                    id="sweep-sampler",
                )
                yield Label("trials")
                yield Input("", placeholder="blank: grid size, else 20", compact=True, id="sweep-trials")
                yield Label("data")
                yield Input(
                    DEFAULT_DATA, placeholder="cifar10 | synthetic | folder:PATH", compact=True, id="sweep-data"
                )
                yield Label("device")
                yield Select([(d, d) for d in DEVICES], allow_blank=False, compact=True, id="sweep-device")
                yield Label("name")
                yield Input("", placeholder="blank: preset-date-time", compact=True, id="sweep-name")
                yield Label("prune")
                yield Checkbox("stop below median", compact=True, id="sweep-prune")
            yield Static(id="sweep-form-note")
            yield Button("Start ^r", id="sweep-start", variant="primary", compact=True)
        yield Footer()

    def on_mount(self) -> None:
        self._preset_chosen()
        self.query_one("#sweep-params", Input).focus()
        self._load_taken()

    @work(thread=True, exclusive=True, group="sweep-names")
    def _load_taken(self) -> None:
        """The sweeps already in the storage (Optuna reads them off the UI thread)."""
        from ssltui.core.sweep.report import list_sweeps
        from ssltui.core.sweep.study import storage_url

        try:
            names = frozenset(s["name"] for s in list_sweeps(storage_url(None, self.app.store.sweeps_dir())))
        except SsltuiError:
            return  # an unreadable storage: the sweep's own process says why, in its log
        self.app.call_from_thread(self._names_loaded, names)

    def _names_loaded(self, names: frozenset[str]) -> None:
        self.taken = names
        self._check()

    # ------------------------------------------------------------ form state
    def request(self) -> SweepRequest:
        preset, method = self.query_one("#sweep-preset", Select).value, self.query_one("#sweep-method", Select).value

        def typed(field: str) -> str:
            return self.query_one(f"#sweep-{field}", Input).value

        def chosen(field: str) -> str:
            return str(self.query_one(f"#sweep-{field}", Select).value)

        return SweepRequest(
            preset=preset if isinstance(preset, str) else "",
            params=typed("params"),
            trials=typed("trials"),
            sampler=chosen("sampler"),
            data=typed("data"),
            device=chosen("device"),
            name=typed("name"),
            method=method if isinstance(method, str) else PRESETS_OWN,
            evaluation=typed("evaluation"),
            labels=typed("labels"),
            seeds=typed("seeds"),
            sets=typed("sets"),
            metric=chosen("metric"),
            prune=self.query_one("#sweep-prune", Checkbox).value,
        )

    def _preset_chosen(self) -> None:
        """Show the preset's method, evaluation, labels and seeds as the blank fields' values, and
        take its data source unless one was typed by hand."""
        preset = self.query_one("#sweep-preset", Select).value
        if not isinstance(preset, str) or not preset:
            return
        method = self.query_one("#sweep-method", Select)
        try:
            own = preset_values(preset)
            shown = own if method.is_blank() else preset_values(preset, str(method.value))
        except ConfigError as exc:
            self.show_note(exc.message)
            return
        method.prompt = f"preset's ({own.method})"
        for field in PRESET_FIELDS:
            self.query_one(f"#sweep-{field}", Input).placeholder = getattr(shown, field)
        data = self.query_one("#sweep-data", Input)
        if data.value == self.data_default:
            with self.prevent(Input.Changed):
                data.value = own.data
        self.data_default = own.data
        self._check()

    def show_note(self, refused: str | None, hint: str = "") -> None:
        """A refusal in red (the form does not start), else what the sweep would run, dim."""
        note = Text(f"refused: {refused}", style="bold red") if refused else Text(hint, style="dim")
        self.query_one("#sweep-form-note", Static).update(note)

    def _check(self) -> bool:
        """Check the whole form as `ssltui sweep` would; say what is wrong or what it would run."""
        req = self.request()
        if not req.param_specs():
            self.show_note(None, PARAMS_HINT)
            return False
        try:
            defn = req.validate(self.taken)
        except ConfigError as exc:
            self.show_note(exc.message)
            return False
        part = defn.parts[0]
        pruned = ", pruned below the median" if defn.prune else ""
        self.show_note(
            None,
            f"{defn.sampler}, {defn.trials} trial(s) of {defn.preset} ({part['method']}, "
            f"{'+'.join(part['evaluation'])}) on {req.data.strip()} by {defn.metric}{pruned}, "
            f"over {', '.join(defn.params)}",
        )
        return True

    # ------------------------------------------------------------ events
    @on(Select.Changed, "#sweep-preset, #sweep-method")
    def _preset_changed(self) -> None:
        self._preset_chosen()

    @on(Select.Changed, "#sweep-sampler, #sweep-device, #sweep-metric")
    @on(Checkbox.Changed)
    @on(Input.Changed)
    def _changed(self) -> None:
        self._check()

    @on(Input.Submitted)
    @on(Button.Pressed, "#sweep-start")
    def _submitted(self) -> None:
        self.action_start()

    # ------------------------------------------------------------ actions
    def action_cancel(self) -> None:
        self.dismiss(None)

    def action_start(self) -> None:
        req = self.request()
        if not req.param_specs():
            self.show_note("params: a sweep needs at least one KEY=SPEC")
            return
        try:
            name, log, launched = start_sweep(req, self.app.store, self.taken)
        except ConfigError as exc:
            self.show_note(exc.message)
            return
        except OSError as exc:
            self.show_note(f"could not start the sweep: {exc}")
            return
        self.app.processes[process_key(name)] = launched
        self.app.notify(f"sweep {name} started; its output goes to {log}", timeout=6)
        self.dismiss(name)
