"""SimCLR end to end through the real CLI, and its model pieces."""

from __future__ import annotations

import json

import pytest
import torch

from conftest import last_json
from ssltui.engine.config import build_run_config
from ssltui.engine.data.bundle import make_bundle
from ssltui.engine.data.sources import make_synthetic
from ssltui.engine.device import pick_device
from ssltui.engine.evaluation.linear import linear_probe
from ssltui.engine.events import Epoch, PhaseRef
from ssltui.engine.loop import RunContext
from ssltui.engine.methods import simclr
from ssltui.engine.methods.simclr import ProjectionHead, SimCLRModel
from ssltui.engine.models.resnet import ResNet20
from ssltui.engine.store import RunDir


def test_model_shapes():
    m = SimCLRModel(ResNet20(), ProjectionHead(64, 32, 16))
    assert m(torch.zeros(4, 3, 32, 32)).shape == (4, 16)


def _tiny(tmp_path):
    cfg = build_run_config({
        "method": "simclr", "evaluation": ["linear"],
        "pretrain": {"epochs": 2, "batch_size": 32, "optimizer": "lars", "lr": 0.3, "warmup_epochs": 1,
                     "weight_decay": 1e-6},
        "simclr": {"proj_hidden_dim": 32, "proj_out_dim": 16},
        "knn": {"k": 5, "every_epochs": 1, "max_bank": 40},
        "linear": {"epochs": 3, "batch_size": 16, "lr": 0.1, "weight_decay": 0.0},
    })
    dev = pick_device("cpu", cfg.runtime)
    bundle = make_bundle(make_synthetic(8, 2), dev.device, 0.25, 0)
    run = RunDir(tmp_path / "run")
    run.checkpoints_dir.mkdir(parents=True)
    events: list = []
    return cfg, bundle, RunContext(run, dev, events.append), events


def test_pretrain_trains_the_encoder_and_monitors_knn(tmp_path, monkeypatch):
    cfg, bundle, ctx, events = _tiny(tmp_path)
    inits = []

    def recording_resnet():
        m = ResNet20()
        inits.append({k: v.clone() for k, v in m.state_dict().items()})
        return m

    monkeypatch.setattr(simclr, "ResNet20", recording_resnet)
    encoder = simclr.pretrain(ctx, PhaseRef(phase="simclr/pretrain/seed0", kind="pretrain", method="simclr", seed=0), cfg, bundle)
    assert isinstance(encoder, ResNet20) and not encoder.training
    epochs = [e for e in events if isinstance(e, Epoch)]
    assert [e.epoch for e in epochs] == [1, 2]
    assert all(0.0 <= e.knn_acc <= 1.0 for e in epochs)
    assert all(torch.isfinite(torch.tensor(e.loss)) for e in epochs)
    after = encoder.state_dict()
    before = inits[0]
    changed = [k for k in before if k.endswith("conv1.weight") and not torch.equal(before[k], after[k])]
    assert len(changed) >= 9  # every block's first conv moved
    assert not torch.equal(before["stem.1.running_mean"], after["stem.1.running_mean"])
    # Resuming a finished phase trains nothing more and gives the same encoder.
    again = simclr.pretrain(ctx, PhaseRef(phase="simclr/pretrain/seed0", kind="pretrain", method="simclr", seed=0), cfg, bundle)
    for k, v in again.state_dict().items():
        assert torch.equal(v, after[k]), k


def test_linear_evaluation_leaves_the_encoder_unchanged(tmp_path):
    cfg, bundle, ctx, _ = _tiny(tmp_path)
    encoder = ResNet20()
    encoder.train()  # even handed over in training mode, BN statistics must not move
    state = {k: v.clone() for k, v in encoder.state_dict().items()}
    subset = bundle.train_idx[:24]
    out = linear_probe(ctx, PhaseRef(phase="lin", kind="linear", method="simclr", seed=0, labels=0.5, evaluation="linear"),
                       cfg.linear, bundle, subset, encoder)
    assert 0.0 <= out["test_acc"] <= 1.0
    for k, v in encoder.state_dict().items():
        assert torch.equal(v, state[k]), k


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_smoke_simclr_learns_on_synthetic(run_cli, runs_dir):
    # One epoch of the smoke preset keeps this test short on a 2-core machine.
    p = run_cli("run", "--preset", "smoke", "--method", "simclr", "--data", "synthetic",
                "--device", "cpu", "--json", "--set", "pretrain.epochs=1", timeout=900)
    assert p.returncode == 0, p.stderr[-2000:]
    out = last_json(p.stdout)
    assert out["status"] == "completed"
    (res,) = [r for r in out["results"] if r["evaluation"] == "linear"]
    # Chance is 10%; a randomly initialised ResNet-20 gives ~36% with this linear probe.
    assert res["test_acc"] > 0.40, res
    events = [json.loads(line) for line in (runs_dir / out["run_id"] / "metrics.jsonl").read_text().splitlines()]
    epochs = [e for e in events if e.get("event") == "epoch" and e.get("kind") == "pretrain"]
    assert epochs and all(0.0 <= e["knn_acc"] <= 1.0 for e in epochs)
    assert epochs[-1]["knn_acc"] > 0.2
