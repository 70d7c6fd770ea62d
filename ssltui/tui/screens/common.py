"""Pieces every screen uses: the confirmation dialog, vi-style movement keys, resuming a run."""

from __future__ import annotations

from collections.abc import Callable

from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import DataTable, Footer, Input, Static

from ssltui.core.errors import ConfigError
from ssltui.core.notes import RunNotes
from ssltui.view.format import plain

BACK = Binding("escape,q", "app.pop_screen", "Back")
HELP = Binding("question_mark", "app.help", "Help")
# j/k/g/G move in lists (Home/End to the first/last row, not the first/last column).
TABLE_KEYS = [
    Binding("j", "cursor_down", "Down", show=False),
    Binding("k", "cursor_up", "Up", show=False),
    Binding("g,home", "scroll_top", "First", show=False),
    Binding("G,end", "scroll_bottom", "Last", show=False),
]
SCROLL_KEYS = [
    Binding("j", "scroll_down", "Down", show=False),
    Binding("k", "scroll_up", "Up", show=False),
    Binding("g,home", "scroll_home", "Top", show=False),
    Binding("G,end", "scroll_end", "Bottom", show=False),
]


class NavTable(DataTable):
    """A row-cursor table that also moves with j/k/g/G."""

    BINDINGS = TABLE_KEYS


class NavScroll(VerticalScroll):
    """A scrolling pane that also moves with j/k/g/G."""

    BINDINGS = SCROLL_KEYS


class Confirm(ModalScreen[bool]):
    """Ask before doing something that cannot be undone from here (stop, delete, archive)."""

    BINDINGS = [Binding("y", "answer(True)", "Yes"), Binding("n,escape,q", "answer(False)", "No")]

    def __init__(self, question: str, detail: str, yes: str = "yes", no: str = "no") -> None:
        super().__init__()
        self.question, self.detail, self.yes, self.no = question, detail, yes, no

    def compose(self) -> ComposeResult:
        body = Text.assemble(
            (plain(self.question), "bold"),
            "\n",
            plain(self.detail),
            "\n\n",
            ("y", "bold"),
            f" {self.yes}    ",
            ("n", "bold"),
            f" {self.no}",
        )
        yield Static(body, id="confirm")
        yield Footer()

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


def resume_run(app: App, run_id: str, then: Callable[[], None] | None = None) -> bool:
    """Start `ssltui resume RUN` in its own process; say why not when it cannot."""
    from ssltui.tui.launch import start_resume

    try:
        run = app.store.get(run_id)
        launched = start_resume(run, app.store)
    except ConfigError as exc:
        app.notify(exc.message, severity="warning")
        return False
    except OSError as exc:
        app.notify(f"could not start the resume: {exc}", severity="error")
        return False
    app.processes[run_id] = launched
    app.notify(f"resuming {run_id}…", timeout=3)
    if then is not None:
        then()
    return True


class EditNotes(ModalScreen[RunNotes | None]):
    """A run's note and tags (tags separated by spaces); enter saves, escape leaves them as they were.
    A malformed tag or an over-long note is said here, in red, and nothing is written."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, run_id: str, notes: RunNotes) -> None:
        super().__init__()
        self.run_id, self.notes = run_id, notes

    def compose(self) -> ComposeResult:
        with Vertical(id="edit-notes"):
            yield Static(Text.assemble(("note and tags of ", "bold"), (plain(self.run_id), "bold")))
            yield Input(self.notes.note, placeholder="a note on this run", id="note")
            yield Input(" ".join(self.notes.tags), placeholder="tags, separated by spaces", id="tags")
            yield Static("enter saves · escape cancels", id="edit-notes-help")
        yield Footer()

    def on_input_submitted(self, _event: Input.Submitted) -> None:
        try:
            notes = RunNotes.checked(
                note=self.query_one("#note", Input).value.strip(), tags=self.query_one("#tags", Input).value.split()
            )
        except ConfigError as exc:
            self.query_one("#edit-notes-help", Static).update(Text(exc.message, style="red"))
            return
        self.dismiss(notes)

    def action_cancel(self) -> None:
        self.dismiss(None)
