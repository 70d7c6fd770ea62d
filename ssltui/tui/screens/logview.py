"""A run's whole log: run.log (the engine's lines, tracebacks) or process.log (what the launched
process printed), followed while it grows, searchable."""

from __future__ import annotations

import threading

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Header, Input, Log, Static
from textual.worker import get_current_worker

from ssltui.core.errors import ConfigError
from ssltui.tui.screens.common import HELP, SCROLL_KEYS
from ssltui.tui.watch import PROCESS_LOG, FileTail

FILES = ("run.log", PROCESS_LOG)
FOLLOW_SECONDS = 0.5


class RunLog(Log):
    BINDINGS = SCROLL_KEYS


class LogScreen(Screen):
    """One log file of a run, whole; it follows new lines while the view is at the bottom."""

    BINDINGS = [
        Binding("escape,q", "back", "Back"),
        Binding("f", "other_file", "Other file"),
        Binding("slash", "find", "Find"),
        Binding("n", "next_match(1)", "Next match"),
        Binding("N", "next_match(-1)", "Prev match"),
        HELP,
    ]

    def __init__(self, run_id: str, file: str = "run.log") -> None:
        super().__init__()
        self.run_id = run_id
        self.file = file
        self.lines: list[str] = []
        self.needle = ""
        self.match = -1
        self._stop = threading.Event()

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="log-title")
        yield RunLog(id="log-view", highlight=False, auto_scroll=True)
        yield Input(placeholder="find: text, enter; n/N next/previous", id="find", compact=True)
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = f"log · {self.run_id}"
        self.query_one("#find").display = False
        self.query_one("#log-view").focus()
        self._open()

    def on_unmount(self) -> None:
        self._stop.set()

    def _open(self) -> None:
        self.lines.clear()
        self.match = -1
        self.query_one("#log-view", Log).clear()
        try:
            path = self.app.store.get(self.run_id).path / self.file
        except ConfigError as exc:
            self._title(exc.message)
            return
        self._title()
        self.follow(path)

    def _title(self, problem: str | None = None) -> None:
        other = FILES[(FILES.index(self.file) + 1) % len(FILES)]
        text = Text.assemble((self.file, "bold"), f" · {len(self.lines)} lines · f: {other}")
        if self.needle:
            found = sum(self.needle in ln.lower() for ln in self.lines)
            text.append(f" · '{self.needle}': {found} lines")
        if problem:
            text.append(f" · {problem}", style="yellow")
        elif not self.lines:
            text.append(
                " · empty so far" if self.file == "run.log" else " · empty (only runs launched from the app write it)",
                style="dim",
            )
        self.query_one("#log-title", Static).update(text)

    @work(thread=True, exclusive=True, group="follow")
    def follow(self, path) -> None:
        """Read the file, then its new lines as they come; only messages cross into the UI."""
        worker = get_current_worker()
        tail = FileTail(path)
        while not worker.is_cancelled and not self._stop.is_set():
            new, truncated = tail.read()
            if new or truncated:
                lines = [ln.decode("utf-8", "replace").rstrip() for ln in new]
                self.app.call_from_thread(self._append, lines, truncated)
            self._stop.wait(FOLLOW_SECONDS)

    def _append(self, lines: list[str], truncated: bool) -> None:
        view = self.query_one("#log-view", Log)
        if truncated:
            view.clear()
            self.lines.clear()
        self.lines += lines
        view.write_lines(lines)
        self._title()

    # ------------------------------------------------------------ actions
    def action_back(self) -> None:
        find = self.query_one("#find", Input)
        if find.display:
            find.display = False
            self.query_one("#log-view").focus()
        else:
            self.app.pop_screen()

    def action_other_file(self) -> None:
        self.file = FILES[(FILES.index(self.file) + 1) % len(FILES)]
        self._open()  # its follower replaces the other file's (an exclusive worker)

    def action_find(self) -> None:
        find = self.query_one("#find", Input)
        find.display = True
        find.focus()

    @on(Input.Submitted, "#find")
    def _find(self, event: Input.Submitted) -> None:
        self.needle = event.value.strip().lower()
        self.match = -1
        event.input.display = False
        self.query_one("#log-view").focus()
        self.action_next_match(1)

    def action_next_match(self, step: int) -> None:
        if not self.needle:
            return
        hits = [i for i, ln in enumerate(self.lines) if self.needle in ln.lower()]
        self._title()
        if not hits:
            self.notify(f"'{self.needle}' is not in {self.file}", severity="warning")
            return
        after = [h for h in hits if (h > self.match if step > 0 else h < self.match)]
        self.match = (after[0] if step > 0 else after[-1]) if after else (hits[0] if step > 0 else hits[-1])
        view = self.query_one("#log-view", Log)
        view.auto_scroll = False  # stay on the match while the run writes more
        view.scroll_to(y=max(0, self.match - view.size.height // 2), animate=False)
        self.notify(f"line {self.match + 1}: match {hits.index(self.match) + 1} of {len(hits)}", timeout=2)
