"""The ssltui terminal app: runs browser, launch, live training, results. Never imports torch.

Training runs in its own process (see launch.py); the app only reads the run store, so
closing it or losing the SSH connection leaves the run training, and a new `ssltui`
reattaches to runs that are still training.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from textual import events
from textual.app import App
from textual.binding import Binding

from ssltui.core.paths import runs_dir as default_runs_dir
from ssltui.core.store import RunStore

if TYPE_CHECKING:  # the launch module loads the config schema: not before the first screen is drawn
    from ssltui.tui.launch import Launched


class SsltuiApp(App):
    """Screens: runs (home), launch, live, results, log, sweeps, help."""

    CSS_PATH = "app.tcss"
    TITLE = "ssltui"
    ENABLE_COMMAND_PALETTE = False  # every action has a key in the footer; keep its room for them
    BINDINGS = [Binding("ctrl+q", "quit", "Quit", show=False, priority=True)]

    def __init__(self, runs_dir: Path | None = None, reattach: bool = True) -> None:
        super().__init__()
        self.store = RunStore(default_runs_dir(runs_dir))
        self.reattach = reattach
        self.processes: dict[
            str, Launched
        ] = {}  # processes this app started, by run id, a sweep by `sweep:NAME` (reaped on exit)

    def on_mount(self) -> None:
        from ssltui.tui.screens.runs import RunsScreen

        self.push_screen(RunsScreen())
        if self.reattach:
            self.reattach_running()

    def reopen_launch(self, error: str, edits: dict) -> None:
        """The launch form in place of the current screen, saying why the last launch failed and
        keeping its edits (a screen opens another through the app, so no screen imports another
        that imports it back)."""
        from ssltui.tui.screens.launch import LaunchScreen

        self.switch_screen(LaunchScreen(error=error, edits=edits))

    def reattach_running(self) -> None:
        """Open the live view of the newest run that a live process is training."""
        from ssltui.tui.screens.live import LiveScreen

        live = [d for d in self.store.iter_dirs() if d.is_live()]
        if live:
            newest = max(live, key=lambda d: d.path.stat().st_mtime)
            self.push_screen(LiveScreen(newest.id))

    async def on_event(self, event: events.Event) -> None:
        """Typed text goes to the screen's text field before any key binding or focus change is
        considered, in the order it arrived: keys of one burst are all queued before the first is
        handled, so a focus change made while handling one would come too late for the next."""
        if isinstance(event, (events.Key, events.Paste)) and not event.is_forwarded:
            take = getattr(self.screen, "take_text", None)
            if take is not None and take(event):
                return
        await super().on_event(event)

    def typing_follows(self, bound: set[str]) -> bool:
        """The keys already queued behind the one being handled (the rest of a burst) are typing:
        among the printable keys that follow it at once, one is no key binding (`bound`). A burst
        of bound keys alone, such as a held-down j piling up while the app is busy, stays keys."""
        self._peek_message()  # the queue's head is now in _pending_message
        queued = [self._pending_message, *list(getattr(self._message_queue, "values", ()))]
        for message in queued:
            if not isinstance(message, events.Key):
                if isinstance(message, events.Event):
                    break  # the burst ends at the first other input
                continue  # a callback or a message between the keys
            if not message.character or not message.character.isprintable():
                break
            if message.key not in bound:
                return True
        return False

    def action_help(self) -> None:
        from ssltui.tui.screens.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def on_unmount(self) -> None:
        for launched in self.processes.values():
            launched.proc.poll()  # reap finished children; running ones keep training in their own session


def run_tui(runs_dir: Path | None = None) -> int:
    """Run the app until the user quits; the exit code for the CLI (1 when the app crashed)."""
    app = SsltuiApp(runs_dir)
    app.run()
    return app.return_code or 0
