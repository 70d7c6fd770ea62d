"""The help screen: every key of every screen, read from the screens' own bindings."""

from __future__ import annotations

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer, Static

KEY_NAMES = {"question_mark": "?", "slash": "/", "space": "space", "escape": "esc", "enter": "enter",
             "comma": ",", "full_stop": ".", "left": "←", "right": "→", "ctrl+r": "ctrl+r", "ctrl+d": "ctrl+d"}


def key_label(keys: str) -> str:
    return " ".join(KEY_NAMES.get(k, k) for k in keys.split(","))


def help_table() -> Table:
    """One table of (screen, key, action) for every screen of the app."""
    from ssltui.tui.screens.launch import LaunchScreen, ParamsTable
    from ssltui.tui.screens.live import LiveScreen
    from ssltui.tui.screens.results import ResultsScreen
    from ssltui.tui.screens.runs import RunsScreen, RunsTable

    table = Table(show_edge=False, pad_edge=False, expand=False)
    table.add_column("screen", style="bold")
    table.add_column("key", style="cyan", no_wrap=True)
    table.add_column("action")
    for name, bindings in (("runs", RunsTable.BINDINGS + RunsScreen.BINDINGS),
                           ("launch", LaunchScreen.BINDINGS + ParamsTable.BINDINGS),
                           ("live", LiveScreen.BINDINGS), ("results", ResultsScreen.BINDINGS)):
        first = True
        for b in bindings:
            assert isinstance(b, Binding)
            if b.action == "app.help":
                continue
            table.add_row(name if first else "", key_label(b.key), b.description or b.action)
            first = False
    table.add_row("any", "?", "this help")
    table.add_row("", "ctrl+q", "quit (the runs keep training)")
    table.add_row("", "tab", "next field or widget")
    return table


class HelpScreen(ModalScreen):
    BINDINGS = [Binding("escape,q,question_mark", "app.pop_screen", "Close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help"):
            yield Static("[b]ssltui keys[/b]  (typing in the runs list filters it; a run keeps training "
                         "when the app closes, and a new ssltui reattaches)")
            yield Static(help_table())
        yield Footer()
