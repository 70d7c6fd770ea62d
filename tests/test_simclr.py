"""SimCLR end to end through the real CLI, and its model pieces."""

from __future__ import annotations

import json

import pytest
import torch

from conftest import last_json
from ssltui.engine.methods.simclr import ProjectionHead, SimCLRModel
from ssltui.engine.models.resnet import ResNet20


def test_model_shapes():
    m = SimCLRModel(ResNet20(), ProjectionHead(64, 32, 16))
    assert m(torch.zeros(4, 3, 32, 32)).shape == (4, 16)


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
