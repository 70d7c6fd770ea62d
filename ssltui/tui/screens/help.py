"""The help screen: every key of every screen, read from the screens' own bindings."""

from __future__ import annotations

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer, Static

KEY_NAMES = {
    "question_mark": "?",
    "slash": "/",
    "space": "space",
    "escape": "esc",
    "enter": "enter",
    "comma": ",",
    "full_stop": ".",
    "left": "←",
    "right": "→",
    "home": "Home",
    "end": "End",
}
HIDDEN_ACTIONS = (
    "app.help",
    "scroll(1)",
    "scroll(-1)",
    "scroll_to(0)",
    "scroll_to(1)",
    "cursor_down",
    "cursor_up",
    "scroll_top",
    "scroll_bottom",
    "scroll_down",
    "scroll_up",
    "scroll_home",
    "scroll_end",
)


def key_label(keys: str) -> str:
    return " ".join(KEY_NAMES.get(k, k) for k in keys.split(","))


def screen_bindings() -> list[tuple[str, list[Binding]]]:
    from ssltui.tui.screens.launch import LaunchScreen, ParamsTable
    from ssltui.tui.screens.live import LiveScreen
    from ssltui.tui.screens.logview import LogScreen
    from ssltui.tui.screens.newsweep import NewSweepScreen
    from ssltui.tui.screens.results import ResultsScreen
    from ssltui.tui.screens.runs import RunsScreen, RunsTable
    from ssltui.tui.screens.sweep import SweepScreen

    return [
        ("runs", RunsTable.BINDINGS + RunsScreen.BINDINGS),
        ("launch", LaunchScreen.BINDINGS + ParamsTable.BINDINGS),
        ("live", LiveScreen.BINDINGS),
        ("results", ResultsScreen.BINDINGS),
        ("log", LogScreen.BINDINGS),
        ("sweeps", SweepScreen.BINDINGS),
        ("new sweep", NewSweepScreen.BINDINGS),
    ]


def help_table() -> Table:
    """One table of (screen, key, action) for every screen of the app."""
    table = Table(show_edge=False, pad_edge=False, expand=False)
    table.add_column("screen", style="bold")
    table.add_column("key", style="cyan", no_wrap=True)
    table.add_column("action")
    for name, bindings in screen_bindings():
        first = True
        for b in bindings:
            assert isinstance(b, Binding)
            if b.action in HIDDEN_ACTIONS:
                continue
            table.add_row(name if first else "", key_label(b.key), b.description or b.action)
            first = False
    table.add_row("any", "?", "this help")
    table.add_row("", "j k", "down, up in a list or a pane")
    table.add_row("", "g G", "first, last (also Home, End)")
    table.add_row("", "q esc", "back (q quits on the runs list)")
    table.add_row("", "ctrl+q", "quit (the runs keep training)")
    table.add_row("", "tab", "next field or widget")
    return table


class HelpScreen(ModalScreen):
    BINDINGS = [
        Binding("escape,q,question_mark", "app.pop_screen", "Close"),
        Binding("j,down", "scroll('down')", show=False),
        Binding("k,up", "scroll('up')", show=False),
        Binding("g,home", "scroll('home')", show=False),
        Binding("G,end", "scroll('end')", show=False),
    ]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help"):
            yield Static(
                "[b]ssltui keys[/b]  (typing in the runs list filters it; a run keeps training "
                "when the app closes, and a new ssltui reattaches)"
            )
            yield Static(help_table())
        yield Footer()

    def action_scroll(self, where: str) -> None:
        pane = self.query_one("#help", VerticalScroll)
        {"down": pane.scroll_down, "up": pane.scroll_up, "home": pane.scroll_home, "end": pane.scroll_end}[where](
            animate=False
        )
