"""Launch: method, label fraction, preset, seeds, device, data, and the preset's
hyperparameters, each edited in place and checked by the config validator as it is typed."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal
from textual.screen import Screen
from textual.validation import ValidationResult, Validator
from textual.widgets import Button, DataTable, Footer, Header, Input, Label, Select, Static

from ssltui.engine.errors import ConfigError
from ssltui.tui.launch import (DEVICES, LABEL_CHOICES, METHODS, LaunchRequest, Param, check_data,
                               hyperparameters, parse_fractions, parse_seeds, presets_for, start_run)

TYPED = "typed"


class ConfigValidator(Validator):
    """Checks the edited hyperparameter with everything else the form holds, through the
    engine's own validation (the same one `ssltui run` applies)."""

    def __init__(self, screen: "LaunchScreen") -> None:
        super().__init__()
        self.launch = screen

    def validate(self, value: str) -> ValidationResult:
        key = self.launch.editing
        if key is None:
            return self.success()
        try:
            if not value.strip():
                raise ConfigError(f"{key}: a value is needed")
            self.launch.request(extra={key: value.strip()}).validate_config()
        except ConfigError as exc:
            return self.failure(exc.message)
        return self.success()


class ParamsTable(DataTable):
    BINDINGS = [Binding("enter", "select_cursor", "Edit value")]


class LaunchScreen(Screen):
    """Choose and start a run; it opens the live screen."""

    BINDINGS = [
        Binding("ctrl+r", "launch", "Launch", priority=True),
        Binding("escape", "back", "Back"),
        Binding("ctrl+d", "reset_params", "Preset values"),
        Binding("question_mark", "app.help", "Help"),
    ]

    def __init__(self, method: str = "simclr", data: str = "cifar10") -> None:
        super().__init__()
        self.initial_method, self.initial_data = method, data
        self.params: dict[str, Param] = {}
        self.edits: dict[str, str] = {}  # accepted edits (dotted key -> typed text)
        self.editing: str | None = None  # the key in the editor line

    def compose(self) -> ComposeResult:
        yield Header()
        with Grid(id="launch-form"):
            yield Label("method")
            yield Select([(m, m) for m in METHODS], value=self.initial_method, allow_blank=False,
                         compact=True, id="method")
            yield Label("labels")
            yield Select([(n, v) for n, v in LABEL_CHOICES] + [("typed…", TYPED)], value="0.1",
                         allow_blank=False, compact=True, id="labels")
            yield Label("preset")
            yield Select([], compact=True, id="preset", allow_blank=True)
            yield Label("typed labels")
            yield Input("", placeholder="e.g. 5% or 0.05,0.2", compact=True, id="labels-typed", disabled=True)
            yield Label("seeds")
            yield Input("0", compact=True, id="seeds")
            yield Label("device")
            yield Select([(d, d) for d in DEVICES], value="auto", allow_blank=False, compact=True, id="device")
            yield Label("data")
            yield Input(self.initial_data, compact=True, id="data",
                        placeholder="cifar10 | synthetic | folder:PATH")
            yield Label("")
            yield Button("Launch ^r", id="launch", variant="primary", compact=True)
        yield Static(id="launch-error")
        yield ParamsTable(id="params", cursor_type="row", zebra_stripes=True)
        with Horizontal(id="editor"):
            yield Label("", id="edit-key")
            yield Input("", compact=True, id="edit-value", validators=[ConfigValidator(self)],
                        validate_on=["changed", "submitted"], disabled=True)
        yield Static(Text("enter: edit the selected hyperparameter", style="dim"), id="edit-reason")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "launch a run"
        table = self.query_one("#params", DataTable)
        table.add_column("hyperparameter", key="key")
        table.add_column("value", key="value")
        table.add_column("meaning", key="help")
        self._fill_presets()
        self.query_one("#method", Select).focus()

    # ------------------------------------------------------------ form state
    def request(self, extra: dict[str, str] | None = None) -> LaunchRequest:
        labels = self.query_one("#labels", Select).value
        if labels == TYPED:
            labels = self.query_one("#labels-typed", Input).value
        preset = self.query_one("#preset", Select).value
        sets = {**self.edits, **(extra or {})}
        return LaunchRequest(
            preset=preset if isinstance(preset, str) else "", method=str(self.query_one("#method", Select).value),
            labels=str(labels), seeds=self.query_one("#seeds", Input).value,
            device=str(self.query_one("#device", Select).value), data=self.query_one("#data", Input).value,
            sets={k: v for k, v in sets.items() if k not in self.params or v != self.params[k].value})

    def _fill_presets(self) -> None:
        method = str(self.query_one("#method", Select).value)
        presets = presets_for(method)
        select = self.query_one("#preset", Select)
        current = select.value
        names = [p.name for p in presets]
        with self.prevent(Select.Changed):
            select.set_options([(n, n) for n in names])
            if current in names:
                select.value = current
            elif names:
                select.value = method if method in names else names[0]
        self._build_params()

    def _build_params(self) -> None:
        table = self.query_one("#params", DataTable)
        table.clear()
        self.params.clear()
        self.edits.clear()
        self._close_editor()
        preset = self.query_one("#preset", Select).value
        if not isinstance(preset, str):
            self._set_error(f"no preset for method {self.query_one('#method', Select).value}")
            return
        try:
            params = hyperparameters(preset, str(self.query_one("#method", Select).value))
        except ConfigError as exc:
            self._set_error(exc.message)
            return
        for p in params:
            self.params[p.key] = p
            table.add_row(p.key, p.value, p.help, key=p.key)
        self._set_error(None)

    def _set_error(self, message: str | None) -> None:
        self.query_one("#launch-error", Static).update(Text(message or "", style="bold red"))
        self.query_one("#launch-error").display = bool(message)

    # ------------------------------------------------------------ the editor line
    @on(DataTable.RowSelected, "#params")
    def _edit_row(self, event: DataTable.RowSelected) -> None:
        key = event.row_key.value
        if key not in self.params:
            return
        self.editing = key
        self.query_one("#edit-key", Label).update(f"{key} =")
        editor = self.query_one("#edit-value", Input)
        editor.disabled = False
        with self.prevent(Input.Changed):
            editor.value = self.edits.get(key, self.params[key].value)
        editor.focus()
        self._show_reason(None)

    @on(Input.Changed, "#edit-value")
    def _edit_changed(self, event: Input.Changed) -> None:
        result = event.validation_result
        self._show_reason(None if result is None or result.is_valid else result.failure_descriptions[0])

    @on(Input.Submitted, "#edit-value")
    def _edit_submitted(self, event: Input.Submitted) -> None:
        key = self.editing
        if key is None:
            return
        result = event.validation_result
        if result is not None and not result.is_valid:
            self._show_reason(result.failure_descriptions[0])  # refused: the value is not taken
            return
        value = event.value.strip()
        if value == self.params[key].value:
            self.edits.pop(key, None)
            cell = Text(value)
        else:
            self.edits[key] = value
            cell = Text(value, style="bold yellow")
        self.query_one("#params", DataTable).update_cell(key, "value", cell)
        self._close_editor()
        self.query_one("#params", DataTable).focus()

    def _show_reason(self, reason: str | None) -> None:
        hint = "enter: accept · esc: cancel" if self.editing else "enter: edit the selected hyperparameter"
        self.query_one("#edit-reason", Static).update(
            Text(f"refused: {reason}", style="bold red") if reason else Text(hint, style="dim"))
        self.query_one("#editor").set_class(bool(reason), "-refused")

    def _close_editor(self) -> None:
        self.editing = None
        editor = self.query_one("#edit-value", Input)
        with self.prevent(Input.Changed):
            editor.value = ""
        editor.disabled = True
        self.query_one("#edit-key", Label).update("")
        self._show_reason(None)

    # ------------------------------------------------------------ events
    @on(Select.Changed, "#method")
    def _method_changed(self) -> None:
        self._fill_presets()

    @on(Select.Changed, "#preset")
    def _preset_changed(self, event: Select.Changed) -> None:
        if event.select.value is not Select.BLANK:
            self._build_params()

    @on(Select.Changed, "#labels")
    def _labels_changed(self, event: Select.Changed) -> None:
        typed = self.query_one("#labels-typed", Input)
        typed.disabled = event.value != TYPED
        if not typed.disabled:
            typed.focus()

    @on(Input.Changed, "#seeds, #labels-typed, #data")
    def _basics_changed(self, event: Input.Changed) -> None:
        """Check the field as it is typed; a refused value shows its reason above the table."""
        check = {"seeds": parse_seeds, "labels-typed": parse_fractions, "data": check_data}[event.input.id]
        try:
            check(event.value)
        except ConfigError as exc:
            self._set_error(f"refused: {exc.message}")
            event.input.add_class("-refused")
            return
        event.input.remove_class("-refused")
        self._set_error(None)

    @on(Button.Pressed, "#launch")
    def _launch_pressed(self) -> None:
        self.action_launch()

    # ------------------------------------------------------------ actions
    def action_back(self) -> None:
        if self.editing is not None:
            self._close_editor()
            self.query_one("#params", DataTable).focus()
        else:
            self.app.pop_screen()

    def action_reset_params(self) -> None:
        self._build_params()

    def action_launch(self) -> None:
        req = self.request()
        try:
            run, proc = start_run(req, self.app.store)
        except ConfigError as exc:
            self._set_error(f"refused: {exc.message}")
            return
        except OSError as exc:
            self._set_error(f"could not start the run: {exc}")
            return
        self.app.processes[run.id] = proc
        from ssltui.tui.screens.live import LiveScreen

        self.app.switch_screen(LiveScreen(run.id))
