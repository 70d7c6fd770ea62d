"""RotNet pretraining learns rotations; fine-tuning and the linear probe leave frozen parts alone."""

from __future__ import annotations

import pytest
import torch

from ssltui.core.config import ClassifierConfig, LinearConfig, build_run_config
from ssltui.core.events import Epoch, PhaseRef, PhaseStart
from ssltui.core.presets import resolve
from ssltui.core.store import RunStore
from ssltui.trainer.data.bundle import make_bundle
from ssltui.trainer.data.sources import make_synthetic
from ssltui.trainer.device import pick_device
from ssltui.trainer.evaluation.finetune import train_classifier
from ssltui.trainer.evaluation.linear import linear_probe
from ssltui.trainer.loop import RunContext
from ssltui.trainer.methods import rotnet
from ssltui.trainer.models.resnet import ResNet20
from ssltui.trainer.phases import pretrain_key


@pytest.fixture(autouse=True)
def one_thread():
    """On a small shared CI box two intra-op threads made these tiny-batch steps ~15x slower
    than one (measured: 44 s against 3 s for the learning test), so train single-threaded."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def ctx(tmp_path):
    cfg = build_run_config({"method": "rotnet", "evaluation": ["linear"]})
    run = RunStore(tmp_path / "runs").create("test")
    return RunContext(run, pick_device("cpu", cfg.runtime))


@pytest.fixture(scope="module")
def bundle():
    # 60 training images (48 outside the validation split) and 20 test images: tiny on purpose,
    # a ResNet-20 step on CPU costs ~10 ms an image.
    return make_bundle(make_synthetic(6, 2), torch.device("cpu"), 0.2, 0)


def test_rotation_prediction_learns_far_above_chance(ctx, bundle):
    """A broken rotation/label pairing stays at 25%; the real task is learnt within 24 steps."""
    cfg = build_run_config(
        {
            "method": "rotnet",
            "evaluation": ["linear"],
            "pretrain": {"epochs": 2, "batch_size": 4, "lr": 0.05, "nesterov": True, "checkpoint_every": 0},
        }
    )
    encoder = rotnet.pretrain(
        ctx, PhaseRef(phase="rotnet/pretrain", kind="pretrain", method="rotnet", seed=0), cfg, bundle
    )
    assert isinstance(encoder, ResNet20)
    epochs = [e for e in ctx.run.read_events() if isinstance(e, Epoch)]
    assert len(epochs) == 2 and all(e.rot_acc is not None for e in epochs)
    # 4 inputs per image: images_per_s counts the 16 rotated inputs of a step.
    start = next(e for e in ctx.run.read_events() if isinstance(e, PhaseStart))
    assert start.steps_per_epoch == 12 and start.batch_size == 4
    assert epochs[-1].rot_acc >= 0.6, epochs
    # The returned encoder is the trained one, not a fresh ResNet-20.
    assert not torch.equal(encoder.stem[0].weight, ResNet20().stem[0].weight)


def test_rotation_accuracy_counts_all_four_rotations(ctx, bundle):
    class Oracle(torch.nn.Module):
        """Predicts the rotation from where the synthetic images' bright top edge went."""

        def forward(self, x):
            edges = torch.stack(
                [
                    x[:, :, :4].mean((1, 2, 3)),
                    x[:, :, :, -4:].mean((1, 2, 3)),
                    x[:, :, -4:].mean((1, 2, 3)),
                    x[:, :, :, :4].mean((1, 2, 3)),
                ],
                1,
            )
            # bright top -> 0; rot90 ccw moves the top to the left -> 1; 180 -> bottom; 270 -> right
            return edges[:, [0, 3, 2, 1]]

    val_x = bundle.train_x[bundle.val_idx]
    acc = rotnet.rotation_accuracy(Oracle(), val_x, bundle, ctx.dev)
    assert acc >= 0.9

    class Constant(torch.nn.Module):
        def forward(self, x):
            return torch.tensor([[0.0, 1.0, 0.0, 0.0]]).expand(len(x), 4)

    assert rotnet.rotation_accuracy(Constant(), val_x, bundle, ctx.dev) == pytest.approx(0.25)


def _snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


@pytest.mark.parametrize("frozen_stages", [1, 2])
def test_fine_tuning_keeps_frozen_stages_and_changes_the_rest(ctx, bundle, frozen_stages):
    encoder = ResNet20()
    # Start from statistics that a BN layer in training mode would certainly move.
    for m in encoder.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.fill_(0.5)
            m.running_var.fill_(2.0)
    before = _snapshot(encoder)
    cfg = ClassifierConfig(epochs=2, batch_size=8, lr=0.05, frozen_stages=frozen_stages, checkpoint_every=0)
    subset = bundle.train_idx[:24]
    info = PhaseRef(phase=f"semi-{frozen_stages}", kind="semi", method="rotnet", seed=0, labels=0.5, evaluation="semi")
    out = train_classifier(ctx, info, cfg, bundle, subset, encoder)
    after = _snapshot(out["model"].encoder)
    assert all(torch.equal(before[k], v) for k, v in _snapshot(encoder).items()), "caller's encoder changed"

    frozen_prefixes = ("stem.",) + tuple(f"stages.{i}." for i in range(frozen_stages))
    frozen = [k for k in before if k.startswith(frozen_prefixes)]
    trained = [k for k in before if not k.startswith(frozen_prefixes)]
    assert frozen and trained
    # Frozen: weights, BN affine parameters, running statistics and batch counters all unchanged.
    for k in frozen:
        assert torch.equal(before[k], after[k]), f"frozen {k} changed"
    # Unfrozen: every weight and every BN statistic moved.
    for k in trained:
        if k.endswith("num_batches_tracked"):
            assert int(after[k]) == int(before[k]) == 0  # not counted: unused with a fixed momentum
        else:
            assert not torch.equal(before[k], after[k]), f"trainable {k} did not change"
    model = out["model"]
    assert all(not p.requires_grad for m in model.encoder.frozen_modules(frozen_stages) for p in m.parameters())
    assert 0.0 <= out["test_acc"] <= 1.0


def test_linear_probe_leaves_every_encoder_weight_and_buffer_unchanged(ctx, bundle):
    encoder = ResNet20()
    encoder.train()
    before = _snapshot(encoder)
    cfg = LinearConfig(epochs=3, batch_size=8, lr=0.1, checkpoint_every=0)
    info = PhaseRef(phase="linear", kind="linear", method="rotnet", seed=0, labels=0.5, evaluation="linear")
    out = linear_probe(ctx, info, cfg, bundle, bundle.train_idx[:24], encoder)
    after = _snapshot(encoder)
    assert before.keys() == after.keys()
    for k in before:
        assert torch.equal(before[k], after[k]), f"{k} changed"
    assert encoder.training  # mode restored
    assert 0.0 <= out["test_acc"] <= 1.0


def test_semi_accepts_an_encoder_of_any_method(ctx, bundle):
    """What fine-tuning gets is a plain ResNet-20, whichever method trained it (simclr-semi)."""
    encoder = ResNet20()
    cfg = ClassifierConfig(epochs=1, batch_size=8, frozen_stages=2, checkpoint_every=0)
    info = PhaseRef(phase="p0-simclr/semi", kind="semi", method="simclr", seed=0, labels=0.5, evaluation="semi")
    out = train_classifier(ctx, info, cfg, bundle, bundle.train_idx[:16], encoder)
    assert "test_acc" in out


def test_rotnet_presets_share_one_pretraining(bundle):
    linear = resolve("rotnet-linear").parts[0]
    semi = resolve("rotnet-semi").parts[0]
    assert linear.method == semi.method == "rotnet"
    assert linear.evaluation == ["linear"] and semi.evaluation == ["semi"]
    assert pretrain_key(linear, 0, bundle) == pretrain_key(semi, 0, bundle)
    p = linear.pretrain
    assert (p.epochs, p.batch_size, p.optimizer, p.lr, p.momentum, p.nesterov, p.weight_decay) == (
        100,
        128,
        "sgd",
        0.1,
        0.9,
        True,
        5e-4,
    )
    assert (p.schedule, p.milestones, p.gamma) == ("step", [30, 60, 80], 0.2)
    assert linear.linear.epochs == 90 and linear.labels == [0.01, 0.1]
    assert semi.semi.frozen_stages == 2 and 80 <= semi.semi.epochs <= 100 and semi.semi.augment
    assert semi.semi.min_steps > 3 * semi.semi.epochs  # 1% labels: ~3 steps an epoch


@pytest.mark.parametrize("name", ["rotnet-tuned", "simclr-semi"])
def test_other_presets_resolve(name):
    part = resolve(name).parts[0]
    assert "semi" in part.evaluation or "linear" in part.evaluation
    if name == "simclr-semi":
        assert part.method == "simclr" and part.evaluation == ["semi"]


def test_cli_runs_rotnet_end_to_end(run_cli, runs_dir):
    """Through the real CLI: the runner finds the method, rot_acc lands in metrics.jsonl, the
    encoder is cached and the (augmented) linear probe gives a result."""
    import json

    from conftest import last_json

    args = [
        "run",
        "--preset",
        "smoke",
        "--method",
        "rotnet",
        "--evaluation",
        "linear",
        "--data",
        "synthetic",
        "--device",
        "cpu",
        "--json",
        "-q",
        "--set",
        "data.synthetic_train_per_class=6",
        "--set",
        "data.synthetic_test_per_class=2",
        "--set",
        "data.val_fraction=0.2",
        "--set",
        "pretrain.epochs=1",
        "--set",
        "pretrain.batch_size=8",
        "--set",
        "linear.epochs=2",
        "--set",
        "linear.augment_copies=1",
        "--labels",
        "0.5",
    ]
    proc = run_cli(*args, OMP_NUM_THREADS="1")
    assert proc.returncode == 0, proc.stderr
    out = last_json(proc.stdout)
    assert out["status"] == "completed" and out["results"][0]["method"] == "rotnet"
    assert out["results"][0]["probe"] == "aug1"  # which probe made the number travels with it
    run = runs_dir / out["run_id"]
    events = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    pre = [e for e in events if e.get("event") == "epoch" and e.get("kind") == "pretrain"]
    assert len(pre) == 1 and 0.0 <= pre[0]["rot_acc"] <= 1.0
    assert list((run / "encoders").glob("rotnet-seed0-*.pt"))

    # The same encoder (from the cache) probed on stage 2's output pooled to 2x2, plus kNN on
    # the encoder's own feature: each evaluation reads the features it names.
    proc = run_cli(
        *args,
        "--evaluation",
        "linear,knn",
        "--set",
        "linear.feature_stages=2",
        "--set",
        "linear.feature_grid=2",
        OMP_NUM_THREADS="1",
    )
    assert proc.returncode == 0, proc.stderr
    again = {r["evaluation"]: r for r in last_json(proc.stdout)["results"]}
    assert again["linear"]["probe"] == "aug1 s2 2x2"
    assert again["knn"].get("probe") is None
    assert 0.0 <= again["linear"]["test_acc"] <= 1.0 and 0.0 <= again["knn"]["test_acc"] <= 1.0
