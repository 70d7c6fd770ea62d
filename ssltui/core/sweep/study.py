"""A sweep's Optuna study: its storage (SQLite in the run store, or a shared PostgreSQL), creating
or joining it, and handing out trials to workers exactly once (report.py reads it back).

No torch. Optuna loads with this module, so only the sweep commands and the TUI's sweep screen
import it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy
from optuna.exceptions import DuplicatedStudyError, ExperimentalWarning
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, Trial, TrialState

from ssltui.core.errors import ConfigError, StorageError, first_line
from ssltui.core.sweep.listing import CREATING_ATTR, DEFINITION_ATTR, storage_url  # noqa: F401 - the names callers import here
from ssltui.core.sweep.space import SweepDefinition

# Optuna's INFO lines would interleave with our own progress.
optuna.logging.set_verbosity(optuna.logging.WARNING)

HEARTBEAT_SECONDS = 20  # a running trial's worker writes a heartbeat this often
GRACE_SECONDS = 90  # a trial without a heartbeat for this long is failed and queued again
LOCK_SECONDS = 300  # how long a worker waits for another's lock (a creator queueing its grid)
CONNECT_SECONDS = 20  # how long to wait for a database server to answer a connection


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Heartbeats and stale-trial retries are experimental in Optuna, and it warns that they are
    meant for Study.optimize (we drive trials with ask/tell): nothing a user can act on."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
        yield


def shown_url(url: str) -> str:
    """The URL without its password, for messages and JSON."""
    try:
        return sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)
    except (sqlalchemy.exc.ArgumentError, ValueError):
        return url.split("@")[-1][:80]


def sqlite_file_missing(url: str) -> bool:
    """An SQLite file that does not exist yet holds no sweep: reading it must not create it."""
    try:
        parsed = sqlalchemy.engine.make_url(url)
    except (sqlalchemy.exc.ArgumentError, ValueError):
        return False
    return (
        parsed.get_backend_name() == "sqlite"
        and parsed.database not in (None, "", ":memory:")
        and not Path(parsed.database).exists()
    )


def open_storage(url: str) -> RDBStorage:
    """Optuna's RDB storage with heartbeats: a trial whose worker died is failed after
    GRACE_SECONDS and queued again with its parameters (and run id, so its run resumes)."""
    try:
        parsed = sqlalchemy.engine.make_url(url)
    except (sqlalchemy.exc.ArgumentError, ValueError):
        raise ConfigError(
            f"--storage {shown_url(url)!r}: not a database URL (sqlite:///PATH or postgresql://USER@HOST/DATABASE)"
        ) from None
    engine_kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if parsed.get_backend_name() == "postgresql":
        engine_kwargs["connect_args"] = {"connect_timeout": CONNECT_SECONDS}
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
            return RDBStorage(
                url,
                engine_kwargs=engine_kwargs,
                heartbeat_interval=HEARTBEAT_SECONDS,
                grace_period=GRACE_SECONDS,
                heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(inherit_intermediate_values=True),
            )
    except ImportError as exc:
        extra = " (pip install 'ssltui[postgres]')" if parsed.get_backend_name() == "postgresql" else ""
        raise ConfigError(f"--storage {shown_url(url)}: no database driver ({first_line(exc)}){extra}") from None
    except StorageError:
        raise
    except sqlalchemy.exc.OperationalError as exc:  # a server that is down or does not answer
        raise StorageError(
            f"--storage {shown_url(url)}: cannot connect ({first_line(getattr(exc, 'orig', None) or exc)[:160]})"
        ) from None
    except (sqlalchemy.exc.SQLAlchemyError, OSError, ValueError) as exc:
        raise ConfigError(f"--storage {shown_url(url)}: cannot open ({first_line(exc)[:160]})") from None


def storage_lost(url: str, exc: BaseException) -> StorageError:
    """A database error in the middle of a sweep, in one line (not SQLAlchemy's page of text)."""
    cause = getattr(exc, "orig", None) or exc
    return StorageError(
        f"lost the sweep storage {shown_url(url)} ({type(cause).__name__}: {first_line(cause, '')[:120]})"
    )


STORAGE_ERRORS: tuple[type[BaseException], ...] = (
    sqlalchemy.exc.SQLAlchemyError,
    optuna.exceptions.StorageInternalError,
)


@contextlib.contextmanager
def _exclusive(url: sqlalchemy.engine.URL, key: str, engine: sqlalchemy.engine.Engine | None = None) -> Iterator[None]:
    """One process at a time per `key`: a file lock beside an SQLite database (one machine), a
    transaction-scoped advisory lock on PostgreSQL (every machine); nothing for other databases."""
    backend = url.get_backend_name()
    held = StorageError(
        f"{key}: another process has held this lock for {LOCK_SECONDS} s "
        f"(a sweep being created or a stuck worker); try again"
    )
    if backend == "sqlite" and url.database not in (None, "", ":memory:"):
        # A file per key: a creator queueing a long grid holds only its own sweep's lock.
        with open(f"{url.database}.{hashlib.sha1(key.encode()).hexdigest()[:12]}.lock", "ab") as fh:
            deadline = time.monotonic() + LOCK_SECONDS
            while True:
                try:
                    fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise held from None
                    time.sleep(0.05)
            yield
    elif backend == "postgresql":
        own = engine is None
        engine = (
            engine
            if engine is not None
            else sqlalchemy.create_engine(
                url, poolclass=sqlalchemy.pool.NullPool, connect_args={"connect_timeout": CONNECT_SECONDS}
            )
        )
        number = int.from_bytes(hashlib.sha1(key.encode()).digest()[:8], "big", signed=True)
        try:
            with engine.begin() as conn:  # the lock ends with this transaction
                conn.execute(sqlalchemy.text(f"SET LOCAL lock_timeout = '{LOCK_SECONDS}s'"))
                try:
                    conn.execute(sqlalchemy.text("SELECT pg_advisory_xact_lock(:key)"), {"key": number})
                except sqlalchemy.exc.OperationalError as exc:
                    if "lock timeout" in str(exc):
                        raise held from None
                    raise
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
    def open(cls, url: str, name: str, storage: RDBStorage | None = None) -> Sweep:
        """An existing sweep (for `sweep show`, the TUI, a worker joining by name)."""
        missing = ConfigError(f"no sweep {name!r} in {shown_url(url)} (see `ssltui sweep list`)")
        if storage is None and sqlite_file_missing(url):
            raise missing
        storage = storage or open_storage(url)
        try:
            study_id = storage.get_study_id_from_name(name)
        except KeyError:
            raise missing from None
        defn = _read_definition(storage, study_id, name)
        if defn is None:  # being created: wait for its creator (a grid is queued whole)
            with _exclusive(storage.engine.url, _creation_key(name)):
                defn = _read_definition(storage, study_id, name)
            if defn is None:
                raise _not_a_sweep(storage, study_id, name)
        study = optuna.load_study(
            study_name=name, storage=storage, sampler=make_sampler(defn), pruner=make_pruner(defn)
        )
        return cls(study, storage, defn, url)

    @classmethod
    def start(cls, url: str, name: str, defn: SweepDefinition) -> Sweep:
        """Create the sweep, or join it when it exists with the same definition. The worker that
        creates a grid queues every point once; every worker then only takes queued points."""
        storage = open_storage(url)
        with _exclusive(storage.engine.url, _creation_key(name)):
            study = cls._create(storage, name, defn)
        if study is None:
            sweep = cls.open(url, name, storage)
            if sweep.definition.identity() != defn.identity():
                raise ConfigError(
                    f"sweep {name!r} already exists with another definition "
                    f"({_first_difference(sweep.definition, defn)}); choose another --name, "
                    f"or give only --name to join it"
                ) from None
            if defn.trials != sweep.definition.trials:
                sweep.set_trials(defn.trials)
            return sweep
        return cls(study, storage, defn, url)

    @staticmethod
    def _create(storage: RDBStorage, name: str, defn: SweepDefinition) -> optuna.Study | None:
        """The new sweep's study, made whole under its creation lock (a joiner waits on that lock,
        so it never sees half a grid); None when a whole sweep of that name exists. A creation
        that was killed half-way (the lock is free, the definition never set) is made again."""
        try:
            study_id = storage.get_study_id_from_name(name)
        except KeyError:
            study_id = None
        if study_id is not None:
            if _read_definition(storage, study_id, name) is not None:
                return None
            if not half_made(storage, study_id):
                raise _not_a_sweep(storage, study_id, name)
            optuna.delete_study(study_name=name, storage=storage)
        try:
            study = optuna.create_study(
                study_name=name,
                storage=storage,
                direction="maximize",
                sampler=make_sampler(defn),
                pruner=make_pruner(defn),
            )
        except DuplicatedStudyError:  # made by a process that does not take the lock
            raise ConfigError(
                f"sweep {name!r} was created meanwhile by another program; choose another --name"
            ) from None
        study.set_user_attr(CREATING_ATTR, defn.identity())  # first: a killed creation is known as one
        if defn.sampler == "grid":
            for point in defn.grid():
                study.enqueue_trial(point)
        study.set_user_attr(DEFINITION_ATTR, defn.model_dump(mode="json"))  # last: the sweep is ready
        return study

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

    def _claim_lock(self) -> contextlib.AbstractContextManager[Any]:
        """One worker at a time counts and claims (SQLite has no row locks for Optuna to take),
        so `--trials N` runs N trials however many workers there are."""
        return _exclusive(self.storage.engine.url, f"ssltui-sweep:{self.name}", self.storage.engine)

    def counted(self) -> int:
        """Trials toward the sweep's count: all but those replaced by a retry."""
        trials = self.study.get_trials(deepcopy=False)
        return sum(1 for t in trials if t.number not in retried(trials))

    def requeue(self, trial: FrozenTrial) -> None:
        """Queue a stopped trial again with its parameters, run id and reported values (the same
        callback the heartbeat uses for a dead worker's trial)."""
        with _quiet():
            RetryHeartbeatStaleTrialCallback(inherit_intermediate_values=True)(self.study, trial)

    def fail_stale(self) -> None:
        """Fail (and queue again) trials whose worker stopped sending heartbeats."""
        with _quiet():
            optuna.storages.fail_stale_trials(self.study)

    def running(self) -> list[RunningTrial]:
        """The trials marked RUNNING: another worker's, or a killed worker's not yet stale."""
        return [
            RunningTrial(number, run_id, age) for number, run_id, age in running_trials(self.storage, self.study_id)
        ]

    def trial_id(self, trial: Trial) -> int:
        return self.storage.get_trial_id_from_study_id_trial_number(self.study_id, trial.number)


@dataclass
class RunningTrial:
    """A trial marked RUNNING and how long ago its worker last sent a heartbeat."""

    number: int
    run_id: str | None
    heartbeat_age: float | None  # seconds; None: none yet

    @property
    def retry_in(self) -> float:
        """Seconds until the trial counts as stale and the next worker queues it again, should
        its worker be gone."""
        return max(0.0, GRACE_SECONDS - (self.heartbeat_age or 0.0))

    def line(self, sweep: str) -> str:
        age = "no heartbeat yet" if self.heartbeat_age is None else f"last heartbeat {self.heartbeat_age:.0f} s ago"
        return (
            f"trial {self.number} is still marked running (run {self.run_id or '?'}, {age}): another worker "
            f"runs it, or its worker is gone and `ssltui sweep --name {sweep}` retries it in "
            f"{self.retry_in:.0f} s (after {GRACE_SECONDS} s without a heartbeat)"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "run_id": self.run_id,
            "heartbeat_age_s": self.heartbeat_age,
            "retry_in_s": round(self.retry_in, 1),
        }


def retried(trials: list[FrozenTrial]) -> set[int]:
    """Numbers of the trials replaced by a retry (stopped, then queued again)."""
    return {n for t in trials for n in t.system_attrs.get("retry_history", [])}


def _creation_key(name: str) -> str:
    return f"ssltui-create:{name}"


def _read_definition(storage: RDBStorage, study_id: int, name: str) -> SweepDefinition | None:
    raw = storage.get_study_user_attrs(study_id).get(DEFINITION_ATTR)
    if raw is None:
        return None
    try:
        return SweepDefinition.model_validate(raw)
    except ValueError:
        raise ConfigError(f"study {name!r} has a damaged ssltui sweep definition") from None


def half_made(storage: RDBStorage, study_id: int) -> bool:
    """A study whose ssltui creation stopped before its definition was set: marked as being
    created, or (killed before the mark) empty. Only meaningful while no creator holds its lock."""
    attrs = storage.get_study_user_attrs(study_id)
    if DEFINITION_ATTR in attrs:
        return False
    return CREATING_ATTR in attrs or (not attrs and storage.get_n_trials(study_id) == 0)


def _not_a_sweep(storage: RDBStorage, study_id: int, name: str) -> ConfigError:
    if half_made(storage, study_id):
        return ConfigError(
            f"sweep {name!r} was left half-made (its creation was stopped); rerun the command "
            f"that created it, or remove it with `ssltui sweep rm {name}`"
        )
    return ConfigError(f"study {name!r} is not an ssltui sweep; choose another --name")


def remove_sweep(url: str, name: str) -> int:
    """Delete a sweep's study (whole or half-made) from its storage; the number of trials it had.
    Refused while a trial's worker still sends heartbeats, and for a study that is not ssltui's."""
    missing = ConfigError(f"no sweep {name!r} in {shown_url(url)} (see `ssltui sweep list`)")
    if sqlite_file_missing(url):
        raise missing
    storage = open_storage(url)
    with _exclusive(storage.engine.url, _creation_key(name)):
        try:
            study_id = storage.get_study_id_from_name(name)
        except KeyError:
            raise missing from None
        if _read_definition(storage, study_id, name) is None and not half_made(storage, study_id):
            raise _not_a_sweep(storage, study_id, name)
        live = [
            (number, age)
            for number, _, age in running_trials(storage, study_id)
            if age is not None and age <= GRACE_SECONDS
        ]
        if live:
            number, age = live[0]
            raise ConfigError(
                f"sweep {name!r}: trial {number} is running (heartbeat {age:.0f} s ago); stop its "
                f"worker first, or wait {GRACE_SECONDS - age:.0f} s if it is gone"
            )
        trials = storage.get_n_trials(study_id)
        optuna.delete_study(study_name=name, storage=storage)
    return trials


def unfinished_sweeps(url: str) -> list[str]:
    """Names of the sweeps being created, or left half-made by a creation that was stopped."""
    if sqlite_file_missing(url):
        return []
    storage = open_storage(url)
    return [
        s.study_name
        for s in storage.get_all_studies()
        if CREATING_ATTR in s.user_attrs and DEFINITION_ATTR not in s.user_attrs
    ]


def running_trials(storage: RDBStorage, study_id: int) -> list[tuple[int, str | None, float | None]]:
    """(number, run id, seconds since its last heartbeat, None without one) of each RUNNING trial."""
    from optuna.storages._rdb import models

    out: list[tuple[int, str | None, float | None]] = []
    with storage.scoped_session() as session:
        stamp = session.execute(sqlalchemy.func.now()).scalar()
        if stamp is None:
            return out
        now = stamp.replace(tzinfo=None)
        rows = (
            session.query(models.TrialModel)
            .filter(models.TrialModel.state == TrialState.RUNNING)
            .filter(models.TrialModel.study_id == study_id)
            .all()
        )
        for trial in rows:
            beat = (
                session.query(models.TrialHeartbeatModel)
                .filter(models.TrialHeartbeatModel.trial_id == trial.trial_id)
                .one_or_none()
            )
            attr = (
                session.query(models.TrialUserAttributeModel)
                .filter(
                    models.TrialUserAttributeModel.trial_id == trial.trial_id,
                    models.TrialUserAttributeModel.key == "run_id",
                )
                .one_or_none()
            )
            age = (now - beat.heartbeat).total_seconds() if beat is not None else None
            out.append((trial.number, json.loads(attr.value_json) if attr is not None else None, age))
        session.rollback()
    return out


def _first_difference(a: SweepDefinition, b: SweepDefinition) -> str:
    da, db = (
        a.model_dump(exclude={"trials", "data", "sampler_seed"}),
        b.model_dump(exclude={"trials", "data", "sampler_seed"}),
    )
    key = next((k for k in da if da[k] != db.get(k)), "?")
    if key in ("params", "sampler", "metric"):
        return f"{key}: {da[key]} there, {db[key]} here"
    return f"its {key} differ"
