"""The paper study end to end at tiny scale: eight cells, one pretraining per method, the table."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from conftest import last_json

from ssltui.core.presets import resolve
from ssltui.core.table import load_paper_table
from ssltui.trainer.optim import peak_lr

CELLS = {
    (m, e, f)
    for m, e in [("supervised", "supervised"), ("simclr", "linear"), ("rotnet", "linear"), ("rotnet", "semi")]
    for f in (0.01, 0.1)
}


def test_paper_presets_cover_table1():
    paper = resolve("paper")
    pairs = {(p.method, e) for p in paper.parts for e in p.evaluation}
    assert pairs == {(m, e) for m, e, _ in CELLS}
    assert all(p.labels == [0.01, 0.1] for p in paper.parts)
    # RotNet's two rows share one pretraining: identical settings in both presets.
    rot = [p for p in paper.parts if p.method == "rotnet"]
    assert rot[0].pretrain == rot[1].pretrain and rot[0].rotnet == rot[1].rotnet
    simclr = next(p for p in paper.parts if p.method == "simclr").pretrain
    assert (
        simclr.epochs,
        simclr.batch_size,
        simclr.optimizer,
        simclr.weight_decay,
        simclr.warmup_epochs,
        simclr.schedule,
    ) == (100, 1024, "lars", 1e-6, 20, "cosine")
    # The paper's "lr 0.012" read as SimCLR's 0.3 x batch/256 (docs/experiments/simclr-lr.md); the literal
    # reading is its own preset, otherwise identical.
    assert peak_lr(simclr) == pytest.approx(1.2) and simclr.lars_trust_coefficient == 0.001
    (literal,) = resolve("simclr-literal").parts
    assert peak_lr(literal.pretrain) == pytest.approx(0.012) and literal.pretrain.lars_trust_coefficient == 0.001
    (linear,) = resolve("simclr-linear").parts
    assert literal.pretrain.model_copy(update={"lr": linear.pretrain.lr, "lr_scaling": "linear"}) == linear.pretrain
    assert (literal.simclr, literal.linear) == (linear.simclr, linear.linear)
    r = rot[0].pretrain
    assert (r.epochs, r.batch_size, r.lr, r.gamma, r.milestones) == (100, 128, 0.1, 0.2, [30, 60, 80])
    tuned = resolve("paper-tuned")
    tuned_pairs = {(p.method, e) for p in tuned.parts for e in p.evaluation}
    assert {(m, e) for m, e, _ in CELLS} | {("simclr", "semi")} <= tuned_pairs


def test_simclr_semi_shares_simclr_linear_pretraining():
    # Same [pretrain], [simclr] and [knn]: one cached encoder serves both presets.
    (linear,), (semi,) = resolve("simclr-linear").parts, resolve("simclr-semi").parts
    assert (semi.pretrain, semi.simclr, semi.knn) == (linear.pretrain, linear.simclr, linear.knn)


def test_paper_tuned_fine_tunes_simclr_as_rotnet_tuned():
    # The two semi-supervised rows of paper-tuned differ only in pretraining (the preset says so).
    tuned = resolve("paper-tuned")
    semi = {p.method: p.semi for p in tuned.parts if "semi" in p.evaluation}
    (rotnet_tuned,) = resolve("rotnet-tuned").parts
    assert semi["simclr"] == semi["rotnet"] == rotnet_tuned.semi
    assert rotnet_tuned.semi.frozen_stages == 0


def test_paper_probes_read_the_encoders_feature_and_tuned_probes_every_stage():
    # The paper's linear rows use its protocol (the pooled last stage); the tuned rows read all
    # three stages (chosen on the validation split, presets' comments and
    # docs/experiments/supervised-and-evaluation.md).
    assert all(p.linear.default_readout() for p in resolve("paper").parts)
    tuned = {p.method: p.linear for p in resolve("paper-tuned").parts if "linear" in p.evaluation}
    assert set(tuned) == {"simclr", "rotnet"}
    assert all((c.feature_stages, c.feature_grid) == ([1, 2, 3], 1) for c in tuned.values())


def test_study_sections_apply_to_every_part():
    plan = resolve("paper-smoke", sets=["pretrain.epochs=2"])
    assert len(plan.parts) == 4
    assert all(p.data.synthetic_train_per_class == 100 and p.pretrain.epochs == 2 for p in plan.parts)


def test_paper_smoke_end_to_end(run_cli, runs_dir):
    proc = run_cli("run", "--preset", "paper-smoke", "--data", "synthetic", "--device", "cpu", "--json", timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = last_json(proc.stdout)
    assert out["status"] == "completed"
    assert len(out["results"]) == 8
    assert {(r["method"], r["evaluation"], r["labels"]) for r in out["results"]} == CELLS
    assert all(0.0 <= r["test_acc"] <= 1.0 for r in out["results"])

    # Pretraining ran exactly once per method and seed, although RotNet serves two rows.
    events = [json.loads(line) for line in (runs_dir / out["run_id"] / "metrics.jsonl").read_text().splitlines()]
    starts = Counter(
        (e["method"], e["seed"]) for e in events if e["event"] == "phase_start" and e["kind"] == "pretrain"
    )
    assert starts == Counter({("simclr", 0): 1, ("rotnet", 0): 1})

    summary = json.loads((runs_dir / out["run_id"] / "summary.json").read_text())
    assert {"data", "pretrain", "linear", "semi", "supervised", "wall"} <= set(summary["timings"])
    assert summary["memory"]["peak_rss_mb"] > 0

    table = json.loads(run_cli("table", "--json").stdout)
    paper = {(r["method"], r["evaluation"]): r["test_acc"] for r in load_paper_table()["rows"]}
    for row in table["rows"][:4]:
        for cell, paper_value in zip(row["cells"], paper[(row["method"], row["evaluation"])]):
            assert cell["paper"] == paper_value
            assert cell["ours_mean"] is not None and cell["seeds"] == 1
    text = run_cli("table").stdout
    assert "Supervised Baseline" in text and "83.64" in text and "time per phase" in text
