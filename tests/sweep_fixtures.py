"""Fixed sweeps for the TUI's sweep screen: two studies in the run store's SQLite storage, made
of trials with fixed parameters and values (no training), beside the fixture runs of
tests/tui_fixtures.py. Trial runs point at those runs, so a trial opens a real run folder.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState, create_trial

from ssltui.core.config import RunConfig, to_dict
from ssltui.core.store import RunStore
from ssltui.core.sweep.space import SweepDefinition
from ssltui.core.sweep.study import Sweep, storage_url
from tests.tui_fixtures import SMOKE_ID, STUDY_ID, make_fixture_runs

SWEEP = "probe-lr"  # the newest: lr (log) x weight decay, TPE, pruning on
OTHER = "temperature"  # a grid of one parameter
REMOTE_RUN = "20260103-080000-probe-lr-t4-0f0f0f"  # a trial that ran on another machine

LR = FloatDistribution(1e-3, 1.0, log=True)
WD = CategoricalDistribution([0.0, 5e-4])
# (state, lr, weight decay, value or the last reported one, run id)
TRIALS = [
    (TrialState.COMPLETE, 0.1, 0.0, 0.4625, STUDY_ID),
    (TrialState.COMPLETE, 0.01, 0.0, 0.3810, SMOKE_ID),
    (TrialState.COMPLETE, 0.3, 5e-4, 0.4490, STUDY_ID),
    (TrialState.PRUNED, 0.002, 5e-4, 0.1420, SMOKE_ID),
    (TrialState.COMPLETE, 0.9, 0.0, 0.3360, REMOTE_RUN),
    (TrialState.COMPLETE, 0.05, 5e-4, 0.4410, STUDY_ID),
    (TrialState.RUNNING, 0.2, 0.0, 0.4050, SMOKE_ID),
]


def sweep_command(epochs: int, *args: str) -> list[str]:
    """`ssltui sweep` on tiny supervised trials (90 labelled synthetic images, seconds each)."""
    return [
        sys.executable,
        "-m",
        "ssltui",
        "sweep",
        "--preset",
        "smoke",
        "--data",
        "synthetic",
        "--device",
        "cpu",
        "--labels",
        "0.5",
        "--set",
        "data.synthetic_train_per_class=20",
        "--set",
        "data.synthetic_test_per_class=10",
        "--set",
        "supervised.batch_size=16",
        "--set",
        f"supervised.epochs={epochs}",
        "--set",
        "runtime.featuremaps=false",
        "--json",
        *args,
    ]


def _definition(params: list[str], sampler: str, trials: int, prune: bool) -> SweepDefinition:
    return SweepDefinition(
        preset="simclr-tuned",
        parts=[to_dict(RunConfig(method="simclr", evaluation=["linear"]))],
        params=params,
        sampler=sampler,
        trials=trials,
        prune=prune,
        data="cifar10",
    )


def _trial(state: TrialState, lr: float, wd: float, value: float, run_id: str) -> optuna.trial.FrozenTrial:
    finished = state == TrialState.COMPLETE
    reports = {100_000 + e: round(value * e / 3, 4) for e in (1, 2, 3)}  # the linear phase's epochs
    return create_trial(
        state=state,
        params={"linear.lr": lr, "linear.weight_decay": wd},
        distributions={"linear.lr": LR, "linear.weight_decay": WD},
        value=value if finished else None,
        intermediate_values=reports,
        user_attrs={"run_id": run_id, "host": "fixture", **({"test_acc": 0.4512} if finished else {})},
    )


def make_fixture_sweeps(root: Path) -> Path:
    """The fixture runs, one of them marked as a trial of OTHER, and the two sweeps."""
    runs = make_fixture_runs(root)
    store = RunStore(runs)
    url = storage_url(None, store.sweeps_dir())
    other = Sweep.start(url, OTHER, _definition(["simclr.temperature=0.2,0.5"], "grid", 2, False))
    for _t, value in ((0.2, 0.40), (0.5, 0.44)):
        trial = other.next_trial()
        trial.suggest_categorical("simclr.temperature", [0.2, 0.5])
        other.study.tell(trial, value)
    sweep = Sweep.start(
        url, SWEEP, _definition(["linear.lr=log:0.001:1.0", "linear.weight_decay=0.0,0.0005"], "tpe", 10, True)
    )
    for trial in TRIALS:
        sweep.study.add_trial(_trial(*trial))
    summary = runs / SMOKE_ID / "summary.json"
    doc = json.loads(summary.read_text())
    doc["sweep"] = {"name": OTHER, "trial": 1, "params": {"simclr.temperature": 0.5}}
    summary.write_text(json.dumps(doc, indent=2) + "\n")
    return runs
