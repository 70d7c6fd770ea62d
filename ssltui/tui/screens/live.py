"""Live training (and a finished run's curves): per-phase progress, charts, log tail, cancel, resume."""

from __future__ import annotations

import threading
import time

from rich.console import Group
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Footer, Header, RichLog, Static
from textual.worker import get_current_worker

from ssltui.core.errors import ConfigError
from ssltui.core.store import RunDir
from ssltui.tui.launch import Launched, cancel_run, discard_failed_launch, failed_launch, run_pid
from ssltui.tui.manage import RESUMABLE
from ssltui.tui.resources import UsageSampler
from ssltui.tui.runstate import PhaseState, RunState
from ssltui.tui.screens.common import BACK, HELP, Confirm, resume_run
from ssltui.tui.watch import GONE, LAUNCH_MARK, POLL_SECONDS, RunTail, RunUpdate
from ssltui.tui.widgets.charts import PhaseChart
from ssltui.view.format import duration, images_rate, label_fraction, pct, plain

PHASE_ROWS = 4  # progress rows shown: the newest phases
REDRAW_SECONDS = 0.3  # charts redraw at most ~3 times a second, whatever the event rate
USAGE_SECONDS = 2.0  # how often the training process's CPU, RAM and GPU use is read
STATUS_STYLE = {
    "running": "bold green",
    "starting": "bold green",
    "resuming": "bold green",
    "completed": "bold",
    "failed": "bold red",
    "interrupted": "bold yellow",
    "pruned": "bold yellow",
    "stale": "bold red",
    "damaged": "bold red",
    GONE: "bold red",
}


def phase_stats(p: PhaseState, running: bool = True) -> str:
    """'ep 3/10 eta 1:02 812 img/s loss 2.301'; the epoch is the one in progress."""
    if p.done:
        when = "cached" if p.cached else "done"
    elif not running:
        when = "stopped"
    elif not p.started_steps:
        when = "first step…"
    else:
        when = f"eta {duration(p.eta_seconds())}"
    loss = f" loss {p.loss:.3f}" if isinstance(p.loss, (int, float)) else ""
    return f"ep {p.current_epoch}/{p.epochs} {when} {images_rate(p.images_per_s)}{loss}"


def phases_table(phases: list[PhaseState], running: bool, bar_width: int) -> Table:
    """One row per phase: label, bar, percent, epoch/eta/rate/loss."""
    grid = Table.grid(padding=(0, 1), expand=True)
    grid.add_column(width=20, no_wrap=True, overflow="ellipsis")
    grid.add_column(width=bar_width, no_wrap=True)
    grid.add_column(width=4, justify="right", no_wrap=True)
    grid.add_column(ratio=1, no_wrap=True, overflow="ellipsis")
    for p in phases:
        grid.add_row(
            Text(p.ref.label()),
            ProgressBar(total=100, completed=100 * p.fraction, width=bar_width),
            f"{100 * p.fraction:.0f}%",
            phase_stats(p, running),
        )
    return grid


class LiveScreen(Screen):
    """One run: its phases, charts and log, updated from a thread that tails its folder."""

    BINDINGS = [
        BACK,
        Binding("x", "cancel_run", "Cancel run"),
        Binding("R", "resume", "Resume"),
        Binding("p", "next_phase", "Chart phase"),
        Binding("r", "results", "Results"),
        Binding("L", "log", "Log"),
        HELP,
    ]

    def __init__(self, run_id: str) -> None:
        super().__init__()
        self.run_id = run_id
        self.state = RunState(run_id=run_id)
        self.status = "created"  # what the store says (it knows stale runs), or GONE
        self.error: str | None = None
        self.chart_phase: str | None = None  # None: follow the newest phase
        self.process_lines: list[str] = []  # process.log since the app last started a process
        self._attempts_shown = 0
        self._logs_written = 0  # state.log_count when the log pane was last written
        self._status_shown = ""
        self._last_draw = 0.0
        self._draw_pending = False
        self._stop = threading.Event()
        self.usage: str | None = None  # what the training process uses (CPU, RAM, each GPU)
        self._sampler: UsageSampler | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="run-summary")
        yield Static(id="phases")
        with Horizontal(id="charts"):
            yield PhaseChart("loss", id="chart-loss")
            yield PhaseChart("lr", id="chart-lr")
            yield PhaseChart("acc", id="chart-acc")
        yield Static(id="run-results")
        yield RichLog(id="log", max_lines=500, wrap=True, markup=False)
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = self.run_id
        self._draw_summary()
        try:
            run = self.app.store.get(self.run_id)
        except ConfigError:  # deleted since the list was drawn
            self.status = GONE
            self._draw_summary()
            return
        self.watch_run(run)
        self.set_interval(1.0, self._draw_summary)  # 'starting… 4 s' counts while nothing is written
        self.set_interval(USAGE_SECONDS, self._sample_usage)
        self._sample_usage()

    @work(thread=True, exclusive=True, group="usage")
    def _sample_usage(self) -> None:
        """CPU, RAM and GPU use of the process training the run (off the UI thread: nvidia-smi can
        take a second); nothing while no live process trains it."""
        pid = run_pid(RunDir(self.app.store.root / self.run_id))
        if pid is None:
            self._sampler, line = None, None
        else:
            if self._sampler is None or self._sampler.pid != pid:
                self._sampler = UsageSampler(pid)
            line = self._sampler.sample().line()
        if line != self.usage:
            self.usage = line
            self.app.call_from_thread(self._draw_summary)

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
        for e in poll.events:
            self.state.apply(e)
        if poll.status:
            self.status, self.error = poll.status, poll.error
        relaunched = False
        for line in poll.process_lines:
            if line.startswith(LAUNCH_MARK):  # the app started a process: older output is history
                self.process_lines.clear()
                relaunched = True
            self.process_lines.append(line)
        new_attempt = self.state.attempts != self._attempts_shown
        self._attempts_shown = self.state.attempts
        log = self.query_one("#log", RichLog)
        if poll.reset or new_attempt:
            log.clear()  # a resume: the earlier attempt's end ("stopped by SIGINT") is history
            marks = [ln for ln in self.process_lines if ln.startswith(LAUNCH_MARK)]
            lines = marks + self.state.logs + [ln for ln in self.process_lines if ln not in marks]
        elif relaunched:
            log.clear()
            lines = list(self.process_lines)
        else:
            fresh = self.state.log_count - self._logs_written
            lines = (self.state.logs[-fresh:] if fresh else []) + poll.process_lines
        self._logs_written = self.state.log_count
        for line in lines:
            log.write(Text(line, style="dim" if line.startswith(LAUNCH_MARK) else ""))
        self._schedule_draw()

    # ------------------------------------------------------------ status
    @property
    def launched(self) -> Launched | None:
        return self.app.processes.get(self.run_id)

    def current_status(self) -> str:
        """The store's status; 'starting'/'resuming' while a process this app started has not
        yet taken the run over (no run_start of its own yet)."""
        launched = self.launched
        if launched is not None and launched.alive() and self.status not in ("running", GONE):
            began = self.state.started_at is not None and self.state.started_at >= launched.started_at
            if not began:
                return "starting" if launched.kind == "run" else "resuming"
        return self.status

    def activity(self) -> str | None:
        """What is happening while no bar moves: the first 20 s of a launch say more than '0%'."""
        status = self.current_status()
        launched = self.launched
        waited = f" {time.monotonic() - launched.t0:.0f} s" if launched is not None else ""
        if status in ("starting", "resuming"):
            return f"{status}: Python is importing torch and the engine…{waited}"
        if status == "created" and launched is not None:
            return f"the process ended (exit code {launched.proc.poll()}) before the run began; its output is below"
        if status == "running" and not self.state.events_seen:
            return f"started: choosing the device…{waited}"
        if status == "running" and self.state.attempts and self.state.status != "running":
            return f"resumed: loading its checkpoints…{waited}"
        return self.state.activity() if status == "running" else None

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
        running = self.current_status() in ("running", "starting", "resuming")
        recent = list(self.state.phases.values())[-PHASE_ROWS:]  # the newest phases; `p` charts any of them
        phases = self.query_one("#phases", Static)
        phases.display = bool(recent)
        if recent:
            phases.update(phases_table(recent, running, 10 if self.size.width < 100 else 16))
        phase = self.state.phases.get(self.chart_phase) if self.chart_phase else self.state.current
        for chart in self.query(PhaseChart):
            chart.show(phase)
        results = self.state.results
        self.query_one("#run-results", Static).update(
            Text(
                " · ".join(
                    f"{r.method}/{r.evaluation} {label_fraction(r.labels)} s{r.seed}: test {pct(r.test_acc)}"
                    for r in results[-4:]
                )
            )
            if results
            else ""
        )
        self.query_one("#run-results").display = bool(results)

    def _launch_failed(self) -> bool:
        """A run this app launched whose process ended before the run began (its data could not
        be loaded, say): its folder goes (it holds only what the app put there) and the form comes
        back with the reason in its own terms and the edits as they were."""
        launched = self.launched
        if launched is None or launched.kind != "run" or launched.alive():
            return False
        run = RunDir(self.app.store.root / self.run_id)
        reason = failed_launch(run, launched)
        if reason is None:
            return False
        self._stop.set()
        discard_failed_launch(run)
        self.app.processes.pop(self.run_id, None)
        self.app.reopen_launch(reason, launched.edits)  # the form again, with the reason and the edits
        return True

    def _draw_summary(self) -> None:
        if self.is_current and self._launch_failed():
            return
        s = self.state
        status = self.current_status()
        if status != self._status_shown:  # x and R come and go with the status
            self._status_shown = status
            self.refresh_bindings()
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(self.run_id, style="bold")
        text.append(" · ")
        text.append(status, style=STATUS_STYLE.get(status, ""))
        if s.total_phases > 1:
            text.append(f" · {s.phases_done}/{s.total_phases} phases done")
        for extra in (s.preset, s.device):
            if extra:
                text.append(f" · {plain(extra)}")
        lines = [text]
        if status == GONE:
            lines.append(Text("its folder was deleted or moved; esc goes back", style="red"))
        elif self.error and status not in ("running", "starting", "resuming"):
            # on its own line, wrapped: the fix at its end ("use --data folder:PATH") must show
            if status == "interrupted":  # the user's own stop is no error
                lines.append(Text(f"{plain(self.error)} · R resumes it", style="yellow"))
            else:
                lines.append(Text(f"error: {plain(self.error)}", style="red"))
        elif (doing := self.activity()) is not None:
            lines.append(Text(doing, style="italic"))
        if self.usage and status in ("running", "starting", "resuming"):
            lines.append(Text(f"uses {self.usage}", style="dim", no_wrap=True, overflow="ellipsis"))
        if s.warnings:  # wrapped, whole: it says what is wrong with the run
            more = f" (+{len(s.warnings) - 1} more: L shows the log)" if len(s.warnings) > 1 else ""
            lines.append(Text(f"warning: {plain(s.warnings[-1])}{more}", style="yellow"))
        self.query_one("#run-summary", Static).update(Group(*lines))

    # ------------------------------------------------------------ actions
    def check_action(self, action: str, parameters: tuple) -> bool | None:
        if action == "resume":
            return self.current_status() in RESUMABLE
        if action == "cancel_run":
            return self.current_status() in ("running", "starting", "resuming")
        return True

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

    def action_log(self) -> None:
        from ssltui.tui.screens.logview import LogScreen

        if self.status == GONE:
            self.notify("the run's folder is gone", severity="warning")
            return
        self.app.push_screen(LogScreen(self.run_id))

    def action_resume(self) -> None:
        resume_run(self.app, self.run_id, then=self._draw_summary)

    def action_cancel_run(self) -> None:
        def answered(yes: bool | None) -> None:
            if yes:
                self.cancel_now()

        self.app.push_screen(
            Confirm(
                f"Stop run {self.run_id}?",
                "It finishes the current step, saves a checkpoint and is marked interrupted "
                "(R resumes it, here or in the runs list).",
                yes="stop",
                no="keep running",
            ),
            answered,
        )

    def cancel_now(self) -> bool:
        """SIGINT the training process (also reachable without the confirmation, for tests)."""
        try:
            ok = cancel_run(self.app.store.get(self.run_id))
        except ConfigError:
            ok = False
        launched = self.launched
        if not ok and launched is not None and launched.alive():  # not yet holding its lock
            launched.proc.send_signal(2)
            ok = True
        self.notify(
            "stopping after the current step…" if ok else "no live process trains this run",
            severity="information" if ok else "warning",
        )
        return ok
