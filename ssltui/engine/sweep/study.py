"""A sweep's Optuna study: its storage (SQLite in the run store, or a shared PostgreSQL), creating
or joining it, handing out trials to workers exactly once, and reading it back ranked.

No torch. Optuna loads with this module, so only the sweep commands and the TUI's sweep screen
import it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import optuna
import sqlalchemy
from optuna.exceptions import DuplicatedStudyError, ExperimentalWarning
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, Trial, TrialState

from ssltui.engine.errors import ConfigError, first_line
from ssltui.engine.sweep.space import SweepDefinition, Value

# Optuna's INFO lines would interleave with our own progress.
optuna.logging.set_verbosity(optuna.logging.WARNING)

DEFINITION_ATTR = "ssltui"  # the study user attribute that holds the SweepDefinition
HEARTBEAT_SECONDS = 20  # a running trial's worker writes a heartbeat this often
GRACE_SECONDS = 90  # a trial without a heartbeat for this long is failed and queued again
JOIN_WAIT_SECONDS = 60  # how long a joining worker waits for the creator to queue the grid
IMPORTANCE_MIN_TRIALS = 4  # finished trials before parameter importances mean anything
STATES = {TrialState.COMPLETE: "complete", TrialState.PRUNED: "pruned", TrialState.RUNNING: "running",
          TrialState.FAIL: "failed", TrialState.WAITING: "waiting"}
RANK = ("complete", "running", "pruned", "failed", "waiting")


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Heartbeats and stale-trial retries are experimental in Optuna, and it warns that they are
    meant for Study.optimize (we drive trials with ask/tell): nothing a user can act on."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
        yield


def storage_url(option: str | None, sweeps_dir: Path) -> str:
    """--storage, else $SSLTUI_SWEEP_STORAGE, else an SQLite file in the run store."""
    return option or os.environ.get("SSLTUI_SWEEP_STORAGE") or f"sqlite:///{sweeps_dir / 'optuna.db'}"


def shown_url(url: str) -> str:
    """The URL without its password, for messages and JSON."""
    try:
        return sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)
    except (sqlalchemy.exc.ArgumentError, ValueError):
        return url.split("@")[-1][:80]


def _absent(url: str) -> bool:
    """An SQLite file that does not exist yet holds no sweep: reading it must not create it."""
    try:
        parsed = sqlalchemy.engine.make_url(url)
    except (sqlalchemy.exc.ArgumentError, ValueError):
        return False
    return parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:") \
        and not Path(parsed.database).exists()


def open_storage(url: str) -> RDBStorage:
    """Optuna's RDB storage with heartbeats: a trial whose worker died is failed after
    GRACE_SECONDS and queued again with its parameters (and run id, so its run resumes)."""
    try:
        parsed = sqlalchemy.engine.make_url(url)
    except (sqlalchemy.exc.ArgumentError, ValueError):
        raise ConfigError(f"--storage {shown_url(url)!r}: not a database URL "
                          f"(sqlite:///PATH or postgresql://USER@HOST/DATABASE)") from None
    engine_kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if parsed.drivername == "postgresql":
        # The driver ssltui[postgres] installs (psycopg 3), whatever SQLAlchemy's default.
        url = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    if parsed.get_backend_name() == "sqlite":
        # Workers and the TUI share the file; wait for a writer rather than fail at once.
        engine_kwargs = {"connect_args": {"timeout": 60}}
    try:
        if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        # Workers that start together on a new database would race to create Optuna's tables.
        with _exclusive(sqlalchemy.engine.make_url(url), "ssltui-schema"), _quiet():
            return RDBStorage(url, engine_kwargs=engine_kwargs, heartbeat_interval=HEARTBEAT_SECONDS,
                              grace_period=GRACE_SECONDS,
                              heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(
                                  inherit_intermediate_values=True))
    except ImportError as exc:
        extra = " (pip install 'ssltui[postgres]')" if parsed.get_backend_name() == "postgresql" else ""
        raise ConfigError(f"--storage {shown_url(url)}: no database driver ({first_line(exc)}){extra}") from None
    except (sqlalchemy.exc.SQLAlchemyError, OSError, ValueError) as exc:
        raise ConfigError(f"--storage {shown_url(url)}: cannot open ({first_line(exc)[:160]})") from None


@contextlib.contextmanager
def _exclusive(url: sqlalchemy.engine.URL, key: str, engine: sqlalchemy.engine.Engine | None = None
               ) -> Iterator[None]:
    """One process at a time per `key`: a file lock beside an SQLite database (one machine), a
    transaction-scoped advisory lock on PostgreSQL (every machine); nothing for other databases."""
    backend = url.get_backend_name()
    if backend == "sqlite" and url.database not in (None, "", ":memory:"):
        with open(f"{url.database}.lock", "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            yield
    elif backend == "postgresql":
        own = engine is None
        engine = engine if engine is not None else sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
        number = int.from_bytes(hashlib.sha1(key.encode()).digest()[:8], "big", signed=True)
        try:
            with engine.begin() as conn:  # the lock ends with this transaction
                conn.execute(sqlalchemy.text("SELECT pg_advisory_xact_lock(:key)"), {"key": number})
                yield
        finally:
            if own:
                engine.dispose()
    else:
        yield


def make_sampler(defn: SweepDefinition) -> optuna.samplers.BaseSampler:
    """A grid's points are queued trials (see `Sweep.start`); a sampler is never asked for them."""
    if defn.sampler == "tpe":
        return optuna.samplers.TPESampler(seed=defn.sampler_seed)
    return optuna.samplers.RandomSampler(seed=defn.sampler_seed)


def make_pruner(defn: SweepDefinition) -> optuna.pruners.BasePruner:
    """The median rule: stop a trial whose validation accuracy is below the median of earlier
    trials at the same epoch of the same phase (the worker adds the per-phase warm-up)."""
    if not defn.prune:
        return optuna.pruners.NopPruner()
    return optuna.pruners.MedianPruner(n_startup_trials=defn.prune_startup, n_warmup_steps=0)


class Sweep:
    """One sweep: its study, storage and definition."""

    def __init__(self, study: optuna.Study, storage: RDBStorage, definition: SweepDefinition, url: str):
        self.study, self.storage, self.definition, self.url = study, storage, definition, url
        self.name = study.study_name
        self.study_id = storage.get_study_id_from_name(self.name)

    # ------------------------------------------------------------ opening
    @classmethod
    def open(cls, url: str, name: str, storage: RDBStorage | None = None) -> "Sweep":
        """An existing sweep (for `sweep show`, the TUI, a worker joining by name)."""
        missing = ConfigError(f"no sweep {name!r} in {shown_url(url)} (see `ssltui sweep list`)")
        if storage is None and _absent(url):
            raise missing
        storage = storage or open_storage(url)
        try:
            study_id = storage.get_study_id_from_name(name)
        except KeyError:
            raise missing from None
        defn = _wait_for_definition(storage, study_id, name)
        study = optuna.load_study(study_name=name, storage=storage, sampler=make_sampler(defn),
                                  pruner=make_pruner(defn))
        return cls(study, storage, defn, url)

    @classmethod
    def start(cls, url: str, name: str, defn: SweepDefinition) -> "Sweep":
        """Create the sweep, or join it when it exists with the same definition. The worker that
        creates a grid queues every point once; every worker then only takes queued points."""
        storage = open_storage(url)
        try:
            study = optuna.create_study(study_name=name, storage=storage, direction="maximize",
                                        sampler=make_sampler(defn), pruner=make_pruner(defn))
        except DuplicatedStudyError:
            sweep = cls.open(url, name, storage)
            if sweep.definition.identity() != defn.identity():
                raise ConfigError(f"sweep {name!r} already exists with another definition "
                                  f"({_first_difference(sweep.definition, defn)}); choose another --name, "
                                  f"or give only --name to join it") from None
            if defn.trials != sweep.definition.trials:
                sweep.set_trials(defn.trials)
            return sweep
        if defn.sampler == "grid":
            for point in defn.grid():
                study.enqueue_trial(point)
        study.set_user_attr(DEFINITION_ATTR, defn.model_dump(mode="json"))  # last: the sweep is ready
        return cls(study, storage, defn, url)

    def set_trials(self, trials: int) -> None:
        """Change how many trials a sampled sweep runs in all (`--trials` when joining)."""
        if self.definition.sampler == "grid":
            raise ConfigError(f"--trials: sweep {self.name!r} is a grid of {self.definition.trials} points")
        self.definition.trials = trials
        self.study.set_user_attr(DEFINITION_ATTR, self.definition.model_dump(mode="json"))

    # ------------------------------------------------------------ handing out trials
    def next_trial(self) -> Trial | None:
        """The next trial for this worker: a queued one (a grid point, or a trial queued again
        after its worker stopped), else a newly sampled one while the sweep has fewer than its
        trial count; None when there is nothing left to run."""
        with self._claim_lock(), _quiet():
            trial = self._claim_queued()
            if trial is None and self.definition.sampler != "grid" and self.counted() < self.definition.trials:
                trial = self.study.ask()
        if trial is not None:
            # At once: a worker that dies before its heartbeat thread starts (while torch loads)
            # must still leave a trial that goes stale, not one RUNNING forever.
            self.storage.record_heartbeat(self.trial_id(trial))
        return trial

    def _claim_queued(self) -> Trial | None:
        # What study.ask() does first, without its fallback of sampling a new trial: the storage
        # moves a WAITING trial to RUNNING only once (SELECT ... FOR UPDATE on PostgreSQL). The
        # listing goes through the study, whose storage cache must know the trial we return.
        for frozen in self.study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
            trial_id = self.storage.get_trial_id_from_study_id_trial_number(self.study_id, frozen.number)
            try:
                if self.storage.set_trial_state_values(trial_id, state=TrialState.RUNNING):
                    return Trial(self.study, trial_id)
            except optuna.exceptions.UpdateFinishedTrialError:
                continue
        return None

    def _claim_lock(self) -> contextlib.AbstractContextManager:
        """One worker at a time counts and claims (SQLite has no row locks for Optuna to take),
        so `--trials N` runs N trials however many workers there are."""
        return _exclusive(self.storage.engine.url, f"ssltui-sweep:{self.name}", self.storage.engine)

    def counted(self) -> int:
        """Trials toward the sweep's count: all but those replaced by a retry."""
        trials = self.study.get_trials(deepcopy=False)
        return sum(1 for t in trials if t.number not in _retried(trials))

    def requeue(self, trial: FrozenTrial) -> None:
        """Queue a stopped trial again with its parameters, run id and reported values (the same
        callback the heartbeat uses for a dead worker's trial)."""
        with _quiet():
            RetryHeartbeatStaleTrialCallback(inherit_intermediate_values=True)(self.study, trial)

    def fail_stale(self) -> None:
        """Fail (and queue again) trials whose worker stopped sending heartbeats."""
        with _quiet():
            optuna.storages.fail_stale_trials(self.study)

    def trial_id(self, trial: Trial) -> int:
        return self.storage.get_trial_id_from_study_id_trial_number(self.study_id, trial.number)

    # ------------------------------------------------------------ reading back
    def report(self) -> "SweepReport":
        return SweepReport.of(self)


def _retried(trials: list[FrozenTrial]) -> set[int]:
    return {n for t in trials for n in t.system_attrs.get("retry_history", [])}


def _wait_for_definition(storage: RDBStorage, study_id: int, name: str) -> SweepDefinition:
    """The sweep's definition; a worker that joins a sweep created a moment ago waits for its
    creator to finish queueing the grid."""
    deadline = time.monotonic() + JOIN_WAIT_SECONDS
    while True:
        raw = storage.get_study_user_attrs(study_id).get(DEFINITION_ATTR)
        if raw is not None:
            try:
                return SweepDefinition.model_validate(raw)
            except ValueError:
                raise ConfigError(f"study {name!r} has a damaged ssltui sweep definition") from None
        if time.monotonic() > deadline:
            raise ConfigError(f"study {name!r} is not an ssltui sweep (or its creator stopped before "
                              f"setting it up); choose another --name")
        time.sleep(0.5)


def _first_difference(a: SweepDefinition, b: SweepDefinition) -> str:
    da, db = a.model_dump(exclude={"trials", "data", "sampler_seed"}), b.model_dump(exclude={"trials", "data",
                                                                                          "sampler_seed"})
    key = next((k for k in da if da[k] != db.get(k)), "?")
    if key in ("params", "sampler", "metric"):
        return f"{key}: {da[key]} there, {db[key]} here"
    return f"its {key} differ"


# ---------------------------------------------------------------- the ranked view

@dataclass
class TrialRow:
    """One trial as `sweep show` and the TUI list it."""

    number: int
    state: str  # complete | running | pruned | failed | waiting
    value: float | None
    params: dict[str, Value]
    run_id: str | None = None
    host: str | None = None
    retry_of: int | None = None
    error: str | None = None
    reports: int = 0  # intermediate values reported (epochs with a validation measurement)
    started: float | None = None
    test_acc: float | None = None  # read only for the chosen trial

    @classmethod
    def of(cls, t: FrozenTrial) -> "TrialRow":
        value = t.value if t.state == TrialState.COMPLETE else (
            t.intermediate_values[max(t.intermediate_values)] if t.intermediate_values else None)
        return cls(number=t.number, state=STATES.get(t.state, t.state.name.lower()), value=value,
                   params=dict(t.params), run_id=t.user_attrs.get("run_id"), host=t.user_attrs.get("host"),
                   retry_of=t.system_attrs.get("failed_trial"), error=t.user_attrs.get("error"),
                   reports=len(t.intermediate_values),
                   started=t.datetime_start.timestamp() if t.datetime_start else None)


@dataclass
class SweepReport:
    """A sweep ranked by its validation metric: complete trials best first, then running, pruned,
    failed and queued ones. Test accuracy is read for the chosen (best) trial only."""

    name: str
    url: str
    definition: SweepDefinition
    rows: list[TrialRow]
    importances: dict[str, float] | None = None
    importance_note: str = ""
    replaced: int = 0  # trials stopped and queued again (their retry is listed instead)
    keys: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, sweep: Sweep) -> "SweepReport":
        trials = sweep.study.get_trials(deepcopy=False)
        retried = _retried(trials)
        rows = [TrialRow.of(t) for t in trials if t.number not in retried]
        rows.sort(key=lambda r: (RANK.index(r.state) if r.state in RANK else len(RANK),
                                 -(r.value if r.value is not None and r.state != "running" else 0.0), r.number))
        report = cls(sweep.name, shown_url(sweep.url), sweep.definition, rows, replaced=len(retried),
                     keys=[p.key for p in sweep.definition.search_space()])
        best = report.best
        if best is not None:
            best.test_acc = next(t.user_attrs.get("test_acc") for t in trials if t.number == best.number)
        report.importances, report.importance_note = _importances(sweep.study, report)
        return report

    @property
    def best(self) -> TrialRow | None:
        return self.rows[0] if self.rows and self.rows[0].state == "complete" else None

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.rows:
            out[r.state] = out.get(r.state, 0) + 1
        return out

    def effect(self, key: str) -> list[tuple[Value, float]]:
        """(value, metric) of every complete trial: what one parameter did."""
        return [(r.params[key], r.value) for r in self.rows
                if r.state == "complete" and r.value is not None and key in r.params]

    def to_json(self) -> dict:
        best = self.best
        return {
            "sweep": self.name, "storage": self.url, "metric": self.definition.metric,
            "sampler": self.definition.sampler, "trials_planned": self.definition.trials,
            "params": self.definition.params, "preset": self.definition.preset, "counts": self.counts(),
            "trials": [{"number": r.number, "state": r.state, "value": r.value, "params": r.params,
                        "run_id": r.run_id, "host": r.host, "retry_of": r.retry_of, "error": r.error}
                       for r in self.rows],
            "best": None if best is None else {"number": best.number, "value": best.value, "params": best.params,
                                               "run_id": best.run_id, "test_acc": best.test_acc},
            "importances": self.importances, "importance_note": self.importance_note or None,
        }


def _importances(study: optuna.Study, report: SweepReport) -> tuple[dict[str, float] | None, str]:
    """Optuna's parameter importances, when there are two parameters or more to compare and
    enough finished trials to say anything."""
    done = report.counts().get("complete", 0)
    if len(report.keys) < 2:
        return None, ""
    if done < IMPORTANCE_MIN_TRIALS:
        return None, f"importances need {IMPORTANCE_MIN_TRIALS} complete trials ({done} so far)"
    try:
        found = optuna.importance.get_param_importances(study, params=report.keys)
    except (RuntimeError, ValueError, ZeroDivisionError) as exc:
        return None, f"importances: {first_line(exc)[:100]}"
    return {k: round(float(v), 4) for k, v in found.items()}, ""


def list_sweeps(url: str) -> list[dict]:
    """Every ssltui sweep in a storage: name, preset, metric, sampler, trials, best value."""
    if _absent(url):
        return []
    storage = open_storage(url)
    out = []
    for s in optuna.get_all_study_summaries(storage, include_best_trial=True):
        raw = s.user_attrs.get(DEFINITION_ATTR)
        if raw is None:
            continue
        defn = SweepDefinition.model_validate(raw)
        out.append({"name": s.study_name, "preset": defn.preset, "metric": defn.metric, "sampler": defn.sampler,
                    "params": defn.params, "trials": s.n_trials, "planned": defn.trials,
                    "best": s.best_trial.value if s.best_trial is not None else None,
                    "started": s.datetime_start.timestamp() if s.datetime_start else None})
    return sorted(out, key=lambda d: -(d["started"] or 0))
