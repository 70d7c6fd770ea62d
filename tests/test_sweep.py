"""Sweeps (Optuna) on tiny trials: a RotNet encoder pretrained once (1 epoch of 180 synthetic
images, reused from the encoder cache), then linear probes, seconds each.

Grid and sampled sweeps, the pruning of a hopeless trial, an interrupted worker whose trial is
queued again and resumed without being counted twice, a dead worker's trial going stale,
typed parameter errors (exit 2), and the trials as ordinary runs for `runs`, `table`, `show`.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
from conftest import cli_env, last_json

from ssltui.core.errors import ConfigError, RunInterrupted
from ssltui.core.events import Epoch, PhaseRef
from ssltui.core.presets import resolve
from ssltui.core.store import RunDir, RunStore
from ssltui.core.sweep.report import SweepReport
from ssltui.core.sweep.space import make_definition, parse_param, parse_params

optuna = pytest.importorskip("optuna")
from ssltui.core.sweep import study as study_mod  # noqa: E402
from ssltui.core.sweep.report import list_sweeps  # noqa: E402
from ssltui.core.sweep.study import Sweep  # noqa: E402
from ssltui.trainer.sweep_worker import SweepWorker, objective  # noqa: E402
from tests.sweep_fixtures import sweep_command  # noqa: E402

TINY = [
    "data.synthetic_train_per_class=20",
    "data.synthetic_test_per_class=10",
    "pretrain.epochs=1",
    "pretrain.batch_size=64",
    "runtime.featuremaps=false",
    "linear.checkpoint_every=5",
    "linear.val_passes=3",
]  # the probe validates at epochs 10, 20 and 30 of 30
CHANCE = 0.1


@pytest.fixture(scope="module")
def store(tmp_path_factory, data_dir) -> RunStore:
    """One run store for the module: its encoder cache pretrains the RotNet encoder once."""
    return RunStore(tmp_path_factory.mktemp("sweep-runs"))


def definition(params: list[str], sampler: str | None = None, trials: int | None = None, prune: bool = False):
    plan = resolve("smoke", method="rotnet", evaluation=["linear"], labels=[1.0], sets=TINY)
    return make_definition(plan, parse_params(params), sampler, trials, "val_acc", prune, 2, 1, 0, "synthetic")


def start(store: RunStore, name: str, defn) -> Sweep:
    return Sweep.start(f"sqlite:///{store.sweeps_dir() / 'optuna.db'}", name, defn)


def worker(sweep: Sweep, store: RunStore, **kw) -> SweepWorker:
    return SweepWorker(sweep, store, data="synthetic", device="cpu", **kw)


# ---------------------------------------------------------------- parameters (no training)


@pytest.mark.parametrize(
    "text, kind, low, high, choices",
    [
        ("pretrain.lr=log:0.3:5", "log", 0.3, 5.0, ()),
        ("linear.epochs=int:10:90", "int", 10, 90, ()),
        ("linear.epochs=10:90", "uniform", 10, 90, ()),  # an integer setting samples integers
        ("simclr.temperature=0.1:0.9", "uniform", 0.1, 0.9, ()),
        ("simclr.temperature=0.2,0.5", "choice", None, None, (0.2, 0.5)),
        ("pretrain.optimizer=sgd,lars", "choice", None, None, ("sgd", "lars")),
        ("semi.augment=true,false", "choice", None, None, (True, False)),
    ],
)
def test_param_specs_are_typed(text, kind, low, high, choices):
    p = parse_param(text)
    assert (p.kind, p.low, p.high, p.choices) == (kind, low, high, choices)
    assert type(p.low) is type(low) and parse_param(p.spec()) == p  # the canonical spec reads back


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("pretrain.lrr=0.1,0.2", "unknown key 'pretrain.lrr' (did you mean 'lr'?)"),
        ("pretrain.lr=log:0:5", "a log range needs LO > 0"),
        ("pretrain.lr=-1:5", "pretrain.lr: -1.0 is out of range (must be > 0.0)"),
        ("linear.epochs=int:1.5:9", "'1.5' is not an integer"),
        ("semi.frozen_stages=0,4", "semi.frozen_stages: 4 is out of range (must be <= 3)"),
        ("pretrain.optimizer=sgd,adam", "'adam' is not one of sgd, lars, adamw"),
        ("pretrain.optimizer=1:2", "pretrain.optimizer is not a number"),
        ("pretrain.milestones=30,60", "a list setting cannot be swept"),
        ("pretrain.lr", "expected KEY=SPEC"),
        ("pretrain.lr=5:0.3", "LO < HI"),
    ],
)
def test_bad_params_name_what_is_wrong(text, fragment):
    with pytest.raises(ConfigError, match="^--param") as err:
        parse_param(text)
    assert fragment in err.value.message


def test_a_definition_is_checked_whole_before_any_trial():
    with pytest.raises(ConfigError, match="warmup_epochs: 50.0 exceeds linear.epochs=30"):
        definition(["linear.warmup_epochs=0,50"])  # each value alone is in range; with the plan it is not
    with pytest.raises(ConfigError, match="a range; list its values"):
        definition(["linear.lr=log:0.01:1"], sampler="grid")
    with pytest.raises(ConfigError, match="a grid runs each of its 6 points once"):
        definition(["linear.lr=0.1,0.2,0.3", "linear.weight_decay=0,1e-4"], trials=3)
    with pytest.raises(ConfigError, match="knn_acc"):
        make_definition(
            resolve("smoke"),
            parse_params(["supervised.lr=0.1,0.2"]),
            None,
            None,
            "knn_acc",
            False,
            2,
            1,
            None,
            "synthetic",
        )
    grid = definition(["linear.lr=0.1,0.2,0.3", "linear.weight_decay=0,1e-4"])
    assert grid.sampler == "grid" and grid.trials == 6 and len({json.dumps(p) for p in grid.grid()}) == 6
    assert definition(["linear.lr=log:0.01:1"]).sampler == "tpe"
    assert grid.default_name() == definition(["linear.lr=0.1,0.2,0.3", "linear.weight_decay=0,1e-4"]).default_name()


def test_a_new_sweep_reads_its_presets_data_source_as_run_does():
    from ssltui.core.sweep.space import define_sweep

    specs = parse_params(["supervised.lr=0.1,0.2"])
    assert resolve("smoke").data == "synthetic"
    assert define_sweep("smoke", specs).data == "synthetic"
    assert define_sweep("smoke", specs, data="cifar10").data == "cifar10"
    assert resolve("supervised").data is None and define_sweep("supervised", specs).data == "cifar10"


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--param", "supervised.batch_size=8,x"], "expected an integer, got 'x'"),
        (["--param", "supervised.lr=0.1,0.2", "--metric", "test_acc"], "--metric: 'test_acc'"),
        (["--param", "supervised.lr=0.1,0.2", "--storage", "nosuchdb://x"], "--storage"),
        (["--name", "x", "--set", "supervised.lr=0.1"], "--set defines a new sweep and needs --param"),
        (["show", "no-such-sweep"], "no sweep 'no-such-sweep'"),
    ],
)
def test_cli_refuses_bad_input_in_one_line_exit_2(run_cli, args, fragment):
    proc = (
        run_cli("sweep", "--data", "synthetic", *args, timeout=120)
        if args[0] != "show"
        else run_cli("sweep", *args, timeout=120)
    )
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("ssltui: error")]
    assert len(errors) == 1 and fragment in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr


def test_same_name_other_definition_is_refused(store):
    start(store, "clash", definition(["linear.lr=0.1,0.2"]))
    with pytest.raises(ConfigError, match="already exists with another definition.*params"):
        start(store, "clash", definition(["linear.lr=0.1,0.3"]))


# ---------------------------------------------------------------- trials


@pytest.fixture(scope="module")
def grid_prune(store):
    """A grid over the probe's learning rate with pruning on: (sweep, this worker's outcomes)."""
    sweep = start(store, "grid-prune", definition(["linear.lr=0.1,0.05,1e-5"], prune=True))
    return sweep, worker(sweep, store).run()


def test_grid_runs_every_point_and_prunes_a_hopeless_trial(store, grid_prune):
    """lr 1e-5 leaves the probe at chance; after two complete trials the median rule stops it
    at its first validation measurement (epoch 10 of 30), and the run store says `pruned`."""
    sweep, outcomes = grid_prune
    assert [(o.number, o.state) for o in outcomes] == [(0, "complete"), (1, "complete"), (2, "pruned")]
    assert all(o.value > CHANCE + 0.1 for o in outcomes[:2]), outcomes
    assert sweep.next_trial() is None  # every grid point ran once
    pruned = RunDir(store.root / outcomes[2].run_id)
    info = pruned.info()
    assert info.status == "pruned" and "median rule" in info.error
    assert info.summary.sweep.name == "grid-prune" and info.summary.sweep.trial == 2
    assert info.summary.sweep.params == {"linear.lr": 1e-5}
    epochs = [e.epoch for e in pruned.read_events() if isinstance(e, Epoch) and e.kind == "linear"]
    assert max(epochs) == 10 < 30 and list(pruned.checkpoints_dir.glob("*.pt"))
    frozen = sweep.study.get_trials()
    assert [t.state.name for t in frozen] == ["COMPLETE", "COMPLETE", "PRUNED"]
    at_10 = [t.intermediate_values[1 * 100_000 + 10] for t in frozen]  # phase 1 (linear), epoch 10
    # Below their median, near chance (float32 accuracies: 4 of 20 is 0.2000000030).
    assert at_10[2] < (at_10[0] + at_10[1]) / 2 and at_10[2] <= CHANCE + 0.1 + 1e-6
    listed = {s["name"]: s for s in list_sweeps(sweep.url)}
    assert listed["grid-prune"]["trials"] == 3 and listed["grid-prune"]["best"] == max(o.value for o in outcomes[:2])

    report = SweepReport.of(sweep)
    assert [r.number for r in report.rows][2] == 2 and report.best.number in (0, 1)
    assert report.best.test_acc is not None  # the chosen trial's test accuracy, read from its run
    assert all(r.test_acc is None for r in report.rows[1:])  # and no other trial's


@pytest.mark.parametrize("sampler", ["random", "tpe"])
def test_samplers_run_the_trial_count_inside_the_ranges(store, sampler):
    sweep = start(
        store,
        f"sampled-{sampler}",
        definition(
            ["linear.lr=log:0.01:1", "linear.weight_decay=0:1e-3", "linear.batch_size=16,32"], sampler=sampler, trials=3
        ),
    )
    outcomes = worker(sweep, store).run()
    assert [o.state for o in outcomes] == ["complete"] * 3 and len(sweep.study.get_trials()) == 3
    for o in outcomes:
        lr, wd, bs = o.params["linear.lr"], o.params["linear.weight_decay"], o.params["linear.batch_size"]
        assert isinstance(lr, float) and 0.01 <= lr <= 1 and 0 <= wd <= 1e-3 and bs in (16, 32)
        config = (store.root / o.run_id / "config.toml").read_text()
        assert f"batch_size = {bs}" in config  # the sampled values are the run's settings
    assert start(store, f"sampled-{sampler}", sweep.definition).next_trial() is None  # rerun: nothing left


def test_an_interrupted_trial_is_queued_again_and_resumed_not_counted_twice(store):
    """A stop (what Ctrl-C does) in the second trial: the finished trial stays, the stopped one
    is FAIL and queued again with its run id; the next worker resumes that run."""
    sweep = start(store, "interrupt", definition(["linear.lr=0.1,0.05,0.02"]))
    trials_started = []

    def progress():  # a fresh listener per trial, as the CLI's progress display
        trials_started.append(len(trials_started))
        second = len(trials_started) == 2

        def listener(event):
            if second and isinstance(event, Epoch) and event.kind == "linear" and event.epoch == 5:
                first.request_stop("stopped by SIGINT")  # what the CLI's signal handler does

        return listener

    first = worker(sweep, store, progress=progress)
    with pytest.raises(RunInterrupted, match="continues the sweep"):
        first.run()
    assert [(o.number, o.state) for o in first.outcomes] == [(0, "complete"), (1, "interrupted")]
    stopped = RunDir(store.root / first.outcomes[1].run_id)
    assert stopped.info().status == "interrupted"
    states = {t.number: t.state.name for t in sweep.study.get_trials()}
    assert states == {0: "COMPLETE", 1: "FAIL", 2: "WAITING", 3: "WAITING"}
    retry = sweep.study.get_trials()[3]
    assert retry.system_attrs["failed_trial"] == 1 and retry.params == {"linear.lr": 0.05}
    assert retry.user_attrs["run_id"] == stopped.id

    again = Sweep.open(sweep.url, "interrupt")  # a new worker joins by name
    second = worker(again, store).run()
    assert sorted(o.number for o in second) == [2, 3]
    resumed = next(o for o in second if o.number == 3)
    assert resumed.run_id == stopped.id and resumed.state == "complete"
    summary = stopped.read_summary()
    assert summary.status == "completed" and summary.resumes == 1 and summary.sweep.trial == 3
    report = SweepReport.of(again)
    assert report.counts() == {"complete": 3} and report.replaced == 1  # trial 1 is not listed
    assert sorted(r.params["linear.lr"] for r in report.rows) == [0.02, 0.05, 0.1]  # each point once
    assert again.counted() == 3


def test_a_dead_workers_trial_goes_stale_and_is_queued_again(store, monkeypatch):
    """A worker killed with SIGKILL sends no more heartbeats: the next worker fails its trial and
    queues it again (with its run id) once the grace period has passed."""
    monkeypatch.setattr(study_mod, "GRACE_SECONDS", 1)
    sweep = start(store, "stale", definition(["linear.lr=0.1,0.2"]))
    trial = sweep.next_trial()  # a heartbeat is written at once
    trial.set_user_attr("run_id", "20260101-000000-x-abcdef")
    time.sleep(2.5)
    Sweep.open(sweep.url, "stale").fail_stale()
    trials = sweep.study.get_trials()
    assert [t.state.name for t in trials] == ["FAIL", "WAITING", "WAITING"]
    assert trials[2].system_attrs["failed_trial"] == 0 and trials[2].user_attrs["run_id"].endswith("abcdef")
    assert sweep.counted() == 2


def test_knn_metric_reads_every_process_events(tmp_path):
    run = RunDir(tmp_path)
    ref = PhaseRef.pretraining("simclr", 0, "abcdef12")
    for epoch, acc in ((1, 0.2), (2, 0.4)):
        run.append_event(Epoch(**ref.model_dump(), epoch=epoch, epochs=2, step=epoch, loss=1.0, lr=0.1, knn_acc=acc))
    from ssltui.core.summary import RunSummary

    assert objective("knn_acc", RunSummary(), run) == pytest.approx(0.4)
    assert objective("val_acc", RunSummary(), run) is None


# ---------------------------------------------------------------- the trials as runs


def test_trials_are_ordinary_runs_for_runs_table_and_show(store, grid_prune, run_cli):
    """The grid sweep above, through the CLI: `runs` lists its trials grouped under it, `table`
    pools them, `sweep show` ranks them and gives the test accuracy of the chosen one only."""
    env = {"SSLTUI_RUNS_DIR": str(store.root)}
    proc = run_cli("runs", "--json", **env)
    assert proc.returncode == 0, proc.stderr
    trials = [r for r in json.loads(proc.stdout) if r["group"] == "grid-prune"]
    assert sorted(r["status"] for r in trials) == ["completed", "completed", "pruned"]
    proc = run_cli("table", "grid-prune", "--json", **env)
    assert proc.returncode == 0, proc.stderr
    rows = {(r["method"], r["evaluation"]): r for r in last_json(proc.stdout)["rows"]}
    cell = next(c for c in rows[("rotnet", "linear")]["cells"] if c["labels"] == 1.0)
    assert cell["ours"] and cell["ours_mean"] > 100 * CHANCE
    proc = run_cli("sweep", "show", "grid-prune", "--json", **env)
    assert proc.returncode == 0, proc.stderr
    shown = json.loads(proc.stdout)
    assert [t["state"] for t in shown["trials"]] == ["complete", "complete", "pruned"]
    assert shown["best"]["test_acc"] > CHANCE and all("test_acc" not in t for t in shown["trials"])
    text = run_cli("sweep", "show", "grid-prune", **env)
    assert text.returncode == 0 and "chosen: trial" in text.stdout and "val_acc % vs linear.lr" in text.stdout


@pytest.mark.slow
def test_sweep_cli_interrupt_exits_130_and_the_same_command_finishes(runs_dir, data_dir):
    """The real command: SIGINT in the second trial exits 130 with the sweep's JSON; the same
    command again resumes the stopped run and finishes the grid, each point once."""
    args = sweep_command(4, "--param", "supervised.lr=0.1,0.05")
    env = cli_env(runs_dir, data_dir)
    proc = subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, stdin=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 240
    while not list(Path(runs_dir).glob("*-t1-*/checkpoints/*.pt")):  # trial 1 has trained an epoch
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.poll() else "timeout"
        time.sleep(0.2)
    proc.send_signal(2)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    first = last_json(out)
    assert first["status"] == "interrupted" and first["counts"] == {"complete": 1, "waiting": 1}
    assert "Traceback" not in err
    again = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300, stdin=subprocess.DEVNULL)
    assert again.returncode == 0, again.stderr
    done = last_json(again.stdout)
    assert done["status"] == "completed" and done["counts"] == {"complete": 2}
    assert sorted(t["params"]["supervised.lr"] for t in done["trials"]) == [0.05, 0.1]
    assert "resuming" in again.stderr and len(list(Path(runs_dir).glob("*-t*-*"))) == 2  # no third run
