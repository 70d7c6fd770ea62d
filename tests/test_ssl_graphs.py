"""The five methods' steps on the graphed path (CPU rehearsal): the EMA target, the queue and
its pointer live in the captured step, the self-check (two replays against two eager steps from
one state) passes, and a replayed step reads nothing back from the device."""

from __future__ import annotations

import pytest
import torch
from reliability_tools import one_thread  # noqa: F401 (autouse fixture)

from benchmarks.opcount import device_settings, tiny_bundle
from benchmarks.syncs import HostReads
from ssltui.core.config import TrainConfig
from ssltui.trainer.augment import SimCLRAugment
from ssltui.trainer.cudagraph import CallGraphs, GraphedSteps
from ssltui.trainer.methods.barlow import BarlowModel
from ssltui.trainer.methods.byol import BYOLModel
from ssltui.trainer.methods.moco import MoCoModel
from ssltui.trainer.methods.simsiam import SimSiamModel
from ssltui.trainer.methods.vicreg import VICRegModel
from ssltui.trainer.models.resnet import ResNet20
from ssltui.trainer.optim import build_optimizer
from ssltui.trainer.ssl_parts import CollapseMonitor
from ssltui.trainer.twoview import views_step

MODELS = {
    "byol": lambda: BYOLModel(ResNet20(), 16, 8, 16, 0.9),
    "simsiam": lambda: SimSiamModel(ResNet20(), 16, 8, 4),
    "moco": lambda: MoCoModel(ResNet20(), 16, 8, queue_size=12, temperature=0.2, ema_rate=0.9, bn_splits=2),
    "barlow": lambda: BarlowModel(ResNet20(), 16, 8, 0.005),
    "vicreg": lambda: VICRegModel(ResNet20(), 16, 8, (25.0, 25.0, 1.0)),
}


@pytest.mark.parametrize("method", list(MODELS))
def test_the_graphed_step_holds_the_method_state_and_reads_nothing_back(method: str) -> None:
    torch.manual_seed(0)
    dev = device_settings(like_cuda=True)
    bundle = tiny_bundle(dev.device)
    model = dev.prepare(MODELS[method]())
    total = 16
    if hasattr(model, "set_total_steps"):
        model.set_total_steps(total)
    images = bundle.train_x[bundle.train_idx]
    gen = torch.Generator().manual_seed(0)
    loss = views_step(model, SimCLRAugment(), images, bundle.mean, bundle.std, dev, gen, CollapseMonitor(dev.device))
    cfg = TrainConfig(epochs=1, optimizer="lars", lr=0.3, lars_trust_coefficient=0.02)
    backend = CallGraphs()
    steps = GraphedSteps(
        cfg,
        total,
        build_optimizer(cfg, [model], fused=True),
        {"model": model},
        loss,
        torch.zeros(total),
        gen,
        4,
        backend,
        pytest.fail,
    )
    model.train()
    for s in range(3):  # warm-up, then capture and its check (they may read: once a phase)
        steps(s, torch.randint(0, len(images), (4,)))
    assert steps.mode == "graph" and steps.check["worst"] <= 1.0
    state = {k: v.clone() for k, v in model.state_dict().items()}
    with HostReads() as reads:
        for s in range(3, 8):
            steps(s, torch.randint(0, len(images), (4,)))
    assert reads.total == 0, reads.counts
    after = model.state_dict()
    if method == "byol":  # the target moved inside the replays, and its step counter with it
        assert int(after["target.step"]) == int(state["target.step"]) + 5
        assert not torch.equal(after["target.target.0.stem.0.weight"], state["target.target.0.stem.0.weight"])
    if method == "moco":
        assert int(after["queue.ptr"]) == (int(state["queue.ptr"]) + 5 * 4) % 12
        assert not torch.equal(after["queue.keys"], state["queue.keys"])
        assert int(after["key.step"]) == int(state["key.step"]) + 5
