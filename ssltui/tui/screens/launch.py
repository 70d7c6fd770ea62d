"""Launch: method (or a study), label fraction, preset, seeds, device, data, and the preset's
hyperparameters, each edited in place and checked by the config validator as it is typed.
The form starts from the last launch's choices; choosing a preset takes its labels, seeds and
data source (synthetic for the smoke presets) unless the data was typed by hand."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal
from textual.events import DescendantBlur, DescendantFocus
from textual.screen import Screen
from textual.validation import ValidationResult, Validator
from textual.widgets import Button, DataTable, Footer, Header, Input, Label, Select, Static

from ssltui.core.errors import ConfigError
from ssltui.core.presets import Plan
from ssltui.tui.choices import load_choices, save_choices
from ssltui.tui.launch import (
    DEFAULT_DATA,
    DEVICES,
    LABEL_CHOICES,
    METHODS,
    STUDY,
    LaunchRequest,
    Param,
    check_data,
    hyperparameters,
    parse_fractions,
    parse_seeds,
    preset_defaults,
    presets_for,
    resolve_choice,
    start_run,
)
from ssltui.tui.screens.common import NavTable
from ssltui.view.format import plain

TYPED = "typed"
METHOD_NAMES = {STUDY: "study (several methods)"}
FIELDS = ("method", "labels", "preset", "labels-typed", "seeds", "device", "data")


class ConfigValidator(Validator):
    """Checks the edited hyperparameter with everything else the form holds, through the
    engine's own validation (the same one `ssltui run` applies)."""

    def __init__(self, screen: LaunchScreen) -> None:
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


class ParamsTable(NavTable):
    BINDINGS = [Binding("enter", "select_cursor", "Edit value")]


class LaunchScreen(Screen):
    """Choose and start a run; it opens the live screen."""

    BINDINGS = [
        Binding("ctrl+r", "launch", "Launch", priority=True),
        Binding("escape", "back", "Back"),
        Binding("ctrl+d", "reset_params", "Preset values"),
        Binding("question_mark", "app.help", "Help"),
    ]

    def __init__(
        self,
        method: str | None = None,
        data: str | None = None,
        error: str | None = None,
        edits: dict[str, str] | None = None,
    ) -> None:
        """`error` and `edits`: a launch that failed before its run began comes back to the form
        with its reason and the hyperparameters as they were edited."""
        super().__init__()
        self.failed = error
        self.restore_edits = dict(edits or {})
        self.base: Plan | None = None  # the chosen preset, resolved once when it is chosen
        remembered = load_choices()
        if method is not None or data is not None:  # asked for a particular form: start from it
            remembered = {}
        method = method or remembered.get("method", METHODS[0])
        self.initial = {**remembered, "method": method if method in METHODS else METHODS[0]}
        if data is not None:
            self.initial["data"] = data
        # A data source chosen by hand outlives a preset change; a preset's own default does not.
        self.data_typed = data is not None or self._remembered_data_typed(remembered)
        self.data_default = self.initial.get("data", DEFAULT_DATA)  # what the form put in the data field
        self.params: dict[str, Param] = {}
        self.edits: dict[str, str] = {}  # accepted edits (dotted key -> typed text)
        self.editing: str | None = None  # the key in the editor line
        self.presets_of: str | None = None  # the method whose presets the preset select lists
        self.preset_applied: object = None  # the preset whose defaults the form took

    @staticmethod
    def _remembered_data_typed(remembered: dict[str, str]) -> bool:
        """The last launch's data was typed, not its preset's default."""
        if "data" not in remembered or "preset" not in remembered:
            return False
        try:
            return remembered["data"] != preset_defaults(remembered["preset"], remembered.get("method", "")).data
        except ConfigError:
            return True

    def compose(self) -> ComposeResult:
        yield Header()
        with Grid(id="launch-form"):
            yield Label("method", id="label-method")
            yield Select(
                [(METHOD_NAMES.get(m, m), m) for m in METHODS],
                value=self.initial["method"],
                allow_blank=False,
                compact=True,
                id="method",
            )
            yield Label("labels", id="label-labels")
            yield Select(
                [(n, v) for n, v in LABEL_CHOICES] + [("typed…", TYPED)],
                value="0.1",
                allow_blank=False,
                compact=True,
                id="labels",
            )
            yield Label("preset", id="label-preset")
            # no blank choice: a form without a preset has nothing to launch or edit
            yield Select([("", "")], compact=True, id="preset", allow_blank=False)
            yield Label("typed labels", id="label-labels-typed")
            yield Input("", placeholder="e.g. 5% or 0.05,0.2", compact=True, id="labels-typed", disabled=True)
            yield Label("seeds", id="label-seeds")
            yield Input("0", compact=True, id="seeds")
            yield Label("device", id="label-device")
            device = self.initial.get("device", "auto")
            yield Select(
                [(d, d) for d in DEVICES],
                value=device if device in DEVICES else "auto",
                allow_blank=False,
                compact=True,
                id="device",
            )
            yield Label("data", id="label-data")
            yield Input(
                self.initial.get("data", DEFAULT_DATA),
                compact=True,
                id="data",
                placeholder="cifar10 | synthetic | folder:PATH",
            )
            yield Label("")
            yield Button("Launch ^r", id="launch", variant="primary", compact=True)
        yield Static(id="launch-error")
        yield ParamsTable(id="params", cursor_type="row", zebra_stripes=True)
        with Horizontal(id="editor"):
            yield Label("", id="edit-key")
            yield Input(
                "",
                compact=True,
                id="edit-value",
                validators=[ConfigValidator(self)],
                validate_on=["changed", "submitted"],
                disabled=True,
            )
        yield Static(Text("enter: edit the selected hyperparameter", style="dim"), id="edit-reason")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "launch a run or a study"
        self._fill_presets(self.initial.get("preset"))
        if "labels" in self.initial or "seeds" in self.initial:  # the last launch's, over the preset's
            self._set_labels(self.initial.get("labels", "0.1"))
            self._set_input("#seeds", self.initial.get("seeds", "0"))
        self.query_one("#method", Select).focus()
        if self.restore_edits:
            self.edits.update({k: v for k, v in self.restore_edits.items() if k in self.params})
            self._fill_params()
        if self.failed:
            self._set_error(f"the launch failed, nothing was kept: {self.failed}")

    # ------------------------------------------------------------ form state
    @property
    def method(self) -> str:
        return str(self.query_one("#method", Select).value)

    def request(self, extra: dict[str, str] | None = None) -> LaunchRequest:
        labels = self.query_one("#labels", Select).value
        if labels == TYPED:
            labels = self.query_one("#labels-typed", Input).value
        preset = self.query_one("#preset", Select).value
        sets = {**self.edits, **(extra or {})}
        return LaunchRequest(
            base=self.base if self.base is not None and self.base.preset == preset else None,
            preset=preset if isinstance(preset, str) else "",
            method=self.method,
            labels=str(labels),
            seeds=self.query_one("#seeds", Input).value,
            device=str(self.query_one("#device", Select).value),
            data=self.query_one("#data", Input).value,
            sets={k: v for k, v in sets.items() if k not in self.params or v != self.params[k].value},
        )

    def _fill_presets(self, wanted: str | None = None) -> None:
        method = self.presets_of = self.method
        names = [p.name for p in presets_for(method)]
        select = self.query_one("#preset", Select)
        current = wanted if wanted in names else select.value
        with self.prevent(Select.Changed):
            select.set_options([(n, n) for n in names] or [("", "")])
            if names:
                select.value = current if current in names else method if method in names else names[0]
        self._preset_chosen()

    def _preset_chosen(self) -> None:
        """Take the preset's labels, seeds and (unless typed by hand) data source; list its values."""
        preset = self.preset_applied = self.query_one("#preset", Select).value
        self.base = None
        if isinstance(preset, str) and preset:
            try:  # the one time this choice reads the preset: edits are checked against this plan
                self.base = resolve_choice(preset, self.method)
                defaults = preset_defaults(self.base, self.method)
            except ConfigError as exc:
                self._set_error(exc.message)
            else:
                self._set_labels(defaults.labels)
                self._set_input("#seeds", defaults.seeds)
                self.data_default = defaults.data
                if not self.data_typed:
                    self._set_input("#data", defaults.data)
        self._build_params()

    def _set_labels(self, labels: str) -> None:
        choices = {v for _, v in LABEL_CHOICES}
        with self.prevent(Select.Changed):
            self.query_one("#labels", Select).value = labels if labels in choices else TYPED
        typed = self.query_one("#labels-typed", Input)
        typed.disabled = labels in choices
        self._set_input("#labels-typed", "" if labels in choices else labels)

    def _set_input(self, selector: str, value: str) -> None:
        field = self.query_one(selector, Input)
        with self.prevent(Input.Changed):
            field.value = value
        field.remove_class("-refused")

    def _build_params(self) -> None:
        table = self.query_one("#params", DataTable)
        table.clear()
        self.params.clear()
        self.edits.clear()
        self._close_editor()
        preset = self.query_one("#preset", Select).value
        if not isinstance(preset, str) or not preset:
            self._set_error(f"no preset for {self.method}")
            return
        if self.base is None:
            return  # the preset was refused when chosen; its reason is shown
        try:
            params = hyperparameters(self.base, self.method)
        except ConfigError as exc:
            self._set_error(exc.message)
            return
        for p in params:
            self.params[p.key] = p
        self._fill_params()
        self._set_error(None)

    def _fill_params(self) -> None:
        """The table at the screen's width: the meaning column takes what is left, cut with '…'
        (the selected row's whole meaning is on the line under the table), so nothing scrolls sideways."""
        table = self.query_one("#params", DataTable)
        table.clear(columns=True)
        params = list(self.params.values())
        key_w = max((len(p.key) for p in params), default=14)
        value_w = min(24, max([len(self.edits.get(p.key, p.value)) for p in params] + [5]))
        help_w = max(10, self.size.width - key_w - value_w - 10)
        table.add_column("hyperparameter", key="key", width=key_w)
        table.add_column("value", key="value", width=value_w)
        table.add_column("meaning", key="help", width=help_w)
        for p in params:
            value = self.edits.get(p.key, p.value)
            table.add_row(
                p.key,
                Text(plain(value, limit=value_w), style="bold yellow" if p.key in self.edits else ""),
                plain(p.help, limit=help_w),
                key=p.key,
            )

    def on_resize(self) -> None:
        if self.params:
            row = self.query_one("#params", DataTable).cursor_row
            self._fill_params()
            self.query_one("#params", DataTable).move_cursor(row=row, animate=False)

    @on(DataTable.RowHighlighted, "#params")
    def _row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if self.editing is None:
            self._show_reason(None)

    def _set_error(self, message: str | None) -> None:
        if message is None and self.failed:  # a failed launch's reason stays until the next launch
            message = f"the launch failed, nothing was kept: {self.failed}"
        self.query_one("#launch-error", Static).update(Text(message or "", style="bold red"))
        self.query_one("#launch-error").display = bool(message)

    # ------------------------------------------------------------ the focused field, visible
    def on_descendant_focus(self, event: DescendantFocus) -> None:
        self._mark_label(event.widget.id)

    def on_descendant_blur(self, event: DescendantBlur) -> None:
        self._mark_label(None)

    def _mark_label(self, field: str | None) -> None:
        for name in FIELDS:
            self.query_one(f"#label-{name}", Label).set_class(name == field, "-focused")

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
        value = self.edits.get(key, self.params[key].value)
        with self.prevent(Input.Changed):
            editor.value = value.removeprefix("varies: ").split(" | ")[0]
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
        cell.truncate(self.query_one("#params", DataTable).columns["value"].width, overflow="ellipsis")
        self.query_one("#params", DataTable).update_cell(key, "value", cell)
        self._close_editor()
        self.query_one("#params", DataTable).focus()

    def selected_param(self) -> Param | None:
        table = self.query_one("#params", DataTable)
        if not table.row_count or table.cursor_row >= table.row_count:
            return None
        return self.params.get(table.coordinate_to_cell_key((table.cursor_row, 0)).row_key.value)

    def _show_reason(self, reason: str | None) -> None:
        if self.editing:
            hint = "enter: accept · esc: cancel"
        else:
            p = self.selected_param()
            hint = f"{p.key}: {p.help} · enter: edit" if p else "enter: edit the selected hyperparameter"
            if self.method == STUDY:
                hint += " (an edit applies to every part of the study)"
        self.query_one("#edit-reason", Static).update(
            Text(f"refused: {reason}", style="bold red") if reason else Text(hint, style="dim")
        )
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
        if self.method != self.presets_of:  # not the select announcing its first value
            self._fill_presets()

    @on(Select.Changed, "#preset")
    def _preset_changed(self, event: Select.Changed) -> None:
        if isinstance(event.select.value, str) and event.select.value and event.select.value != self.preset_applied:
            self._preset_chosen()

    @on(Select.Changed, "#labels")
    def _labels_changed(self, event: Select.Changed) -> None:
        typed = self.query_one("#labels-typed", Input)
        typed.disabled = event.value != TYPED
        if not typed.disabled:
            typed.focus()

    @on(Input.Changed, "#seeds, #labels-typed, #data")
    def _basics_changed(self, event: Input.Changed) -> None:
        """Check the field as it is typed; a refused value shows its reason above the table."""
        if event.input.id == "data" and event.value != self.data_default:
            self.data_typed = True  # typed by hand (the form's own value also announces itself once)
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
        self.failed = None
        req = self.request()
        try:
            run, launched = start_run(req, self.app.store)
        except ConfigError as exc:
            self._set_error(f"refused: {exc.message}")
            return
        except OSError as exc:
            self._set_error(f"could not start the run: {exc}")
            return
        self.app.processes[run.id] = launched
        problem = save_choices(
            {
                "method": req.method,
                "preset": req.preset,
                "labels": req.labels,
                "seeds": req.seeds,
                "device": req.device,
                "data": req.data,
            }
        )
        if problem:
            self.notify(f"the form's choices were not remembered: {problem}", severity="warning")
        from ssltui.tui.screens.live import LiveScreen

        self.app.switch_screen(LiveScreen(run.id))
