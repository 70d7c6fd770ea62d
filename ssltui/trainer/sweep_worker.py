"""A sweep worker: takes trials from the study and runs each as an ordinary run of the run store
(grouped under the sweep), reporting every epoch's validation monitor to Optuna so the pruner
can stop a hopeless trial. Torch loads with the first trial, not with this module.

Outcomes in Optuna and in the run store:
- the run completes: the trial is COMPLETE with the sweep's metric (validation split only);
- the pruner stops it: the run is `pruned` (its checkpoint kept), the trial PRUNED;
- the worker is interrupted (Ctrl-C, SIGTERM): the run is `interrupted`, the trial FAIL and
  queued again with its parameters and run id, so the next worker resumes that run; the
  replaced trial is never counted (nor is a trial whose worker died: the heartbeat queues it);
- the run fails (a diverging loss): the trial FAIL with the error; the sweep goes on;
- the storage is lost (a database server gone): the run stops at a checkpoint (`interrupted`)
  and the worker ends with StorageError in one line; its trial, RUNNING without heartbeats, goes
  stale and is queued again once the storage is back, so its run resumes.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from optuna.trial import Trial, TrialState

from ssltui.core import registry
from ssltui.core.config import run_options
from ssltui.core.errors import ConfigError, DataError, RunFailed, RunInterrupted, StorageError
from ssltui.core.events import ACCURACY_NAMES, Epoch, Event, PhaseRef
from ssltui.core.presets import Plan
from ssltui.core.stop import StopToken
from ssltui.core.store import RunDir, RunStore
from ssltui.core.summary import RunSummary, SweepRef
from ssltui.core.sweep.space import Value
from ssltui.core.sweep.study import CONNECT_SECONDS, HEARTBEAT_SECONDS, STORAGE_ERRORS, Sweep, storage_lost

if TYPE_CHECKING:
    from ssltui.trainer.runner import Runner

Listener = Callable[[Event], None]
STEP_STRIDE = 100_000  # Optuna step of epoch e of the i-th phase: i * STEP_STRIDE + e


@dataclass
class TrialOutcome:
    number: int
    state: str  # complete | pruned | failed | interrupted
    params: dict[str, Value]
    run_id: str
    value: float | None = None
    error: str | None = None

    def to_json(self) -> dict:
        return {
            "number": self.number,
            "state": self.state,
            "value": self.value,
            "params": self.params,
            "run_id": self.run_id,
            "error": self.error,
        }


def phase_steps(plan: Plan) -> dict[str, int]:
    """Each phase of the plan -> its index, the same in every trial of a sweep whether or not a
    trial pretrains or reuses a cached encoder, so the pruner compares a phase's epoch only with
    the same phase's epoch of other trials."""
    keys: dict[str, int] = {}
    for pi, part in enumerate(plan.parts):
        for seed in part.seeds:
            if registry.method(part.method).pretrains:
                keys.setdefault(f"{part.method}/pretrain/seed{seed}", len(keys))
            for frac in part.labels:
                for ev in part.evaluation:
                    keys.setdefault(PhaseRef.evaluating(pi, part.method, ev, frac, seed).phase, len(keys))
    return keys


def phase_key(ref: PhaseRef) -> str:
    return f"{ref.method}/pretrain/seed{ref.seed}" if ref.kind == "pretrain" else ref.phase


class TrialReporter:
    """Listener: each epoch's validation monitor (kNN in pretraining, validation accuracy in an
    evaluation) goes to the trial; when the pruner says so, `stop` ends the run as pruned."""

    def __init__(self, trial: Trial, plan: Plan, prune: bool, warmup_epochs: int, reported: set[int]):
        self.trial, self.prune, self.warmup = trial, prune, warmup_epochs
        self.steps = phase_steps(plan)
        self.reported = set(reported)  # a retried trial inherits the values reported before
        self.stop: Callable[[str], None] = lambda reason: None
        self.lost: Callable[[BaseException], None] = lambda exc: None  # the storage failed
        self.pruned = False

    def __call__(self, event: Event) -> None:
        if not isinstance(event, Epoch):
            return
        key = "knn_acc" if event.kind == "pretrain" else "val_acc"
        value, index = getattr(event, key), self.steps.get(phase_key(event))
        if value is None or index is None:
            return
        step = index * STEP_STRIDE + event.epoch
        if step in self.reported:  # a resumed phase repeats the epochs after its checkpoint
            return
        self.reported.add(step)
        try:
            self.trial.report(value, step)
            prune = self.prune and not self.pruned and event.epoch > self.warmup and self.trial.should_prune()
        except STORAGE_ERRORS as exc:  # the run stops at a checkpoint instead of failing on it
            self.lost(exc)
            return
        if prune:
            self.pruned = True
            self.stop(f"pruned (median rule): {ACCURACY_NAMES[key]} {100 * value:.2f}% after epoch {event.epoch}")


def objective(metric: str, summary: RunSummary, run: RunDir) -> float | None:
    """The sweep's metric for a finished run, on the validation split: the mean validation
    accuracy of its results, or the mean of each pretraining's last kNN monitor."""
    if metric == "val_acc":
        values = [r.val_acc for r in summary.results if r.val_acc is not None]
    else:
        last: dict[str, float] = {}
        for e in run.read_events():  # every process's events: a resumed run skips finished phases
            if isinstance(e, Epoch) and e.kind == "pretrain" and e.knn_acc is not None:
                last[e.phase] = e.knn_acc
        values = list(last.values())
    return sum(values) / len(values) if values else None


class _Heartbeat:
    """Tells the storage this worker is alive while it trains a trial."""

    def __init__(self, sweep: Sweep, trial: Trial, lost: Callable[[BaseException], None]):
        self.sweep, self.trial_id, self.lost = sweep, sweep.trial_id(trial), lost
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._beat, name="sweep-heartbeat", daemon=True)

    def _beat(self) -> None:
        while True:
            try:
                self.sweep.storage.record_heartbeat(self.trial_id)
            except STORAGE_ERRORS as exc:
                self.lost(exc)
                return
            if self.done.wait(HEARTBEAT_SECONDS):
                return

    def __enter__(self) -> _Heartbeat:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join(CONNECT_SECONDS + HEARTBEAT_SECONDS)  # a beat waiting on a server gone quiet


@dataclass
class SweepWorker:
    """Runs trials of one sweep in this process until none is left or a stop is requested."""

    sweep: Sweep
    store: RunStore
    data: str
    device: str = "auto"
    data_dir: str | None = None
    use_cache: bool = True
    progress: Callable[[], Listener | None] = lambda: None  # a fresh progress display per trial
    say: Callable[[str], None] = lambda line: None
    outcomes: list[TrialOutcome] = field(default_factory=list)
    stop: StopToken = field(default_factory=StopToken)  # each trial's run stops with it
    _runner: Runner | None = None
    _lost: StorageError | None = None  # the storage failed during a trial

    def request_stop(self, reason: str) -> None:
        """Stop after the current step of the current trial (signal-safe); it is queued again."""
        self.stop.request(reason)

    @property
    def lost(self) -> StorageError | None:
        """Why the storage failed during a trial, if it did (it is not asked again)."""
        return self._lost

    def storage_lost(self, exc: BaseException) -> None:
        """The storage failed while a trial trains: stop its run at a checkpoint (thread-safe)."""
        if self._lost is None:
            self._lost = storage_lost(self.sweep.url, exc)
            if self._runner is not None:
                self._runner.request_stop(self._lost.message)

    def run(self) -> list[TrialOutcome]:
        """Trials until the sweep has run them all; RunInterrupted after a stop, DataError when
        this machine cannot read the data (the trial is queued for another worker), StorageError
        when the storage fails."""
        try:
            return self._run()
        except STORAGE_ERRORS as exc:
            raise self._lost or storage_lost(self.sweep.url, exc) from None

    def _run(self) -> list[TrialOutcome]:
        while not self.stop.requested:
            self.sweep.fail_stale()
            trial = self.sweep.next_trial()
            if trial is None:
                break
            outcome = self._run_trial(trial)
            self.outcomes.append(outcome)
        if self.stop.requested:
            raise RunInterrupted(f"{self.stop.reason}; `ssltui sweep --name {self.sweep.name}` continues the sweep")
        return self.outcomes

    # ------------------------------------------------------------ one trial
    def _run_trial(self, trial: Trial) -> TrialOutcome:
        values = {p.key: p.suggest(trial) for p in self.sweep.definition.search_space()}
        run, resume = self._run_dir(trial)
        trial.set_user_attr("run_id", run.id)
        trial.set_user_attr("host", socket.gethostname())
        shown = " ".join(f"{k}={v}" for k, v in values.items())
        self.say(f"trial {trial.number} [{shown}]: {'resuming' if resume else 'run'} {run.id}")
        if resume and run.info().status == "completed":  # finished before its worker could report it
            return self._finish(trial, values, run, run.read_summary())
        progress = self.progress()
        self._runner = runner = self._make_runner(trial, values, run, progress)
        try:
            return self._train(trial, values, run, runner, resume)
        finally:
            self._runner = None
            if hasattr(progress, "close"):
                progress.close()

    def _make_runner(self, trial: Trial, values: dict[str, Value], run: RunDir, progress: Listener | None) -> Runner:
        """The trial's Runner, its events going to the progress display and to the trial (whose
        pruner may stop it as pruned)."""
        from ssltui.trainer.runner import Runner  # torch: only once there is a trial to train

        defn = self.sweep.definition
        plan = defn.plan(values)
        # The kNN metric is measured while pretraining: a trial must pretrain, not reuse an encoder.
        opts = run_options(
            data=self.data,
            data_dir=self.data_dir,
            device=self.device,
            group=self.sweep.name,
            use_cache=self.use_cache and defn.metric != "knn_acc",
        )
        earlier = self.sweep.storage.get_trial(self.sweep.trial_id(trial)).intermediate_values
        reporter = TrialReporter(trial, plan, defn.prune, defn.prune_warmup, set(earlier))
        listeners = [f for f in (progress, reporter) if f is not None]
        runner = Runner(
            plan,
            run,
            opts,
            lambda e: [f(e) for f in listeners],
            cache_dir=self.store.cache_dir(),
            sweep=SweepRef(name=self.sweep.name, trial=trial.number, params=values),
            stop=StopToken(parent=self.stop),
        )  # a prune stops the trial; a Ctrl-C, all
        reporter.stop = lambda reason: runner.request_stop(reason, status="pruned")
        reporter.lost = self.storage_lost
        return runner

    def _train(self, trial: Trial, values: dict[str, Value], run: RunDir, runner: Runner, resume: bool) -> TrialOutcome:
        """Run the trial's run and tell Optuna how it ended."""
        try:
            with _Heartbeat(self.sweep, trial, self.storage_lost):
                summary = runner.execute(resume=resume)
        except RunInterrupted as exc:
            if self._lost is not None:  # nothing can be told to the storage: it resumes later
                raise self._lost from None
            if runner.summary.status == "pruned":
                return self._tell(trial, values, run, TrialState.PRUNED, None, exc.message)
            self._requeue(trial)
            return TrialOutcome(trial.number, "interrupted", values, run.id, error=exc.message)
        except DataError:  # this machine's data, not the trial: let another worker run it
            self._requeue(trial)
            raise
        except (RunFailed, ConfigError) as exc:
            if self._lost is not None:
                raise self._lost from None
            return self._tell(trial, values, run, TrialState.FAIL, None, exc.message)
        if self._lost is not None:  # finished, but the storage cannot be told: the rerun reports it
            raise self._lost
        return self._finish(trial, values, run, summary)

    def _run_dir(self, trial: Trial) -> tuple[RunDir, bool]:
        """A trial queued again after its worker stopped carries its run id: resume that run when
        it is in this run store; anything else starts a new run."""
        run_id = trial.user_attrs.get("run_id")
        if run_id and (self.store.root / run_id / "config.toml").is_file():
            return RunDir(self.store.root / run_id), True
        return self.store.create(f"{self.sweep.name}-t{trial.number}"), False

    def _finish(self, trial: Trial, values: dict[str, Value], run: RunDir, summary: RunSummary) -> TrialOutcome:
        value = objective(self.sweep.definition.metric, summary, run)
        if value is None:
            return self._tell(
                trial,
                values,
                run,
                TrialState.FAIL,
                None,
                f"the run recorded no {self.sweep.definition.metric} (validation split)",
            )
        tests = [r.test_acc for r in summary.results]
        if tests:  # kept for the chosen trial's report; never given to the sampler
            trial.set_user_attr("test_acc", sum(tests) / len(tests))
        return self._tell(trial, values, run, TrialState.COMPLETE, value, None)

    def _tell(
        self,
        trial: Trial,
        values: dict[str, Value],
        run: RunDir,
        state: TrialState,
        value: float | None,
        error: str | None,
    ) -> TrialOutcome:
        if error is not None:
            trial.set_user_attr("error", error[:300])
        self.sweep.study.tell(trial, value if state == TrialState.COMPLETE else None, state=state)
        name = {TrialState.COMPLETE: "complete", TrialState.PRUNED: "pruned"}.get(state, "failed")
        metric = f"{self.sweep.definition.metric} {100 * value:.2f}%" if value is not None else error or ""
        self.say(f"trial {trial.number}: {name}, {metric}")
        return TrialOutcome(trial.number, name, values, run.id, value, error)

    def _requeue(self, trial: Trial) -> None:
        # No error attribute: the retry copies the trial's attributes (the run keeps the reason).
        frozen = self.sweep.study.tell(trial, state=TrialState.FAIL)
        self.sweep.requeue(frozen)
        self.say(f"trial {trial.number}: stopped and queued again (its run resumes)")
