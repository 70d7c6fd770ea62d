"""BYOL, SimSiam, MoCo v2, Barlow Twins and VICReg pretraining in process: each trains its
encoder, keeps its state (target, EMA step, queue and pointer, predictor) in the phase
checkpoint, and the collapse guard tells a collapsing run from a working one."""

from __future__ import annotations

import importlib

import pytest
import torch

from ssltui.core.config import build_run_config
from ssltui.core.events import Epoch, Log, PhaseRef
from ssltui.core.store import RunDir
from ssltui.trainer.data.bundle import make_bundle
from ssltui.trainer.data.sources import make_synthetic
from ssltui.trainer.device import pick_device
from ssltui.trainer.loop import RunContext, derive_seed
from ssltui.trainer.methods.moco import MoCoModel
from ssltui.trainer.models.resnet import ResNet20

METHODS = ("byol", "simsiam", "moco", "barlow", "vicreg")
SMALL_HEADS = {
    "byol": {"pred_hidden_dim": 16},
    "simsiam": {"pred_hidden_dim": 8},
    "moco": {"queue_size": 48, "bn_splits": 4},
    "barlow": {},
    "vicreg": {},
}
# The weighted parts of the losses that have several, in the order the chart draws them.
TERMS = {"vicreg": ("invariance", "variance", "covariance"), "barlow": ("invariance", "redundancy")}
# What each method's phase checkpoint must hold besides the online encoder.
STATE_KEYS = {
    "byol": ("target.step", "target.target.0.stem.0.weight", "predictor.0.weight"),
    "simsiam": ("predictor.0.weight", "projector.0.weight"),
    "moco": ("key.step", "key.target.0.stem.0.weight", "queue.keys", "queue.ptr"),
    "barlow": ("projector.6.weight",),
    "vicreg": ("projector.6.weight",),
}


def _config(
    method: str,
    epochs: int = 2,
    optimizer: str = "lars",
    lr: float = 0.3,
    knn_every: int = 1,
    weight_decay: float = 1e-4,
    **settings,
):
    return build_run_config(
        {
            "method": method,
            "evaluation": ["linear"],
            "pretrain": {
                "epochs": epochs,
                "batch_size": 16,
                "optimizer": optimizer,
                "lr": lr,
                "weight_decay": weight_decay,
                "lars_trust_coefficient": 0.02,
            },
            method: {"proj_hidden_dim": 32, "proj_out_dim": 32, **SMALL_HEADS[method], **settings},
            "knn": {"k": 5, "every_epochs": knn_every, "max_bank": 60},
        }
    )


def _pretrain(tmp_path, cfg, per_class: int = 6):
    dev = pick_device("cpu", cfg.runtime)
    bundle = make_bundle(make_synthetic(per_class, 2), dev.device, 0.2, 0)
    run = RunDir(tmp_path / "run")
    run.checkpoints_dir.mkdir(parents=True, exist_ok=True)
    events: list = []
    ctx = RunContext(run, dev, events.append)
    ref = PhaseRef(phase=f"{cfg.method}/pretrain/seed0", kind="pretrain", method=cfg.method, seed=0)
    encoder = importlib.import_module(f"ssltui.trainer.methods.{cfg.method}").pretrain(ctx, ref, cfg, bundle)
    return encoder, events, ctx.checkpoint_path(ref.phase)


@pytest.mark.parametrize("method", METHODS)
def test_method_trains_its_encoder_and_checkpoints_its_state(tmp_path, method):
    cfg = _config(method)
    encoder, events, ck_path = _pretrain(tmp_path, cfg)
    assert isinstance(encoder, ResNet20) and not encoder.training
    epochs = [e for e in events if isinstance(e, Epoch)]
    assert [e.epoch for e in epochs] == [1, 2]
    assert all(torch.isfinite(torch.tensor(e.loss)) for e in epochs)
    assert all(0.0 <= e.knn_acc <= 1.0 and e.knn_random is not None for e in epochs)
    ck = torch.load(ck_path, weights_only=True)
    state = ck["modules"]["model"]
    for key in STATE_KEYS[method]:
        assert key in state, key
    # Every block's convolutions moved from the seeded initial encoder.
    torch.manual_seed(derive_seed(0, f"{method}/pretrain"))
    before, after = ResNet20().state_dict(), encoder.state_dict()
    assert all(not torch.equal(before[k], after[k]) for k in before if k.endswith("conv1.weight"))
    # The online encoder in the checkpoint is the one returned.
    (enc_key,) = [k for k in state if k.endswith("stages.2.2.conv2.weight") and "target" not in k]
    assert torch.equal(state[enc_key], encoder.state_dict()["stages.2.2.conv2.weight"])
    if method == "byol":
        assert int(state["target.step"]) == ck["total_steps"]
        # The target trails the online encoder: neither equal to it nor where both started.
        assert not torch.equal(state["target.target.0.stem.0.weight"], state["online.0.stem.0.weight"])
    # A loss of several weighted parts reports each part's epoch mean at every epoch (the live
    # loss chart draws them); the parts add up to the epoch's loss. The others report none.
    names = TERMS.get(method)
    for e in epochs:
        if names is None:
            assert e.loss_terms is None
        else:
            assert tuple(e.loss_terms) == names
            assert sum(e.loss_terms.values()) == pytest.approx(e.loss, rel=1e-4, abs=1e-6)
    if method == "moco":
        steps, batch = ck["total_steps"], 16
        assert int(state["queue.ptr"]) == steps * batch % 48
    # A finished phase asked again trains nothing and gives the same encoder.
    again, _, _ = _pretrain(tmp_path, cfg)
    for k, v in again.state_dict().items():
        assert torch.equal(v, encoder.state_dict()[k]), k


def test_moco_shuffled_bn_keys_follow_their_images():
    torch.manual_seed(0)
    model = MoCoModel(ResNet20(), 16, 8, queue_size=32, temperature=0.1, ema_rate=0.99, bn_splits=1)
    model.train()
    x = torch.randn(8, 3, 32, 32)
    # One BatchNorm group: shuffling then unshuffling the batch changes nothing but the order of sums.
    direct = model.key(x)
    assert torch.allclose(model.keys(x), direct, atol=1e-5)
    model.bn_splits = 4
    split = model.keys(x)
    assert split.shape == direct.shape and not torch.allclose(split, direct, atol=1e-3)


def _warnings(events) -> list[str]:
    return [e.message for e in events if isinstance(e, Log) and e.level == "warning"]


@pytest.mark.slow
def test_collapse_guard_fires_on_a_collapsing_run_and_not_on_a_working_one(tmp_path):
    # SimSiam without its stop-gradient is its paper's collapse (Chen & He 2021, Fig. 2); the same
    # run with it is the working one. On 16 synthetic images the measure falls below the limit
    # around epoch 12 of 25 without it (at this strong learning rate and weight decay, which
    # shrink the projector's output BatchNorm sooner) and stays above 0.6 with it.
    def run(path, stop_gradient: bool):
        cfg = _config(
            "simsiam", epochs=25, optimizer="sgd", lr=1.0, weight_decay=5e-3, knn_every=0, stop_gradient=stop_gradient
        )
        return [w for w in _warnings(_pretrain(path, cfg, per_class=8)[1]) if "collapsing" in w]

    (warning,) = run(tmp_path / "a", stop_gradient=False)
    assert "per-dimension std" in warning
    assert not run(tmp_path / "b", stop_gradient=True)
