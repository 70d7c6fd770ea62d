"""Independent phases side by side: worker processes, each running one phase at a time.

Why processes. The steps of ResNet-20 at these batch sizes are bound by host-side dispatch
(hundreds of small operations a step, the GPU idle between them; docs/results.md has the
figures), and one Python process dispatches one operation at a time whatever the number of
threads or CUDA streams (the GIL serialises it). Separate processes dispatch in parallel, and
their kernels overlap on one GPU or spread over several (`--devices cuda:0,cuda:1`). On the CPU
the phases share the cores, so workers only help where one phase leaves cores idle.

How. The coordinator (the process that holds run.lock and alone writes summary.json) starts
`runtime.workers` processes with the `spawn` method, never `fork`: the TUI is threaded and
CUDA does not survive a fork. Each worker takes its device (`--devices`, in turn), loads the
data from the decode cache the coordinator filled, and runs the graph nodes it is sent with
its own RunContext: its events go straight to metrics.jsonl (one write() per line, O_APPEND, so
concurrent lines never interleave) and to the coordinator, which hands them to its listener
(the CLI progress). A finished node returns an `Outcome` (the result, the seconds) that the
scheduler yields to the runner, which records it (as it records a `PhaseStopped`). The two
sides talk in the typed messages below, one dataclass each. Pretrained encoders pass through
files (`encoders/`, the encoder cache).

Stopping. SIGINT/SIGTERM to the coordinator (or Ctrl-C, which reaches every process of the
terminal's group) stops every worker after its current step; each saves its phase checkpoint,
the run is marked interrupted and `ssltui resume` restarts only the unfinished phases. Every
wait on a worker has a limit: one that has not stopped STOP_SECONDS after it was told to (stopped
by SIGSTOP, stuck in a system call) is killed with SIGKILL, which reaches it there, and its phase
resumes from its last checkpoint; one that has not taken its device after START_SECONDS fails
the run. A worker
that dies (SIGKILL, the out-of-memory killer) fails its phase in one line and is not retried:
the cause that killed it would most likely kill a retry too, and the sequential path ends a
run at its first failed phase as well. The other workers stop at a checkpoint, the run is
marked failed, and `ssltui resume` continues every unfinished phase from its checkpoint. A
worker whose coordinator dies stops the same way (its task pipe closes).
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

import torch

from ssltui.core.config import EVALUATIONS, RunOptions
from ssltui.core.errors import ConfigError, DataError, ExitCode, RunFailed, RunInterrupted, SsltuiError, first_line
from ssltui.core.events import Event, PhaseRef, PhaseStart
from ssltui.core.graph import PhaseGraph, PhaseNode, build_graph
from ssltui.core.paths import data_dir
from ssltui.core.presets import Plan
from ssltui.core.stop import STOP_SIGNALS, StopToken, on_stop_signals
from ssltui.core.store import RunDir
from ssltui.trainer.data.bundle import make_bundle
from ssltui.trainer.data.sources import load_source
from ssltui.trainer.device import DeviceSettings, peak_memory, pick_device
from ssltui.trainer.loop import RunContext
from ssltui.trainer.phases import Outcome, PhaseExecutor

POLL_SECONDS = 0.2  # how soon the coordinator passes a stop request on
QUIT_SECONDS = 30.0  # a worker told to quit that is still alive after this is killed
STOP_SECONDS = 30.0  # a worker told to stop that has not stopped after this is killed
START_SECONDS = 600.0  # a worker that has not taken its device after this fails the run
STOP_SECONDS_ENV = "SSLTUI_WORKER_STOP_SECONDS"  # overrides STOP_SECONDS and QUIT_SECONDS
_ERRORS = {int(ExitCode.USAGE): ConfigError, int(ExitCode.DATA): DataError, int(ExitCode.INTERRUPTED): RunInterrupted}


@dataclass
class WorkerSpec:
    """What a worker process is started with (pickled to it)."""

    index: int  # 1, 2, ...
    device: str
    threads: int  # torch's CPU threads: the coordinator's, which a sequential run would use
    run_path: str
    plan: Plan
    opts: RunOptions
    cache_dir: str | None


# ---------------------------------------------------------------- messages


@dataclass
class RunNode:
    """Coordinator -> worker: run this node."""

    node: PhaseNode


@dataclass
class StopNow:
    """Coordinator -> worker: stop after the current step (the run's stop token was asked)."""

    reason: str


@dataclass
class Quit:
    """Coordinator -> worker: no more nodes; say goodbye and end."""


@dataclass
class Hello:
    """Worker -> coordinator: it has taken its device."""

    device: str


@dataclass
class EventMsg:
    """Worker -> coordinator: an event of its phase, for the coordinator's listener."""

    event: Event


@dataclass
class Done:
    """Worker -> coordinator: a node finished."""

    outcome: Outcome


@dataclass
class Stopped:
    """Worker -> coordinator: its node (or its start) ended early: stopped or failed."""

    node: str | None
    phase: str | None
    status: str  # interrupted | failed
    code: int
    message: str


@dataclass
class Bye:
    """Worker -> coordinator: its last word after Quit, its peak memory."""

    memory: dict


@dataclass
class PhaseStopped:
    """What the scheduler yields, besides a node's Outcome: a phase that stopped at a checkpoint
    or failed before its end, for the runner to record."""

    phase: str
    status: str  # interrupted | failed


def stop_seconds(default: float = STOP_SECONDS) -> float:
    """How long the coordinator waits for a worker to stop or quit before it kills it."""
    try:
        return max(0.0, float(os.environ[STOP_SECONDS_ENV]))
    except (KeyError, ValueError):
        return default


# ---------------------------------------------------------------- the worker process


def _read_tasks(tasks: Connection, inbox: queue.Queue, stop: StopToken) -> None:
    """The worker's reader thread: nodes to the inbox, a stop request to the token at once (the
    main thread is busy training), and the coordinator's end (quit, or its death) as None."""
    while True:
        try:
            msg = tasks.recv()
        except (EOFError, OSError):
            stop.request("the coordinating process is gone")
            inbox.put(None)
            return
        match msg:
            case StopNow(reason=reason):
                stop.request(reason)
            case RunNode(node=node):
                inbox.put(node)
            case _:
                inbox.put(None)
                return


class WorkerContext(RunContext):
    """A worker's RunContext: each PhaseStart names the worker and its device."""

    def __init__(
        self,
        run: RunDir,
        dev: DeviceSettings,
        listener: Callable[[Event], None],
        worker: int,
        device_name: str,
        stop: StopToken,
    ):
        super().__init__(run, dev, listener, stop)
        self.worker, self.device_name = worker, device_name

    def emit(self, event: Event) -> None:
        if isinstance(event, PhaseStart):
            event = event.model_copy(update={"worker": self.worker, "device": self.device_name})
        super().emit(event)


def worker_main(spec: WorkerSpec, tasks: Connection, reports: Connection) -> None:
    """A worker process: take the device, then run the nodes it is sent, one at a time, until
    told to quit. Any end but Quit (a stop, a failure) is reported in one line and ends it.
    The coordinator started it with SIGINT/SIGTERM ignored (a Ctrl-C while it imports torch
    would otherwise end it with a KeyboardInterrupt traceback); from here on a first one stops
    it after the current step and a second exits at once, as the CLI; a stop the coordinator
    passed on in the meantime waits in the task pipe."""
    stop = StopToken()
    on_stop_signals(stop)
    run = RunDir(Path(spec.run_path))

    def send(msg: object) -> None:
        try:
            reports.send(msg)
        except (OSError, ValueError):
            stop.request("the coordinating process is gone")

    executor = node = None
    try:
        ctx = _boot(spec, run, stop, send)
        inbox: queue.Queue = queue.Queue()
        threading.Thread(target=_read_tasks, args=(tasks, inbox, stop), daemon=True).start()
        while (node := inbox.get()) is not None:
            executor = executor or _executor(spec, ctx, run)
            send(Done(executor.run(node)))
        send(Bye(peak_memory()))
    except BaseException as exc:  # noqa: BLE001 - every end is reported in one line, never a traceback on screen
        current = executor.current if executor is not None else None
        send(Stopped(node.name if node else None, current.phase if current else None, *_report(exc, run)))
    finally:
        # Everything it wrote is whole and closed; tearing down an interpreter with torch loaded
        # takes seconds on a busy CPU, time the run would wait for nothing.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


def _boot(spec: WorkerSpec, run: RunDir, stop: StopToken, send: Callable[[object], None]) -> WorkerContext:
    """Take the device and the sequential run's CPU threads, and say hello with its name. The
    thread count decides how float sums are split, so a worker with fewer threads would not give
    the sequential run's numbers; workers on one CPU share its cores instead."""
    torch.set_num_threads(spec.threads)
    dev = pick_device(spec.device, spec.plan.parts[0].runtime)
    ctx = WorkerContext(run, dev, lambda e: send(EventMsg(e)), spec.index, str(dev.device), stop)
    send(Hello(dev.describe()))
    return ctx


def _report(exc: BaseException, run: RunDir) -> tuple[str, int, str]:
    """(status, exit code, one-line message) of how a worker's node ended."""
    if isinstance(exc, RunInterrupted):
        return "interrupted", int(exc.exit_code), exc.message
    if isinstance(exc, SsltuiError):
        return "failed", int(exc.exit_code), exc.message
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted", int(ExitCode.INTERRUPTED), "interrupted"
    try:
        run.append_log(traceback.format_exc())
    except (OSError, SsltuiError):
        pass
    return "failed", int(ExitCode.FAILED), f"{type(exc).__name__}: {first_line(exc, '')} (see {run.log_path})"


def _executor(spec: WorkerSpec, ctx: WorkerContext, run: RunDir) -> PhaseExecutor:
    """The worker's executor, with the data loaded onto its device (from the decode cache)."""
    first = spec.plan.parts[0]
    raw = load_source(
        spec.opts.data,
        data_dir(spec.opts.data_dir),
        first.data.synthetic_train_per_class,
        first.data.synthetic_test_per_class,
        log=ctx.log,
        should_stop=ctx.stop.poll,
    )
    bundle = make_bundle(raw, ctx.device, first.data.val_fraction, first.data.split_seed)
    cache = Path(spec.cache_dir) if spec.cache_dir else None
    return PhaseExecutor(ctx, spec.plan, build_graph(spec.plan), bundle, cache)


# ---------------------------------------------------------------- the coordinator


@dataclass
class _Worker:
    spec: WorkerSpec
    process: Any
    tasks: Connection
    reports: Connection
    alive: bool = True
    description: str | None = None  # the device, once the worker said hello
    quitting: bool = False  # told to quit: its end is expected
    node: PhaseNode | None = None  # the node it runs
    phase: PhaseRef | None = None  # the phase it last started (from its PhaseStart event)
    memory: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"worker {self.spec.index} (pid {self.process.pid}, {self.spec.device})"

    def send(self, msg: object) -> None:
        try:
            self.tasks.send(msg)
        except (OSError, ValueError):
            pass  # it is gone: its sentinel says so


class Scheduler:
    """Runs graph nodes on worker processes and yields what they return (`Outcome`,
    `PhaseStopped`) for the runner to record; the run's stop token stops them all."""

    def __init__(
        self,
        run: RunDir,
        plan: Plan,
        opts: RunOptions,
        graph: PhaseGraph,
        cache_dir: Path | None,
        workers: int,
        devices: list[str],
        stop: StopToken,
        listener: Callable[[Event], None] | None = None,
    ):
        self.run_dir, self.plan, self.opts, self.graph, self.cache_dir = run, plan, opts, graph, cache_dir
        self.count, self.devices = workers, devices
        self.stop, self.listener = stop, listener
        self.log: Callable[..., None] | None = None  # the run's log, once its context exists
        self.workers: list[_Worker] = []
        self.failure: SsltuiError | None = None
        self.stopping: str | None = None  # why the workers were told to stop
        self.stop_deadline: float | None = None  # when a worker that has not stopped is killed
        self.killed: list[str] = []  # workers killed because they did not stop in time
        self.stopped: list[str] = []  # phases that saved a checkpoint and stopped
        self.memory: dict[str, float] = {}  # the workers' peak memory, once they have quit
        self._out: list[Outcome | PhaseStopped] = []  # what the workers returned, not yet yielded

    def __enter__(self) -> Scheduler:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    def drain(self) -> list[Outcome | PhaseStopped]:
        """What the workers returned and `run` has not yielded (a worker that ended in shutdown)."""
        out, self._out = self._out, []
        return out

    # ------------------------------------------------------------ start and end
    def start(self) -> str:
        """Start the workers and wait until each has taken its device; the devices, described."""
        spawn = multiprocessing.get_context("spawn")
        cache = str(self.cache_dir) if self.cache_dir else None
        for i in range(self.count):
            spec = WorkerSpec(
                i + 1,
                self.devices[i % len(self.devices)],
                torch.get_num_threads(),
                str(self.run_dir.path),
                self.plan,
                self.opts,
                cache,
            )
            task_r, task_w = spawn.Pipe(duplex=False)
            report_r, report_w = spawn.Pipe(duplex=False)
            proc = spawn.Process(
                target=worker_main, args=(spec, task_r, report_w), name=f"ssltui-worker-{i + 1}", daemon=True
            )
            with _ignored_in_children():
                proc.start()
            task_r.close()
            report_w.close()
            self.workers.append(_Worker(spec, proc, task_w, report_r))
        deadline = time.monotonic() + START_SECONDS
        while any(w.alive and w.description is None for w in self.workers):
            self._pass_on_stop()
            if self.failure is not None:
                raise self.failure
            if self.stopping:
                raise RunInterrupted(f"{self.stopping} before any phase started")
            if time.monotonic() > deadline:
                slow = next(w for w in self.workers if w.alive and w.description is None)
                raise RunFailed(f"{slow.name} did not take its device within {START_SECONDS:.0f} s")
            self._wait()
        if self.failure is not None:
            raise self.failure
        return describe_devices([w.description for w in self.workers if w.description])

    def shutdown(self) -> None:
        """Tell every worker to quit, collect what they say last, and end any that will not."""
        for w in self.workers:
            if w.alive:
                if w.node is not None:
                    w.send(StopNow("the run is ending"))
                w.send(Quit())
                w.quitting = True
        deadline = time.monotonic() + stop_seconds(QUIT_SECONDS)
        if self.stop_deadline is not None:
            deadline = min(deadline, max(self.stop_deadline, time.monotonic() + 1.0))
        while any(w.alive for w in self.workers) and time.monotonic() < deadline:
            self._wait()
        for w in self.workers:
            if w.process.is_alive():
                # SIGKILL: a worker that did not quit in time may be stopped (SIGSTOP) or stuck
                # in a system call, where a SIGTERM would wait with it.
                w.process.kill()
                w.process.join(5)
                if self.log is not None:
                    self.log(f"{w.name} did not quit in time and was killed", "warning")
            w.tasks.close()
            w.reports.close()
        self.memory = merge_memory([w.memory for w in self.workers])

    # ------------------------------------------------------------ the loop
    def run(self, pending: list[PhaseNode]) -> Iterator[Outcome | PhaseStopped]:
        """Run `pending` (in the graph's order of need) until done, stopped or failed, yielding
        each node's Outcome and each phase that stopped early as they come."""
        graph = self.graph
        for w in self.workers:
            self._log(f"{w.name} runs phases on {w.description}")
        todo = {n.name for n in pending}
        done = {n.name for n in graph.nodes} - todo
        taken: set[str] = set()
        while True:
            self._pass_on_stop()
            if not self.stopping:
                for w in self.workers:
                    if w.alive and w.node is None:
                        ready = graph.ready(done, taken)
                        if not ready:
                            break
                        w.node, w.phase = ready[0], None
                        taken.add(w.node.name)
                        w.send(RunNode(w.node))
            if not any(w.node is not None for w in self.workers):
                if self.stopping or todo <= done:
                    break
                if not any(w.alive for w in self.workers):
                    raise RunFailed("every worker process died; `ssltui resume` continues the run")
                raise RunFailed(f"no phase can start: {sorted(todo - done)[:3]} wait for phases not in the plan")
            self._wait(done)
            self._kill_late()
            yield from self.drain()
        yield from self.drain()
        if self.failure is not None:
            raise self.failure
        if self.stopping:
            where = (
                f"; {len(self.stopped)} running phase(s) saved a checkpoint: {', '.join(self.stopped)}"
                if self.stopped
                else " between phases"
                if not self.killed
                else ""
            )
            killed = f"; {'; '.join(self.killed)}" if self.killed else ""
            raise RunInterrupted(f"{self.stopping}{where}{killed}")

    def _log(self, message: str, level: str = "info") -> None:
        if self.log is not None:
            self.log(message, level)

    def _kill_late(self) -> None:
        """A worker told to stop that has not within the limit (stopped by SIGSTOP, stuck in a
        system call) is killed: its phase resumes from its last checkpoint."""
        if self.stop_deadline is None or time.monotonic() < self.stop_deadline:
            return
        limit = stop_seconds()
        for w in self.workers:
            if w.alive and w.node is not None and w.process.is_alive():
                w.process.kill()
                note = (
                    f"{w.name} did not stop within {limit:g} s and was killed (its phase resumes from its "
                    f"last checkpoint)"
                )
                self.killed.append(note)
                self._log(note, "warning")
                w.process.join(5)
                self._lost(w)

    def _pass_on_stop(self) -> None:
        reason = self.stop.reason
        if reason and not self.stopping:
            self._stop_all(reason)

    def _stop_all(self, reason: str) -> None:
        if self.stopping:
            return
        self.stopping = reason
        self.stop_deadline = time.monotonic() + stop_seconds()
        for w in self.workers:
            if w.alive:
                w.send(StopNow(reason))

    def _fail(self, error: SsltuiError) -> None:
        if self.failure is None:
            self.failure = error
        self._stop_all(f"stopped because another phase failed ({error.message[:80]})")

    def _wait(self, done: set[str] | None = None) -> None:
        """Handle what the workers said, and any that died, within one poll interval."""
        by_conn = {w.reports: w for w in self.workers if w.alive}
        by_sentinel = {w.process.sentinel: w for w in self.workers if w.alive}
        for obj in wait([*by_conn, *by_sentinel], timeout=POLL_SECONDS):
            w = by_conn.get(obj) or by_sentinel[obj]
            if not w.alive:
                continue
            try:
                while w.reports.poll():
                    self._handle(w, w.reports.recv(), done)
            except (EOFError, OSError):
                pass
            if obj in by_sentinel or not w.process.is_alive():
                self._lost(w)

    def _handle(self, w: _Worker, msg: object, done: set[str] | None) -> None:
        match msg:
            case EventMsg(event=event):
                if isinstance(event, PhaseStart):
                    w.phase = event.ref
                if self.listener is not None:
                    self.listener(event)
            case Done(outcome=outcome):
                self._out.append(outcome)
                if done is not None:
                    done.add(outcome.node)
                w.node = None
            case Stopped():
                self._node_stopped(w, msg)
            case Hello(device=device):
                w.description = device
            case Bye(memory=memory):
                w.memory = memory

    def _node_stopped(self, w: _Worker, msg: Stopped) -> None:
        w.node = None
        phase = msg.phase or (w.phase.phase if w.phase is not None else None)
        if phase is not None:
            self._out.append(PhaseStopped(phase, msg.status))
        if msg.status == "interrupted":
            if phase is not None:
                self.stopped.append(phase)
            self._stop_all(f"{w.name} was stopped")
        else:
            self._fail(_ERRORS.get(msg.code, RunFailed)(msg.message))

    def _lost(self, w: _Worker) -> None:
        """A worker process ended: fine after Quit; a failed phase if it still had one."""
        w.alive = False
        w.process.join(5)
        code = _exit_text(w.process.exitcode)
        if w.node is None:
            if w.description is None and not self.stopping:
                self._fail(RunFailed(f"{w.name} died while starting ({code})"))
            elif not (w.quitting or self.stopping):
                self._log(f"{w.name} ended while idle ({code}); the others go on", "warning")
            return
        node, w.node = w.node, None
        # A pretraining's phase id names its data: known from its phase_start, if it got that far.
        phase = w.phase.phase if w.phase is not None else node.name if node.kind in EVALUATIONS else None
        if phase is not None:
            self._out.append(PhaseStopped(phase, "interrupted" if self.stopping else "failed"))
        if not self.stopping:
            self._fail(
                RunFailed(
                    f"{w.name} died ({code}) in {phase or node.describe()}; the other phases stopped "
                    f"at a checkpoint and `ssltui resume {self.run_dir.id}` continues the run"
                )
            )


class _ignored_in_children:
    """SIGINT and SIGTERM ignored while a worker process is started: a spawned child does not
    inherit a blocked signal mask, but it does inherit an ignored signal, so Python never makes
    a Ctrl-C during its imports a KeyboardInterrupt; the worker installs its own handlers once it
    can act on them. This process keeps its signals: they are blocked meanwhile (a blocked
    signal stays pending, even while ignored) and arrive at its own handlers afterwards."""

    def __enter__(self) -> None:
        self.mask = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        self.handlers: dict = {}
        if threading.current_thread() is threading.main_thread():  # handlers are the main thread's
            self.handlers = {sig: signal.signal(sig, signal.SIG_IGN) for sig in STOP_SIGNALS}

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self.handlers.items():
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)
        signal.pthread_sigmask(signal.SIG_SETMASK, self.mask)


def _exit_text(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def describe_devices(descriptions: list[str]) -> str:
    """'NVIDIA H200, 2 workers' or 'NVIDIA H200 x2, NVIDIA A100 x1' (for summary.json)."""
    counts: dict[str, int] = {}
    for d in descriptions:
        counts[d] = counts.get(d, 0) + 1
    if len(counts) == 1:
        return f"{descriptions[0]}, {len(descriptions)} workers"
    return ", ".join(f"{d} x{n}" for d, n in counts.items())


def merge_memory(reports: list[dict]) -> dict[str, float]:
    """The workers' peak memory summed: an upper bound of what the run held at once."""
    out: dict[str, float] = {}
    for rep in reports:
        for key, value in rep.items():
            name = "workers_peak_rss_mb" if key == "peak_rss_mb" else key
            out[name] = round(out.get(name, 0.0) + value, 1)
    return out
