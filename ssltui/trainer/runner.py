"""Executes a plan: data, pretraining (once per method, seed and settings), evaluations.

The plan is a graph of phases (`graph.py`). With `runtime.workers = 1` this process runs them in
the sequential order; with more, worker processes run the ready ones side by side
(`scheduler.py`) and this process coordinates: it alone holds run.lock and writes summary.json.
Everything the run produces goes to its folder in the run store; progress goes to a listener
callback as typed events (the same ones appended to metrics.jsonl). Nothing is printed.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import platform
import re
import socket
import sys
import time
import traceback
from pathlib import Path

import torch

import ssltui
from ssltui.core import registry
from ssltui.core.config import RunOptions
from ssltui.core.errors import ConfigError, RunFailed, RunInterrupted, SsltuiError, first_line
from ssltui.core.events import SCHEMA_VERSION, DataLoaded, PhaseRef, ResultRecord, RunEnd, RunStart
from ssltui.core.graph import FEATUREMAPS, PhaseGraph, PhaseNode, build_graph
from ssltui.core.paths import data_dir as default_data_dir
from ssltui.core.plan import plan_to_toml
from ssltui.core.presets import Plan
from ssltui.core.stop import StopToken
from ssltui.core.store import RunDir, atomic_write_json, atomic_write_text
from ssltui.core.summary import PhaseRecord, RunSummary, SweepRef
from ssltui.trainer.data.bundle import DataBundle, make_bundle
from ssltui.trainer.data.sources import RawData, load_source
from ssltui.trainer.data.splits import label_subset, validation_split
from ssltui.trainer.device import DeviceSettings, peak_memory, pick_device
from ssltui.trainer.loop import Listener, RunContext
from ssltui.trainer.phases import Outcome, PhaseExecutor
from ssltui.trainer.scheduler import PhaseStopped, Scheduler


def versions() -> dict:
    out = {"ssltui": ssltui.__version__, "python": platform.python_version(), "torch": torch.__version__}
    tv = torchvision_version()
    if tv:
        out["torchvision"] = tv
    if torch.cuda.is_available():
        out["cuda"] = torch.version.cuda
    return out


def torchvision_version() -> str | None:
    """torchvision's `__version__` (with its local tag, "0.29.1+cu130"), read from its
    version.py without importing the package: the import costs about 1.8 s (its models), and a
    run that loads no CIFAR-10 never needs it."""
    spec = importlib.util.find_spec("torchvision")
    if spec is None:
        return None
    for folder in spec.submodule_search_locations or []:
        try:
            text = (Path(folder) / "version.py").read_text(encoding="utf-8")
        except OSError:
            continue
        found = re.search(r"^__version__\s*=\s*['\"]([^'\"]+)['\"]", text, re.MULTILINE)
        if found:
            return found.group(1)
    try:
        return importlib.metadata.version("torchvision")
    except importlib.metadata.PackageNotFoundError:
        return None


class Runner:
    """Runs a plan into a run folder. `execute()` returns the final summary."""

    def __init__(
        self,
        plan: Plan,
        run: RunDir,
        opts: RunOptions,
        listener: Listener | None = None,
        cache_dir: Path | None = None,
        raw: RawData | None = None,
        sweep: SweepRef | None = None,
        stop: StopToken | None = None,
    ):
        self.plan, self.run, self.opts = plan, run, opts
        self.stop = stop if stop is not None else StopToken()  # the caller's (its signal handler asks it)
        self.raw = raw  # data the caller loaded already (before making the run folder)
        self.listener = listener
        self.sweep = sweep  # the sweep trial this run is, recorded in its summary
        self.cache_dir = cache_dir if opts.use_cache else None
        self.ctx: RunContext | None = None
        self.summary = RunSummary()
        self.graph = build_graph(plan)
        self.executor: PhaseExecutor | None = None  # runs the phases when they run in this process
        self.worker_memory: dict[str, float] = {}  # peak memory of the worker processes, if any

    # ------------------------------------------------------------ control
    def request_stop(self, reason: str = "interrupted", status: str = "interrupted") -> None:
        """Ask the run to stop after the current step: its stop token (`StopToken.request`)."""
        self.stop.request(reason, status)

    # ------------------------------------------------------------ summary
    def _save_summary(self) -> None:
        self.run.write_summary(self.summary)

    def _new_summary(self) -> RunSummary:
        parts = self.plan.parts
        return RunSummary.new(
            run_id=self.run.id,
            preset=self.plan.preset,
            description=self.plan.description,
            group=self.opts.group or self.run.id,
            status="running",
            methods=sorted({p.method for p in parts}, key=registry.method_names().index),
            evaluations=sorted({e for p in parts for e in p.evaluation}),
            labels=sorted({f for p in parts for f in p.labels}),
            seeds=sorted({s for p in parts for s in p.seeds}),
            data=self.opts.data,
            started=time.time(),
            sweep=self.sweep,
        )

    def _resumed_summary(self) -> RunSummary:
        try:
            summary = self.run.read_summary()
        except (OSError, ValueError):
            summary = self._new_summary()  # absent or damaged: phases rerun from their checkpoints
        summary.status, summary.error, summary.ended = "running", None, None
        summary.resumes += 1
        if self.sweep is not None:  # resumed by a retry of its trial: the trial it now is
            summary.sweep = self.sweep
        return summary

    # ------------------------------------------------------------ main
    def execute(self, resume: bool = False) -> RunSummary:
        run = self.run
        with run.lock():
            if resume:
                self.summary = self._resumed_summary()
                run.tidy_after_crash()
            else:
                if run.config_path.exists():
                    # Another process claimed this folder between our check and our lock.
                    raise ConfigError(f"run {run.id} already exists; never overwritten")
                atomic_write_text(run.config_path, plan_to_toml(self.plan, self.opts))
                self.summary = self._new_summary()
            self.summary.pid, self.summary.host = os.getpid(), socket.gethostname()
            self.summary.versions, self.summary.argv = versions(), sys.argv[1:]
            wall_t0 = time.perf_counter()
            self._save_summary()
            try:
                self._execute()
                self.summary.status = "completed"
            except RunInterrupted as exc:
                self._end(self.stop.status if self.stop.requested else "interrupted", exc.message)
                raise
            except SsltuiError as exc:
                self._end("failed", exc.message)
                raise
            except Exception as exc:  # noqa: BLE001 - recorded in the log and summary, one line to the user
                run.append_log(traceback.format_exc())
                msg = f"{type(exc).__name__}: {first_line(exc, '')} (see {run.log_path})"
                self._end("failed", msg)
                raise RunFailed(msg) from None
            finally:
                self.summary.ended, self.summary.pid = time.time(), None
                self.summary.add_timing("wall", time.perf_counter() - wall_t0)
                self.summary.memory = {**peak_memory(), **self.worker_memory}
                try:
                    self._save_summary()
                    if self.ctx is not None:
                        self.ctx.emit(RunEnd(status=self.summary.status, error=self.summary.error))
                except (SsltuiError, OSError):
                    # A full disk must not hide the error that ended the run; the summary
                    # left on disk says "running", which `ssltui runs` shows as stale.
                    pass
        return self.summary

    def _end(self, status: str, error: str) -> None:
        self.summary.status, self.summary.error = status, error
        current = self.executor.current if self.executor is not None else None
        if current is not None:
            self.phase_stopped(current.phase, "interrupted" if status == "interrupted" else "failed")

    def _execute(self) -> None:
        first = self.plan.parts[0]
        for part in self.plan.parts[1:]:
            if (part.data.val_fraction, part.data.split_seed) != (first.data.val_fraction, first.data.split_seed):
                raise ConfigError("data.val_fraction/split_seed must be the same in every part of a study")
        devices = self.opts.device_list()
        pending = [n for n in self.graph.nodes if not self._is_done(n)]
        workers = worker_count(first.runtime.workers, devices, self.graph, pending)
        if workers > 1:
            self._execute_with_workers(workers, devices, pending)
            return
        dev = pick_device(devices[0], first.runtime)
        self.summary.device = dev.describe()
        self._start_context(dev)
        bundle = self._load_data(dev.device)
        self.executor = PhaseExecutor(self.ctx, self.plan, self.graph, bundle, self.cache_dir)
        for node in pending:
            self.record(self.executor.run(node))

    def _execute_with_workers(self, workers: int, devices: list[str], pending: list[PhaseNode]) -> None:
        """The coordinator: it loads the data only to check the label subsets (on the CPU, never
        touching a GPU), and the worker processes run the phases; it records what they yield."""
        runtime = self.plan.parts[0].runtime
        for name in dict.fromkeys(devices):
            pick_device(name, runtime)  # a missing device fails here, before any process starts
        scheduler = Scheduler(
            self.run, self.plan, self.opts, self.graph, self.cache_dir, workers, devices, self.stop, self.listener
        )
        try:
            with scheduler:
                self.summary.device = scheduler.start()
                # The coordinator trains nothing: its CPU context must not refuse cuda_graphs = on.
                self._start_context(pick_device("cpu", runtime.model_copy(update={"cuda_graphs": "off"})))
                scheduler.log = self.ctx.log
                self._load_data(None)
                for outcome in scheduler.run(pending):
                    self._take(outcome)
        finally:
            for outcome in scheduler.drain():
                self._take(outcome)
            self.worker_memory = scheduler.memory

    def _take(self, outcome: Outcome | PhaseStopped) -> None:
        match outcome:
            case Outcome():
                self.record(outcome)
            case PhaseStopped(phase=phase, status=status):
                self.phase_stopped(phase, status)

    def _start_context(self, dev: DeviceSettings) -> None:
        self.ctx = ctx = RunContext(self.run, dev, self.listener, self.stop)
        ctx.emit(
            RunStart(
                run_id=self.run.id,
                preset=self.plan.preset,
                device=self.summary.device,
                parts=len(self.plan.parts),
                phases=len(self.graph.phases),
                schema_version=SCHEMA_VERSION,
            )
        )

    def _load_data(self, device: torch.device | None) -> DataBundle | None:
        """The data (the bundle on `device`; None: only the splits) and every label subset drawn,
        so `--labels 0.95` on too small a data set fails in a second instead of after hours of
        pretraining; the subsets' indices are saved with the run."""
        first, ctx = self.plan.parts[0], self.ctx
        t0 = time.perf_counter()
        raw = self.raw
        if raw is None:
            raw = load_source(
                self.opts.data,
                default_data_dir(self.opts.data_dir),
                first.data.synthetic_train_per_class,
                first.data.synthetic_test_per_class,
                log=ctx.log,
                should_stop=self.stop.poll,
            )
        bundle = None
        if device is not None:
            bundle = make_bundle(raw, device, first.data.val_fraction, first.data.split_seed)
            train_idx, val_idx = bundle.train_idx.cpu().numpy(), bundle.val_idx.cpu().numpy()
        else:
            train_idx, val_idx = validation_split(raw.train_y, first.data.val_fraction, first.data.split_seed)
        self.summary.add_timing("data", time.perf_counter() - t0 + (raw.load_seconds if self.raw is not None else 0.0))
        ctx.emit(
            DataLoaded(
                source=raw.source,
                train=int(len(train_idx)),
                val=int(len(val_idx)),
                test=int(len(raw.test_y)),
                classes=list(raw.classes),
                decode_seconds=round(raw.decode_seconds, 3),
                load_seconds=round(raw.load_seconds, 3),
                from_cache=raw.from_cache,
                notes=raw.notes,
            )
        )
        for part in self.plan.parts:
            for seed in part.seeds:
                for frac in part.labels:
                    idx = label_subset(raw.train_y, train_idx, frac, seed)
                    path = self.run.labels_dir / f"labels{frac:g}-seed{seed}.json"
                    if not path.exists():
                        atomic_write_json(
                            path, {"fraction": frac, "seed": seed, "count": int(len(idx)), "indices": idx.tolist()}
                        )
        return bundle

    # ------------------------------------------------------------ phase records
    def _is_done(self, node: PhaseNode) -> bool:
        """An evaluation recorded as done is skipped; a pretraining is never skipped here (its
        executor reuses the saved encoder), nor is the feature-map step."""
        rec = self.summary.phases.get(node.name)
        return node.kind not in ("pretrain", FEATUREMAPS) and rec is not None and rec.status == "done"

    def record(self, outcome: Outcome) -> None:
        """A finished node into summary.json (results kept in the plan's order, whatever order
        concurrent phases finish in)."""
        if outcome.phase is None:
            return
        if outcome.cached:
            self.summary.phases.setdefault(outcome.phase, PhaseRecord(cached=True))
            return
        self.summary.add_timing(outcome.timing, outcome.seconds)
        self.summary.phases[outcome.phase] = PhaseRecord(seconds=outcome.seconds)
        if outcome.result is not None:
            new = outcome.result
            kept = [r for r in self.summary.results if r.key() != new.key()] + [new]
            self.summary.results = sorted(kept, key=self._result_order)
        self._save_summary()

    def _result_order(self, r: ResultRecord) -> int:
        if r.part is None:
            return len(self.graph.nodes)
        return self.graph.order(PhaseRef.evaluating(r.part, r.method, r.evaluation, r.labels, r.seed).phase)

    def phase_stopped(self, phase: str, status: str) -> None:
        """A phase that stopped (at a checkpoint) or failed before its end, for `ssltui show`."""
        rec = self.summary.phases.get(phase)
        if rec is None or rec.status != "done":
            self.summary.phases[phase] = PhaseRecord(status=status)


def worker_count(setting: int | str, devices: list[str], graph: PhaseGraph, pending: list[PhaseNode]) -> int:
    """How many worker processes to start: `runtime.workers` ("auto": one per device), never more
    than the phases that could ever run at once; 1 runs everything in this process."""
    wanted = len(devices) if setting == "auto" else int(setting)
    return max(1, min(wanted, graph.width(pending)))
