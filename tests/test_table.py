"""`ssltui table`: the paper's numbers from the data file, mean ± std over seeds, grouping, formats."""

from __future__ import annotations

import csv
import io
import json
import statistics

import pytest

from ssltui.core.store import RunInfo, RunStore, atomic_write_json
from ssltui.core.table import build_table, load_paper_table, mean_std


def _fake_run(store: RunStore, group: str, results: list[dict], started: float) -> str:
    rd = store.create("paper")
    atomic_write_json(
        rd.summary_path,
        {
            "run_id": rd.id,
            "preset": "paper",
            "group": group,
            "status": "completed",
            "methods": sorted({r["method"] for r in results if isinstance(r, dict)}),
            "results": results,
            "started": started,
            "timings": {"pretrain": 10.0, "linear": 1.5},
            "device": "test-device",
            "data": "synthetic",
        },
    )
    return rd.id


def _res(method, evaluation, labels, seed, acc):
    return {"method": method, "evaluation": evaluation, "labels": labels, "seed": seed, "test_acc": acc}


def test_paper_numbers_come_from_the_data_file():
    paper = load_paper_table()
    rows = {(r["method"], r["evaluation"]): r["test_acc"] for r in paper["rows"]}
    assert paper["labels"] == [0.01, 0.1]
    assert rows == {
        ("supervised", "supervised"): [50.54, 81.94],
        ("simclr", "linear"): [64.15, 69.30],
        ("rotnet", "linear"): [47.31, 55.59],
        ("rotnet", "semi"): [70.71, 83.64],
    }


def test_mean_and_sample_std():
    mean, std = mean_std([60.0, 62.0, 67.0])
    assert mean == pytest.approx(63.0)
    assert std == pytest.approx(statistics.stdev([60.0, 62.0, 67.0])) == pytest.approx(3.605551, abs=1e-6)
    assert mean_std([61.0]) == (61.0, None)


def test_table_over_seeds_and_extra_rows(tmp_path):
    store = RunStore(tmp_path)
    results = [_res("simclr", "linear", 0.01, s, a) for s, a in enumerate([0.60, 0.62, 0.67])]
    results += [_res("simclr", "semi", 0.1, 0, 0.85)]
    _fake_run(store, "g1", results, 1.0)
    t = build_table(store.list(), [])
    row = next(r for r in t.rows if (r.method, r.evaluation) == ("simclr", "linear"))
    cell = row.cells[0]
    assert cell.labels == 0.01 and cell.paper == 64.15
    assert cell.mean == pytest.approx(63.0) and cell.std == pytest.approx(3.605551, abs=1e-6)
    assert cell.diff == pytest.approx(63.0 - 64.15)
    assert [r.name for r in t.rows][:4] == [
        "Supervised Baseline",
        "SimCLR Linear Evaluation",
        "RotNet Linear Evaluation",
        "RotNet Semi-supervised",
    ]
    extra = t.rows[4]
    assert extra.name == "SimCLR Semi-supervised" and extra.cells[1].mean == pytest.approx(85.0)
    assert extra.cells[1].paper is None


def test_table_cli_groups_and_formats(run_cli, runs_dir):
    store = RunStore(runs_dir)
    a = _fake_run(store, "study-1", [_res("supervised", "supervised", 0.01, 0, 0.5)], 1.0)
    _fake_run(store, "study-1", [_res("supervised", "supervised", 0.01, 1, 0.6)], 2.0)
    _fake_run(store, "other", [_res("rotnet", "semi", 0.1, 0, 0.9)], 3.0)

    js = json.loads(run_cli("table", "study-1", "--json").stdout)
    sup = js["rows"][0]["cells"][0]
    assert js["group"] == "study-1" and len(js["runs"]) == 2
    assert sup["ours_mean"] == pytest.approx(55.0) and sup["seeds"] == 2 and sup["paper"] == 50.54
    assert js["timings"]["pretrain"] == 20.0

    newest = json.loads(run_cli("table", "--json").stdout)  # default: the newest run's group
    assert newest["group"] == "other"
    by_run = json.loads(run_cli("table", a, "--json").stdout)  # a run id selects its group
    assert by_run["group"] == "study-1"

    md = run_cli("table", "study-1", "--format", "markdown").stdout
    assert "| Supervised Baseline | 50.54 | 55.00 ± 7.07 | +4.46 |" in md
    rows = list(csv.DictReader(io.StringIO(run_cli("table", "study-1", "--format", "csv").stdout)))
    assert rows[0]["model"] == "Supervised Baseline" and float(rows[0]["ours_mean"]) == pytest.approx(55.0)
    assert rows[0]["ours_std"] == "7.0711" and rows[0]["diff"] == "4.46"  # to 4 decimals, no float tails
    rich = run_cli("table", "study-1")
    assert rich.returncode == 0 and "RotNet Semi-supervised" in rich.stdout and "70.71" in rich.stdout
    bad = run_cli("table", "nope")
    assert bad.returncode == 2 and "no run or group 'nope'" in bad.stderr


def test_a_seed_counts_once_and_the_newest_result_wins(tmp_path):
    """The same seed in two runs of a group is one seed, not two."""
    store = RunStore(tmp_path)
    _fake_run(store, "g", [_res("simclr", "linear", 0.01, 0, 0.11)], started=1.0)
    _fake_run(
        store, "g", [_res("simclr", "linear", 0.01, 0, 0.13), _res("simclr", "linear", 0.01, 1, 0.20)], started=2.0
    )
    # within one run, a result recorded again (after a resume) replaces the earlier one
    _fake_run(store, "h", [_res("rotnet", "semi", 0.1, 0, 0.50), _res("rotnet", "semi", 0.1, 0, 0.60)], 3.0)
    t = build_table([i for i in store.list() if i.group == "g"], [])
    cell = next(r for r in t.rows if r.evaluation == "linear" and r.method == "simclr").cells[0]
    assert cell.seeds == [0, 1] and cell.ours == pytest.approx([13.0, 20.0])  # run 2's seed 0, not run 1's
    assert cell.mean == pytest.approx(16.5) and t.seed_counts == [2]
    one = build_table([i for i in store.list() if i.group == "h"], [])
    semi = next(r for r in one.rows if r.evaluation == "semi").cells[1]
    assert semi.ours == pytest.approx([60.0]) and semi.std is None


def test_same_seed_twice_reads_as_one_seed_in_every_format(run_cli, runs_dir):
    store = RunStore(runs_dir)
    for started in (1.0, 2.0):
        _fake_run(store, "twice", [_res("supervised", "supervised", 0.01, 0, 0.11)], started)
    js = json.loads(run_cli("table", "twice", "--json").stdout)
    assert js["rows"][0]["cells"][0]["seeds"] == 1 and js["rows"][0]["cells"][0]["ours_std"] is None
    md = run_cli("table", "twice", "--format", "markdown").stdout
    assert "| Supervised Baseline | 50.54 | 11.00 | -39.54 |" in md and "over 1 distinct seed " in md
    assert "± 0.00" not in md


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -0.1, 1.5, "0.5", True, None])
def test_a_broken_accuracy_is_never_pooled(tmp_path, bad):
    results = [
        _res("simclr", "linear", 0.01, 0, bad),
        _res("simclr", "linear", 0.01, 1, 0.6),
        _res("simclr", "linear", float("nan"), 2, 0.7),
        _res("simclr", "linear", 0.01, None, 0.7),
        _res("simclr", "linear", 0.01, 3.0, 0.7),
        "not a result",
    ]
    info = RunInfo("r", tmp_path, "completed", results=results, started=1.0)
    t = build_table([info], [{"timings": {"x": float("nan"), "pretrain": 2.0}, "data": "synthetic"}, "junk"])
    cell = next(r for r in t.rows if r.method == "simclr").cells[0]
    assert cell.ours == pytest.approx([60.0]) and cell.seeds == [1]
    assert t.timings == {"pretrain": 2.0}
    json.dumps(t.to_json(), allow_nan=False)  # strict JSON: nothing non-finite got through


def test_nan_in_a_summary_does_not_reach_any_output(run_cli, runs_dir):
    store = RunStore(runs_dir)
    bad = _fake_run(
        store, "g", [_res("simclr", "linear", 0.01, 0, float("nan")), _res("simclr", "linear", 0.1, 0, 0.5)], 1.0
    )
    _fake_run(store, "g", [_res("simclr", "linear", 0.1, 1, 0.7)], 2.0)
    # The summary with a NaN accuracy does not validate: that run is damaged (with the reason)
    # and left out of its group's table; the other run of the group is pooled as usual.
    listing = {i["run_id"]: i for i in json.loads(run_cli("runs", "--json").stdout)}
    assert listing[bad]["status"] == "damaged" and "test_acc" in listing[bad]["error"]
    js = json.loads(run_cli("table", "g", "--json").stdout, parse_constant=lambda c: pytest.fail(f"{c} in JSON"))
    cells = next(r for r in js["rows"] if r["method"] == "simclr")["cells"]
    assert cells[0]["ours"] == [] and cells[1]["ours"] == [70.0]
    for args in (("table", "g"), ("runs",)):
        proc = run_cli(*args)
        assert proc.returncode == 0 and "nan" not in proc.stdout.lower(), proc.stderr


def test_caveats_name_data_the_paper_did_not_use(tmp_path):
    store = RunStore(tmp_path)
    _fake_run(store, "g", [_res("simclr", "linear", 0.01, 0, 0.6)], 1.0)
    synthetic = build_table(store.list(), [{"data": "synthetic", "device": "cpu"}])
    assert synthetic.caveats == ["ours on synthetic data, the paper's on CIFAR-10: not comparable"]
    assert build_table(store.list(), [{"data": "cifar10", "device": "cuda"}]).caveats == []
    assert build_table(store.list(), [{"data": "folder:/d/cifar10-jpeg.tar.gz"}]).caveats == []
    assert "not recorded" in build_table(store.list(), []).caveats[0]
    empty = build_table([], [])
    assert empty.caveats == ["no finished results in these runs yet"] and not any(r.measured for r in empty.rows)


# ---------------------------------------------------------------- pooling like with like


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    return "[" + ", ".join(_toml_value(x) for x in v) + "]"


def _part(method: str, evaluation: list[str], seeds: list[int], labels: list[float] = (0.01,), **sections) -> dict:
    part = {
        "description": "a part",
        "method": method,
        "evaluation": list(evaluation),
        "labels": list(labels),
        "seeds": list(seeds),
        "linear": {"epochs": 30, "lr": 0.1, "checkpoint_every": 10},
        "pretrain": {"epochs": 100, "lr": 0.3},
        "runtime": {"checkpoint_seconds": 60.0, "amp": "auto"},
    }
    for section, values in sections.items():
        part[section] = {**part.get(section, {}), **values}
    return part


def _config_text(parts: list[dict], data: str = "cifar10", description: str = "run") -> str:
    lines = [
        'preset = "paper"',
        f"description = {json.dumps(description)}",
        f"data = {json.dumps(data)}",
        'device = "cpu"',
    ]
    for part in parts:
        lines.append("\n[[parts]]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in part.items() if not isinstance(v, dict)]
        for section, values in part.items():
            if isinstance(values, dict):
                lines.append(f"\n[parts.{section}]")
                lines += [f"{k} = {_toml_value(v)}" for k, v in values.items()]
    return "\n".join(lines) + "\n"


def _run(
    store: RunStore,
    group: str,
    results: list[dict],
    started: float,
    parts: list[dict] | None,
    status: str = "completed",
    sweep: dict | None = None,
    **config,
) -> str:
    rid = _fake_run(store, group, results, started)
    doc = json.loads((store.root / rid / "summary.json").read_text())
    doc["status"] = status
    if sweep is not None:
        doc["sweep"] = sweep
    atomic_write_json(store.root / rid / "summary.json", doc)
    if parts is not None:
        (store.root / rid / "config.toml").write_text(_config_text(parts, **config))
    return rid


def test_results_pool_across_seeds_only_when_every_other_setting_agrees(tmp_path):
    store = RunStore(tmp_path)
    # seeds 0 and 2 with the same settings (the description, labels list, evaluations and
    # checkpointing differ: none of them changes a number) pool; seed 1 trained its probe at lr 0.2
    _run(store, "g", [_res("simclr", "linear", 0.01, 0, 0.60)], 1.0, [_part("simclr", ["linear"], [0])])
    _run(
        store,
        "g",
        [_res("simclr", "linear", 0.01, 1, 0.30)],
        2.0,
        [_part("simclr", ["linear"], [1], linear={"lr": 0.2})],
    )
    _run(
        store,
        "g",
        [_res("simclr", "linear", 0.01, 2, 0.64)],
        3.0,
        [
            {
                **_part(
                    "simclr",
                    ["linear", "knn"],
                    [2],
                    labels=[0.01, 0.1],
                    linear={"checkpoint_every": 5},
                    runtime={"checkpoint_seconds": 30.0},
                ),
                "description": "another",
            }
        ],
        description="other",
    )
    t = build_table(store.list(), [])
    rows = [r for r in t.rows if (r.method, r.evaluation) == ("simclr", "linear")]
    assert len(rows) == 2, [r.name for r in rows]
    pooled, alone = sorted(rows, key=lambda r: -len(r.cells[0].ours))
    assert pooled.cells[0].seeds == [0, 2] and pooled.cells[0].mean == pytest.approx(62.0)
    assert alone.cells[0].seeds == [1] and alone.cells[0].mean == pytest.approx(30.0)
    assert "linear.lr=0.1" in pooled.name and "linear.lr=0.2" in alone.name  # what differs, in the row's name
    assert pooled.differs == {"linear.lr": 0.1} and alone.differs == {"linear.lr": 0.2}
    assert t.to_json()["rows"][1]["differs"] == {"linear.lr": 0.1}


def test_results_on_other_data_or_pretraining_are_separate_rows(tmp_path):
    store = RunStore(tmp_path)
    _run(store, "g", [_res("rotnet", "linear", 0.01, 0, 0.40)], 1.0, [_part("rotnet", ["linear"], [0])])
    _run(
        store, "g", [_res("rotnet", "linear", 0.01, 1, 0.50)], 2.0, [_part("rotnet", ["linear"], [1])], data="synthetic"
    )
    _run(
        store,
        "g",
        [_res("rotnet", "linear", 0.01, 2, 0.45)],
        3.0,
        [_part("rotnet", ["linear"], [2], pretrain={"epochs": 200})],
    )
    rows = [r for r in build_table(store.list(), []).rows if r.method == "rotnet" and r.evaluation == "linear"]
    assert sorted(len(r.cells[0].ours) for r in rows) == [1, 1, 1]
    names = " | ".join(r.name for r in rows)
    assert "data=synthetic" in names and "pretrain.epochs=200" in names


def test_default_table_is_the_newest_group_with_a_finished_result(run_cli, runs_dir):
    store = RunStore(runs_dir)
    _run(
        store,
        "finished",
        [_res("supervised", "supervised", 0.01, 0, 0.5)],
        1.0,
        [_part("supervised", ["supervised"], [0])],
    )
    _run(store, "stopped", [], 2.0, [_part("supervised", ["supervised"], [0])], status="interrupted")
    js = json.loads(run_cli("table", "--json").stdout)
    assert js["group"] == "finished" and js["rows"][0]["cells"][0]["ours_mean"] == pytest.approx(50.0)
    stopped = json.loads(run_cli("table", "stopped", "--json").stdout)  # still there when asked for by name
    assert stopped["group"] == "stopped" and "no finished results" in stopped["caveats"][-1]


def test_table_of_a_sweep_shows_the_chosen_trial_and_says_so(run_cli, runs_dir):
    from optuna.trial import TrialState

    from ssltui.core.sweep.study import Sweep, storage_url
    from tests.sweep_fixtures import _definition, _trial

    store = RunStore(runs_dir)
    parts = lambda lr: [_part("simclr", ["linear"], [0], linear={"lr": lr})]  # noqa: E731
    chosen = _run(
        store,
        "lr-sweep",
        [_res("simclr", "linear", 0.01, 0, 0.664)],
        1.0,
        parts(0.1),
        sweep={"name": "lr-sweep", "trial": 0, "params": {"linear.lr": 0.1}},
    )
    other = _run(
        store,
        "lr-sweep",
        [_res("simclr", "linear", 0.01, 0, 0.367)],
        2.0,
        parts(0.2),
        sweep={"name": "lr-sweep", "trial": 1, "params": {"linear.lr": 0.2}},
    )
    sweep = Sweep.start(
        storage_url(None, store.sweeps_dir()),
        "lr-sweep",
        _definition(["linear.lr=log:0.001:1.0", "linear.weight_decay=0.0,0.0005"], "tpe", 2, False),
    )
    sweep.study.add_trial(_trial(TrialState.COMPLETE, 0.1, 0.0, 0.66, chosen))
    sweep.study.add_trial(_trial(TrialState.COMPLETE, 0.2, 0.0, 0.37, other))
    js = json.loads(run_cli("table", "lr-sweep", "--json").stdout)
    (row,) = [r for r in js["rows"] if r["method"] == "simclr" and r["evaluation"] == "linear"]
    assert row["cells"][0]["ours"] == pytest.approx([66.4])  # the chosen trial's, not the newest trial's 36.70
    assert js["runs"] == [chosen]
    assert any("chosen trial 0" in c and "ssltui sweep show lr-sweep" in c for c in js["caveats"]), js["caveats"]
    rich = run_cli("table", "lr-sweep", COLUMNS="200")
    assert "chosen trial 0" in rich.stdout and "36.70" not in rich.stdout
