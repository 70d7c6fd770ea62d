"""Live training (and a finished run's curves): per-phase progress, charts, log tail, cancel."""

from __future__ import annotations

import threading
import time

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Footer, Header, Label, ProgressBar, RichLog, Static
from textual.worker import get_current_worker

from ssltui.engine.store import RunDir
from ssltui.tui.launch import cancel_run
from ssltui.tui.runstate import PhaseState, RunState
from ssltui.view.format import duration, label_fraction, pct
from ssltui.tui.watch import POLL_SECONDS, RunTail, RunUpdate
from ssltui.tui.widgets.charts import PhaseChart

PHASE_ROWS = 4  # progress rows shown: the newest phases
REDRAW_SECONDS = 0.3  # charts redraw at most ~3 times a second, whatever the event rate


def phase_stats(p: PhaseState, running: bool = True) -> str:
    eta = "done" if p.done else f"eta {duration(p.eta_seconds())}" if running else "stopped"
    ips = f"{p.images_per_s:.0f} img/s" if p.images_per_s else "- img/s"
    loss = f"loss {p.loss:.3f}" if isinstance(p.loss, (int, float)) else ""
    return f"ep {p.epoch}/{p.epochs} {eta} {ips} {loss}".rstrip()


class PhaseRow(Horizontal):
    """Name, bar and numbers of one phase."""

    def __init__(self, phase: PhaseState, running: bool = True) -> None:
        super().__init__(classes="phase-row")
        self.phase_name = phase.name
        self._init, self._phase_running = phase, running

    def compose(self) -> ComposeResult:
        yield Label(self._init.ref.label(), classes="phase-name")
        yield ProgressBar(total=100, show_eta=False, show_percentage=True, classes="phase-bar")
        yield Label("", classes="phase-stats")

    def on_mount(self) -> None:
        self.update_phase(self._init, self._phase_running)

    def update_phase(self, p: PhaseState, running: bool = True) -> None:
        self._init, self._phase_running = p, running
        bars = self.query(ProgressBar)
        if not bars:  # not composed yet: on_mount draws the latest state
            return
        bars.first().update(total=100, progress=round(100 * p.fraction, 1))
        self.query_one(".phase-stats", Label).update(phase_stats(p, running))


class ConfirmCancel(ModalScreen[bool]):
    """Ask before stopping a run."""

    BINDINGS = [Binding("y", "answer(True)", "Yes, stop it"), Binding("n,escape", "answer(False)", "No")]

    def __init__(self, run_id: str) -> None:
        super().__init__()
        self.run_id = run_id

    def compose(self) -> ComposeResult:
        yield Static(f"Stop run {self.run_id}?\nIt finishes the current step, saves a checkpoint and is "
                     f"marked interrupted (`ssltui resume` continues it).\n\n[b]y[/b] stop    [b]n[/b] keep running",
                     id="confirm")
        yield Footer()

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class LiveScreen(Screen):
    """One run: its phases, charts and log, updated from a thread that tails its folder."""

    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("x", "cancel_run", "Cancel run"),
        Binding("p", "next_phase", "Chart phase"),
        Binding("r", "results", "Results"),
        Binding("question_mark", "app.help", "Help"),
    ]

    def __init__(self, run_id: str) -> None:
        super().__init__()
        self.run_id = run_id
        self.state = RunState(run_id=run_id)
        self.status = "created"
        self.error: str | None = None
        self.chart_phase: str | None = None  # None: follow the newest phase
        self._last_draw = 0.0
        self._draw_pending = False
        self._stop = threading.Event()

    @property
    def run(self) -> RunDir:
        return self.app.store.get(self.run_id)

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="run-summary")
        yield VerticalScroll(id="phases")
        with Horizontal(id="charts"):
            yield PhaseChart("loss", id="chart-loss")
            yield PhaseChart("lr", id="chart-lr")
            yield PhaseChart("acc", id="chart-acc")
        yield Static(id="run-results")
        yield RichLog(id="log", max_lines=500, wrap=False, markup=False)
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = self.run_id
        self._draw_summary()
        self.watch_run(self.run)

    def on_unmount(self) -> None:
        self._stop.set()

    @work(thread=True, exclusive=True, group="watch")
    def watch_run(self, run: RunDir) -> None:
        """Tail the run folder; only messages cross into the UI."""
        worker = get_current_worker()
        tail = RunTail(run)
        while not worker.is_cancelled and not self._stop.is_set():
            poll = tail.poll()
            if poll:
                self.post_message(RunUpdate(run.id, poll))
            self._stop.wait(POLL_SECONDS)

    @on(RunUpdate)
    def _apply_update(self, message: RunUpdate) -> None:
        poll = message.poll
        if poll.reset:
            self.state.reset()
            self.state.run_id = self.run_id
            self.query_one("#phases").remove_children()
        for e in poll.events:
            self.state.apply(e)
        if poll.status:
            self.status, self.error = poll.status, poll.error
        log = self.query_one("#log", RichLog)
        for line in poll.log_lines:
            log.write(Text(line))
        self._schedule_draw()

    # ------------------------------------------------------------ drawing
    def _schedule_draw(self) -> None:
        wait = REDRAW_SECONDS - (time.monotonic() - self._last_draw)
        if wait <= 0:
            self._draw()
        elif not self._draw_pending:
            self._draw_pending = True
            self.set_timer(wait, self._draw)

    def _draw(self) -> None:
        self._draw_pending = False
        self._last_draw = time.monotonic()
        self._draw_summary()
        container = self.query_one("#phases", VerticalScroll)
        rows = {r.phase_name: r for r in container.query(PhaseRow)}
        running = self.current_status() in ("running", "created")
        for name, p in self.state.phases.items():
            if name in rows:
                rows[name].update_phase(p, running)
            else:
                container.mount(PhaseRow(p, running))
        names = list(self.state.phases)
        recent = set(names[-PHASE_ROWS:])  # the newest phases; `p` charts any of them
        for row in container.query(PhaseRow):
            row.display = row.phase_name in recent
        phase = self.state.phases.get(self.chart_phase) if self.chart_phase else self.state.current
        for chart in self.query(PhaseChart):
            chart.show(phase)
        results = self.state.results
        self.query_one("#run-results", Static).update(Text(" · ".join(
            f"{r.method}/{r.evaluation} {label_fraction(r.labels)}: test {pct(r.test_acc)}"
            for r in results[-4:])) if results else "")
        self.query_one("#run-results").display = bool(results)

    def current_status(self) -> str:
        """summary.json's status (it knows stale runs), else what the events said."""
        return self.status if self.status != "created" or not self.state.events_seen else self.state.status

    def _draw_summary(self) -> None:
        s = self.state
        status = self.current_status()
        style = {"running": "bold green", "completed": "bold", "failed": "bold red",
                 "interrupted": "bold yellow", "pruned": "bold yellow", "stale": "bold red"}.get(status, "")
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(f"{self.run_id}", style="bold")
        text.append(" · ")
        text.append(status, style=style)
        if self.error:
            text.append(f" · {self.error}", style="red")
        total = max(s.planned_phases or 0, len(s.phases))
        if total > 1:
            text.append(f" · {s.phases_done}/{total} phases done")
        for extra in (s.preset, s.device):
            if extra:
                text.append(f" · {extra}")
        self.query_one("#run-summary", Static).update(text)

    # ------------------------------------------------------------ actions
    def action_next_phase(self) -> None:
        names = list(self.state.phases)
        if not names:
            return
        current = self.chart_phase or names[-1]
        self.chart_phase = names[(names.index(current) + 1) % len(names)] if current in names else names[-1]
        self.notify(f"charts: {self.state.phases[self.chart_phase].ref.label()}", timeout=2)
        self._draw()

    def action_results(self) -> None:
        from ssltui.tui.screens.results import ResultsScreen

        self.app.push_screen(ResultsScreen([self.run_id]))

    def action_cancel_run(self) -> None:
        if self.current_status() not in ("running", "created"):
            self.notify(f"run is {self.current_status()}; nothing to cancel", severity="warning")
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.cancel_now()

        self.app.push_screen(ConfirmCancel(self.run_id), answered)

    def cancel_now(self) -> bool:
        """SIGINT the training process (also reachable without the confirmation, for tests)."""
        ok = cancel_run(self.run)
        if not ok:  # started by this app but not yet holding its lock: signal the child itself
            proc = self.app.processes.get(self.run_id)
            if proc is not None and proc.poll() is None:
                proc.send_signal(2)
                ok = True
        self.notify("stopping after the current step…" if ok else "no live process trains this run",
                    severity="information" if ok else "warning")
        return ok
