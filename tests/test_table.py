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
    atomic_write_json(rd.summary_path, {"run_id": rd.id, "preset": "paper", "group": group, "status": "completed",
                                        "methods": sorted({r["method"] for r in results if isinstance(r, dict)}), "results": results,
                                        "started": started, "timings": {"pretrain": 10.0, "linear": 1.5},
                                        "device": "test-device", "data": "synthetic"})
    return rd.id


def _res(method, evaluation, labels, seed, acc):
    return {"method": method, "evaluation": evaluation, "labels": labels, "seed": seed, "test_acc": acc}


def test_paper_numbers_come_from_the_data_file():
    paper = load_paper_table()
    rows = {(r["method"], r["evaluation"]): r["test_acc"] for r in paper["rows"]}
    assert paper["labels"] == [0.01, 0.1]
    assert rows == {("supervised", "supervised"): [50.54, 81.94], ("simclr", "linear"): [64.15, 69.30],
                    ("rotnet", "linear"): [47.31, 55.59], ("rotnet", "semi"): [70.71, 83.64]}


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
    assert [r.name for r in t.rows][:4] == ["Supervised Baseline", "SimCLR Linear Evaluation",
                                            "RotNet Linear Evaluation", "RotNet Semi-supervised"]
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
    """Issue 15 item 11: the same seed in two runs of a group is one seed, not two."""
    store = RunStore(tmp_path)
    _fake_run(store, "g", [_res("simclr", "linear", 0.01, 0, 0.11)], started=1.0)
    _fake_run(store, "g", [_res("simclr", "linear", 0.01, 0, 0.13), _res("simclr", "linear", 0.01, 1, 0.20)],
              started=2.0)
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
    results = [_res("simclr", "linear", 0.01, 0, bad), _res("simclr", "linear", 0.01, 1, 0.6),
               _res("simclr", "linear", float("nan"), 2, 0.7), _res("simclr", "linear", 0.01, None, 0.7),
               _res("simclr", "linear", 0.01, 3.0, 0.7), "not a result"]
    info = RunInfo("r", tmp_path, "completed", results=results, started=1.0)
    t = build_table([info], [{"timings": {"x": float("nan"), "pretrain": 2.0}, "data": "synthetic"}, "junk"])
    cell = next(r for r in t.rows if r.method == "simclr").cells[0]
    assert cell.ours == pytest.approx([60.0]) and cell.seeds == [1]
    assert t.timings == {"pretrain": 2.0}
    json.dumps(t.to_json(), allow_nan=False)  # strict JSON: nothing non-finite got through


def test_nan_in_a_summary_does_not_reach_any_output(run_cli, runs_dir):
    store = RunStore(runs_dir)
    bad = _fake_run(store, "g", [_res("simclr", "linear", 0.01, 0, float("nan")),
                                 _res("simclr", "linear", 0.1, 0, 0.5)], 1.0)
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
