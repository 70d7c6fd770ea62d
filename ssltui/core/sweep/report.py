"""A sweep read back for `sweep show`, `sweep list` and the TUI: trials ranked by the validation
metric, parameter importances, the chosen trial's test accuracy (and no other's). No torch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import optuna
import sqlalchemy
import sqlalchemy.orm
from optuna.storages import RDBStorage
from optuna.trial import FrozenTrial, TrialState

from ssltui.core.errors import ConfigError, first_line
from ssltui.core.sweep.listing import DEFINITION_ATTR, list_sqlite
from ssltui.core.sweep.space import SweepDefinition, Value
from ssltui.core.sweep.study import Sweep, open_storage, retried, shown_url, sqlite_file_missing

IMPORTANCE_MIN_TRIALS = 4  # finished trials before parameter importances mean anything
STATES = {
    TrialState.COMPLETE: "complete",
    TrialState.PRUNED: "pruned",
    TrialState.RUNNING: "running",
    TrialState.FAIL: "failed",
    TrialState.WAITING: "waiting",
}
RANK = ("complete", "running", "pruned", "failed", "waiting")


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
    def of(cls, t: FrozenTrial) -> TrialRow:
        value = (
            t.value
            if t.state == TrialState.COMPLETE
            else (t.intermediate_values[max(t.intermediate_values)] if t.intermediate_values else None)
        )
        return cls(
            number=t.number,
            state=STATES.get(t.state, t.state.name.lower()),
            value=value,
            params=dict(t.params),
            run_id=t.user_attrs.get("run_id"),
            host=t.user_attrs.get("host"),
            retry_of=t.system_attrs.get("failed_trial"),
            error=t.user_attrs.get("error"),
            reports=len(t.intermediate_values),
            started=t.datetime_start.timestamp() if t.datetime_start else None,
        )


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
    def of(cls, sweep: Sweep) -> SweepReport:
        trials = sweep.study.get_trials(deepcopy=False)
        replaced = retried(trials)
        rows = [TrialRow.of(t) for t in trials if t.number not in replaced]
        rows.sort(
            key=lambda r: (
                RANK.index(r.state) if r.state in RANK else len(RANK),
                -(r.value if r.value is not None and r.state != "running" else 0.0),
                r.number,
            )
        )
        report = cls(
            sweep.name,
            shown_url(sweep.url),
            sweep.definition,
            rows,
            replaced=len(replaced),
            keys=[p.key for p in sweep.definition.search_space()],
        )
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
        return [
            (r.params[key], r.value)
            for r in self.rows
            if r.state == "complete" and r.value is not None and key in r.params
        ]

    def to_json(self) -> dict[str, Any]:
        best = self.best
        return {
            "sweep": self.name,
            "storage": self.url,
            "metric": self.definition.metric,
            "sampler": self.definition.sampler,
            "trials_planned": self.definition.trials,
            "params": self.definition.params,
            "preset": self.definition.preset,
            "counts": self.counts(),
            "trials": [
                {
                    "number": r.number,
                    "state": r.state,
                    "value": r.value,
                    "params": r.params,
                    "run_id": r.run_id,
                    "host": r.host,
                    "retry_of": r.retry_of,
                    "error": r.error,
                }
                for r in self.rows
            ],
            "best": None
            if best is None
            else {
                "number": best.number,
                "value": best.value,
                "params": best.params,
                "run_id": best.run_id,
                "test_acc": best.test_acc,
            },
            "importances": self.importances,
            "importance_note": self.importance_note or None,
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


class _ReadingStorage(RDBStorage):
    """Optuna's RDB storage over an SQLite file that exists, for reading: RDBStorage's engine and
    sessions without its set-up for writing (creating tables, recording the schema version,
    alembic's migration check), most of the time a read would take, and the import of alembic."""

    def __init__(self, url: str) -> None:  # no super().__init__(): that is the set-up left out
        self.url, self.engine_kwargs = url, {"connect_args": {"timeout": 60}}
        self.skip_compatibility_check = True
        self.heartbeat_interval = self.grace_period = None
        self.heartbeat_stale_trial_callback = self.failed_trial_callback = None
        self.engine = sqlalchemy.engine.create_engine(url, **self.engine_kwargs)
        self.scoped_session = sqlalchemy.orm.scoped_session(sqlalchemy.orm.sessionmaker(bind=self.engine))


R = TypeVar("R")


def _read(url: str, read: Callable[[Any], R]) -> R:
    """`read(storage)` on a storage opened for reading: an SQLite file as it is, and where that
    fails (a schema an older Optuna wrote, say) or for a server, the full storage (which checks
    the schema and says what is wrong in one line)."""
    try:
        parsed = sqlalchemy.engine.make_url(url)
    except (sqlalchemy.exc.ArgumentError, ValueError):
        parsed = None
    if parsed is not None and parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        storage = _ReadingStorage(url)
        try:
            return read(storage)
        except sqlalchemy.exc.SQLAlchemyError:
            pass
        finally:
            storage.engine.dispose()
    return read(open_storage(url))


def open_report(url: str, name: str) -> SweepReport:
    """The report of sweep `name` (for `sweep show`), read without preparing the storage for writing."""
    if sqlite_file_missing(url):
        raise ConfigError(f"no sweep {name!r} in {shown_url(url)} (see `ssltui sweep list`)")
    return _read(url, lambda storage: SweepReport.of(Sweep.open(url, name, storage)))


def list_sweeps(url: str) -> list[dict[str, Any]]:
    """Every ssltui sweep in a storage: name, preset, metric, sampler, trials, best value."""
    if sqlite_file_missing(url):
        return []
    fast = list_sqlite(url)
    return fast if fast is not None else _read(url, _list)


def _list(storage: RDBStorage) -> list[dict[str, Any]]:
    out = []
    for s in optuna.get_all_study_summaries(storage, include_best_trial=True):
        raw = s.user_attrs.get(DEFINITION_ATTR)
        if raw is None:
            continue
        defn = SweepDefinition.model_validate(raw)
        out.append(
            {
                "name": s.study_name,
                "preset": defn.preset,
                "metric": defn.metric,
                "sampler": defn.sampler,
                "params": defn.params,
                "trials": s.n_trials,
                "planned": defn.trials,
                "best": s.best_trial.value if s.best_trial is not None else None,
                "started": s.datetime_start.timestamp() if s.datetime_start else None,
            }
        )
    return sorted(out, key=lambda d: -(d["started"] or 0))
