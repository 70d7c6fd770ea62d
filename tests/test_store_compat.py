"""The run store's contract: every event kind round-trips through metrics.jsonl into the same
typed class, summary.json is validated by one model, and a run store written before the typed
events (schema 1, tests/fixtures/runstore-v1) still lists, shows and tables."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import REPO, last_json

from ssltui.core import events as ev
from ssltui.core.store import RunDir, RunStore
from ssltui.core.summary import SummaryDamaged, parse_summary

V1 = REPO / "tests" / "fixtures" / "runstore-v1"
REF = ev.PhaseRef.evaluating(0, "rotnet", "semi", 0.1, 2)

ONE_OF_EACH = [
    ev.RunStart(run_id="r", preset="paper", device="cpu", parts=4, phases=10, schema_version=ev.SCHEMA_VERSION),
    ev.DataLoaded(source="synthetic", train=90, val=10, test=20, classes=["a", "b"], load_seconds=0.5),
    ev.PhaseStart(
        **REF.model_dump(), epochs=3, steps_per_epoch=7, batch_size=64, start_epoch=1, worker=2, device="cuda:1"
    ),
    ev.Step(**REF.model_dump(), epoch=1, step=9, loss=1.25, lr=0.05, images_per_s=1234.5),
    ev.Epoch(
        **REF.model_dump(),
        epoch=2,
        epochs=3,
        step=14,
        loss=1.0,
        lr=0.01,
        images_per_s=99.0,
        seconds=2.5,
        val_acc=0.5,
        knn_acc=0.25,
        rot_acc=0.75,
        knn_random=0.125,
    ),
    ev.Resume(**REF.model_dump(), epoch=1, step_in_epoch=3),
    ev.PhaseEnd(**REF.model_dump(), seconds=12.5),
    ev.Result(
        method="rotnet",
        evaluation="semi",
        labels=0.1,
        seed=2,
        test_acc=0.625,
        val_acc=0.5,
        label_count=500,
        seconds=3.0,
        part=0,
        preset_description="d",
        probe="plain",
    ),
    ev.Log(level="warning", message="a [bold]message[/] with markup-like text"),
    ev.RunEnd(status="interrupted", error="stopped by SIGINT"),
    ev.RunEnd(status="pruned", error="pruned (median rule): validation 10.00% after epoch 10"),
]


def test_every_event_kind_round_trips_through_a_metrics_file(tmp_path: Path) -> None:
    assert {type(e) for e in ONE_OF_EACH} == set(ev.EVENT_TYPES)  # a new kind must be added here
    run = RunDir(tmp_path / "r")
    run.path.mkdir()
    for e in ONE_OF_EACH:
        run.append_event(e)
    back = run.read_events()
    assert back == ONE_OF_EACH
    assert all(type(a) is type(b) for a, b in zip(back, ONE_OF_EACH))
    for e in back:  # every phase event carries its phase's identity, never parsed from the id
        if isinstance(e, ev.PhaseEvent):
            assert e.ref == REF and e.ref.label() == "rotnet semi 10% s2"


def test_damaged_lines_are_skipped_not_fatal(tmp_path: Path) -> None:
    lines = [
        json.dumps(ONE_OF_EACH[3].to_json()),
        '{"event": "step", "loss": "high"}',
        "not json",
        '{"event": "from_the_future", "x": 1}',
        "[1, 2]",
        json.dumps(ONE_OF_EACH[4].to_json()),
        '{"ev',
    ]
    (tmp_path / "metrics.jsonl").write_text("\n".join(lines))
    assert RunDir(tmp_path).read_events() == [ONE_OF_EACH[3], ONE_OF_EACH[4]]


@pytest.mark.parametrize(
    "bad, reason",
    [
        ({"started": 1e20}, "started"),
        ({"status": "exploded"}, "status"),
        (
            {"results": [{"method": "m", "evaluation": "e", "labels": 0.1, "seed": 0, "test_acc": float("nan")}]},
            "test_acc",
        ),
        ({"results": [{"method": "m", "evaluation": "e", "labels": 0.1, "seed": 0, "test_acc": 1e300}]}, "test_acc"),
        ({"labels": "many"}, "labels"),
    ],
)
def test_summary_model_refuses_what_a_listing_cannot_show(bad: dict, reason: str) -> None:
    good = {"run_id": "x", "status": "completed", "started": 1.0}
    parse_summary(json.dumps(good).encode())
    with pytest.raises(SummaryDamaged, match=reason):
        parse_summary(json.dumps({**good, **bad}).encode())


def test_a_pruned_sweep_trial_is_a_run_like_any_other(tmp_path: Path) -> None:
    """Status `pruned` and the `sweep` record (name, trial, values) validate and list; a summary
    without them (every run before sweeps) still does."""
    run = RunDir(tmp_path / "t")
    run.path.mkdir()
    run.write_summary(
        parse_summary(
            json.dumps(
                {
                    "run_id": "t",
                    "status": "pruned",
                    "group": "lr-sweep",
                    "started": 1.0,
                    "error": "pruned (median rule)",
                    "sweep": {"name": "lr-sweep", "trial": 7, "params": {"linear.lr": 0.3, "linear.nesterov": True}},
                }
            ).encode()
        )
    )
    info = RunStore(tmp_path).list()[0]
    assert (info.status, info.group, info.error) == ("pruned", "lr-sweep", "pruned (median rule)")
    assert info.summary.sweep.trial == 7 and info.summary.sweep.params == {"linear.lr": 0.3, "linear.nesterov": True}
    assert parse_summary(b'{"run_id": "x", "status": "completed"}').sweep is None
    with pytest.raises(SummaryDamaged, match="sweep.trial"):
        parse_summary(json.dumps({"run_id": "x", "sweep": {"name": "s", "trial": -1}}).encode())


@pytest.fixture
def v1_store(tmp_path: Path) -> Path:
    root = tmp_path / "runs"
    shutil.copytree(V1, root, ignore=shutil.ignore_patterns("README.md"))
    return root


def test_a_schema_1_store_lists_shows_and_tables(run_cli, v1_store: Path, monkeypatch) -> None:
    monkeypatch.setenv("SSLTUI_RUNS_DIR", str(v1_store))
    infos = {i.id: i for i in RunStore(v1_store).list()}
    assert {i.status for i in infos.values()} == {"completed", "failed", "interrupted"}
    study = next(i for i in infos.values() if i.group == "v1-study" and i.status == "completed")
    assert len(study.results) == 8 and study.summary.schema_version == 1
    events = RunDir(study.path).read_events()
    kinds = {type(e).__name__ for e in events}
    assert {"RunStart", "DataLoaded", "PhaseStart", "Step", "Epoch", "PhaseEnd", "Result", "RunEnd"} <= kinds
    assert len(events) == len((study.path / "metrics.jsonl").read_text().splitlines())  # nothing dropped

    r = run_cli("runs", "--runs-dir", str(v1_store), "--json")
    assert r.returncode == 0, r.stderr
    assert len(json.loads(r.stdout)) == 4
    r = run_cli("show", study.id, "--runs-dir", str(v1_store), "--json")
    assert r.returncode == 0, r.stderr
    shown = json.loads(r.stdout)
    assert shown["epochs"] and shown["summary"]["results"][0]["method"] == "supervised"
    r = run_cli("show", study.id, "--runs-dir", str(v1_store))
    assert r.returncode == 0 and "loss" in r.stdout, r.stderr
    r = run_cli("table", "v1-study", "--runs-dir", str(v1_store), "--json")
    assert r.returncode == 0, r.stderr
    table = last_json(r.stdout)
    cells = {(row["method"], row["evaluation"]): row["cells"] for row in table["rows"]}
    assert cells[("rotnet", "semi")][0]["ours"] and cells[("simclr", "linear")][1]["ours"]
