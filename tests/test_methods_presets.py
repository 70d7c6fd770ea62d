"""The five methods' presets and the `methods` study: each resolves to its method at the paper's
scale, the study pretrains every registered method, and Table 1 shows a row for each."""

from __future__ import annotations

import pytest

from ssltui.core import registry
from ssltui.core.presets import resolve
from ssltui.core.store import RunStore, atomic_write_json
from ssltui.core.table import build_table

NEW = ("byol", "simsiam", "moco", "barlow", "vicreg")


@pytest.mark.parametrize("method", NEW)
def test_each_method_has_a_linear_preset_at_the_papers_scale(method):
    plan = resolve(f"{method}-linear")
    (cfg,) = plan.parts
    assert cfg.method == method and cfg.evaluation == ["linear"] and cfg.labels == [0.01, 0.1]
    assert cfg.pretrain.epochs == 100 and cfg.linear.epochs == 90
    # The linear probe is simclr-linear's, so the rows compare encoders only.
    assert cfg.linear == resolve("simclr-linear").parts[0].linear


@pytest.mark.parametrize("method", NEW)
def test_each_method_has_a_semi_supervised_variant_that_reuses_its_linear_encoder(method):
    (semi,), (linear,), (rotnet,) = (
        resolve(f"{n}").parts for n in (f"{method}-semi", f"{method}-linear", "rotnet-semi")
    )
    assert semi.method == method and semi.evaluation == ["semi"] and semi.labels == [0.01, 0.1]
    # The same pretraining as the linear preset (one cached encoder for both rows) ...
    assert semi.pretrain == linear.pretrain and semi.method_settings == linear.method_settings
    # ... and the paper's RotNet fine-tuning, so the semi rows compare encoders only.
    assert semi.semi == rotnet.semi


def test_methods_semi_study_fine_tunes_every_method_beside_the_supervised_baseline():
    plan = resolve("methods-semi")
    pretraining = {m.name for m in registry.methods() if m.pretrains}
    assert {p.method for p in plan.parts} == pretraining | {"supervised"}
    assert all(p.evaluation == ["semi"] for p in plan.parts if p.method != "supervised")
    # Its pretraining is the `methods` study's, part for part: running both pretrains once.
    linear = {p.method: p for p in resolve("methods").parts if p.method != "supervised"}
    for p in plan.parts:
        if p.method != "supervised":
            assert p.pretrain == linear[p.method].pretrain and p.seeds == linear[p.method].seeds


def test_methods_study_pretrains_every_method_once_per_seed():
    plan = resolve("methods")
    pretraining = {m.name for m in registry.methods() if m.pretrains}
    assert {p.method for p in plan.parts} == pretraining | {"supervised"}
    assert all(p.seeds == [0, 1, 2] for p in plan.parts)


def test_table_shows_a_row_for_every_method(tmp_path):
    store = RunStore(tmp_path)
    rd = store.create("methods")
    results = [
        {"method": m.name, "evaluation": "linear", "labels": f, "seed": s, "test_acc": 0.3 + 0.01 * i + f}
        for i, m in enumerate(registry.methods())
        if m.pretrains
        for f in (0.01, 0.1)
        for s in (0, 1)
    ]
    atomic_write_json(
        rd.summary_path,
        {
            "run_id": rd.id,
            "preset": "methods",
            "group": "g",
            "status": "completed",
            "methods": sorted({r["method"] for r in results}),
            "results": results,
            "started": 1.0,
            "timings": {},
            "device": "test",
            "data": "synthetic",
        },
    )
    table = build_table(store.list(), [])
    names = [r.name for r in table.rows if r.cells and any(c.mean is not None for c in r.cells)]
    for m in NEW:
        title = registry.method(m).title
        assert any(n.startswith(title) for n in names), (title, names)
    # In the registry's order: BYOL, SimSiam, MoCo v2, Barlow Twins, VICReg after SimCLR and RotNet.
    firsts = [next(i for i, n in enumerate(names) if n.startswith(registry.method(m).title)) for m in NEW]
    assert firsts == sorted(firsts)
