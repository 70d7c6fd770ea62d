"""Evaluation options: the augmented linear probe, label smoothing, weight averaging (EMA) and
adapting BatchNorm statistics in frozen stages."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ssltui.cli.table import render_markdown
from ssltui.core.config import ClassifierConfig, LinearConfig, build_run_config
from ssltui.core.errors import RunInterrupted
from ssltui.core.events import PhaseRef, PhaseStart, Step
from ssltui.core.store import RunInfo, RunStore
from ssltui.core.table import build_table
from ssltui.trainer.data.bundle import make_bundle
from ssltui.trainer.data.sources import make_synthetic
from ssltui.trainer.device import pick_device
from ssltui.trainer.evaluation.common import accuracy, encode
from ssltui.trainer.evaluation.finetune import train_classifier
from ssltui.trainer.evaluation.linear import linear_probe, training_features
from ssltui.trainer.loop import RunContext
from ssltui.trainer.models.resnet import ResNet20
from ssltui.view.tables import results_table, table1_footer


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _ctx(run, listener=None) -> RunContext:
    # A log point (a Step event) after every step: the stop tests count them.
    cfg = build_run_config({"method": "rotnet", "evaluation": ["linear"], "runtime": {"log_seconds": 0}})
    return RunContext(run, pick_device("cpu", cfg.runtime), listener)


@pytest.fixture
def ctx(tmp_path):
    return _ctx(RunStore(tmp_path / "runs").create("test"))


@pytest.fixture(scope="module")
def bundle():
    return make_bundle(make_synthetic(6, 2), torch.device("cpu"), 0.2, 0)


def _snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


# ---------------------------------------------------------------- linear probe


def test_training_features_add_distinct_crop_flip_copies(ctx, bundle):
    encoder = ResNet20().eval()
    x, y = bundle.train_x[bundle.train_idx[:10]], bundle.train_y[bundle.train_idx[:10]]
    gen = torch.Generator().manual_seed(0)
    cfg = LinearConfig(augment_copies=3)
    feats, labels = training_features(encoder, x, y, cfg, bundle, ctx.dev, gen)
    assert feats.shape == (40, ResNet20.feature_dim)
    assert torch.equal(labels, y.repeat(4))
    assert torch.equal(feats[:10], encode(encoder, x, bundle, ctx.dev))  # the plain features first
    for k in range(1, 4):  # every copy is a new crop/flip, not the plain image again
        copy_k = feats[10 * k : 10 * (k + 1)]
        assert not torch.allclose(copy_k, feats[:10])
        assert (copy_k - feats[:10]).abs().sum(1).gt(0).float().mean() > 0.5


def test_augmented_probe_trains_on_every_copy_and_leaves_the_encoder_bit_identical(ctx, bundle):
    encoder = ResNet20()
    encoder.train()
    before = _snapshot(encoder)
    cfg = LinearConfig(epochs=3, batch_size=8, lr=0.1, checkpoint_every=0, augment_copies=2)
    info = PhaseRef(phase="linear-aug", kind="linear", method="rotnet", seed=0, labels=0.5, evaluation="linear")
    out = linear_probe(ctx, info, cfg, bundle, bundle.train_idx[:24], encoder)
    after = _snapshot(encoder)
    for k in before:
        assert torch.equal(before[k], after[k]), f"{k} changed"
    assert encoder.training
    start = next(e for e in ctx.run.read_events() if isinstance(e, PhaseStart))
    assert start.steps_per_epoch == 3 * 24 // 8  # 24 images, each plain and in 2 copies
    assert out["probe"] == "aug2" and 0.0 <= out["test_acc"] <= 1.0


def test_plain_probe_is_named_plain(ctx, bundle):
    cfg = LinearConfig(epochs=1, batch_size=8, checkpoint_every=0)
    info = PhaseRef(phase="linear-plain", kind="linear", method="rotnet", seed=0, labels=0.5, evaluation="linear")
    assert linear_probe(ctx, info, cfg, bundle, bundle.train_idx[:16], ResNet20())["probe"] == "plain"


def test_readout_pools_the_chosen_stages_and_defaults_to_the_encoders_feature(ctx, bundle):
    encoder = ResNet20().eval()
    x = bundle.train_x[bundle.train_idx[:6]]
    own = encode(encoder, x, bundle, ctx.dev)
    assert torch.equal(encode(encoder, x, bundle, ctx.dev, ([3], 1)), own)
    feats = encode(encoder, x, bundle, ctx.dev, ([2, 3], 2))
    assert feats.shape == (6, 32 * 4 + 64 * 4)
    # Stage 3 at 2x2: its four cells average to the encoder's own (globally pooled) feature.
    s3 = feats[:, 128:].reshape(6, 64, 4)
    assert torch.allclose(s3.mean(2), own, atol=1e-5)
    s2 = encode(encoder, x, bundle, ctx.dev, ([2], 1))
    assert torch.allclose(feats[:, :128].reshape(6, 32, 4).mean(2), s2, atol=1e-5)
    assert not torch.allclose(s2, own[:, :32])


def test_probe_on_intermediate_stages_is_named_and_reads_its_own_features(ctx, bundle):
    cfg = LinearConfig(epochs=2, batch_size=8, checkpoint_every=0, feature_stages=[3, 2], feature_grid=2)
    assert cfg.feature_stages == [2, 3]
    info = PhaseRef(phase="linear-s23", kind="linear", method="rotnet", seed=0, labels=0.5, evaluation="linear")
    encoder = ResNet20()
    before = _snapshot(encoder)
    out = linear_probe(ctx, info, cfg, bundle, bundle.train_idx[:16], encoder)
    assert out["probe"] == "plain s2+s3 2x2" and 0.0 <= out["test_acc"] <= 1.0
    assert all(torch.equal(v, encoder.state_dict()[k]) for k, v in before.items())


@pytest.mark.parametrize(
    "sets, key",
    [
        (["linear.feature_stages=[2,2]"], "linear.feature_stages"),
        (["linear.feature_stages=[4]"], "linear.feature_stages"),
        (["linear.feature_stages=[]"], "linear.feature_stages"),
        (["linear.feature_grid=3"], "linear.feature_grid"),
    ],
)
def test_bad_readout_settings_are_refused_naming_the_key(sets, key):
    from ssltui.core.errors import ConfigError
    from ssltui.core.presets import resolve

    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        resolve("rotnet-linear", sets=sets)
    (part,) = resolve("rotnet-linear", sets=["linear.feature_stages=2,3", "linear.feature_grid=4"]).parts
    assert (part.linear.feature_stages, part.linear.feature_grid) == ([2, 3], 4)


def _info(run_id: str, results: list[dict], started: float) -> RunInfo:
    return RunInfo(id=run_id, path=Path(run_id), preset="p", status="completed", results=results, started=started)


def test_table_names_the_probe_of_each_linear_row():
    new = [
        {"method": "rotnet", "evaluation": "linear", "labels": 0.01, "seed": 0, "test_acc": 0.5, "probe": "aug8"},
        {"method": "rotnet", "evaluation": "semi", "labels": 0.01, "seed": 0, "test_acc": 0.7},
    ]
    old = [{"method": "simclr", "evaluation": "linear", "labels": 0.01, "seed": 0, "test_acc": 0.6}]
    table = build_table([_info("a", new, 2.0), _info("b", old, 1.0)])
    probes = {r.name: r.probes for r in table.rows}
    assert probes["RotNet Linear Evaluation"] == ["aug8"]
    assert probes["SimCLR Linear Evaluation"] == ["plain"]  # recorded before the option existed
    assert probes["RotNet Semi-supervised"] == []
    assert {r["name"]: r["probes"] for r in table.to_json()["rows"]}["RotNet Linear Evaluation"] == ["aug8"]
    footer = table1_footer(table)
    assert "linear probe: SimCLR Linear Evaluation plain, RotNet Linear Evaluation aug8" in footer
    assert "augN:" in footer and "sA+sB" not in footer  # only the names used are explained
    staged = [{**new[0], "probe": "plain s1+s2+s3 1x1"}]
    footer = table1_footer(build_table([_info("c", staged, 3.0)]))
    assert "RotNet Linear Evaluation plain s1+s2+s3 1x1" in footer and "sA+sB GxG" in footer and "augN" not in footer
    assert "RotNet Linear Evaluation aug8" in render_markdown(table)


def test_table_probe_is_that_of_the_pooled_result():
    """A seed measured again supersedes the older number, and its probe goes with it."""
    first = [{"method": "rotnet", "evaluation": "linear", "labels": 0.01, "seed": 0, "test_acc": 0.5, "probe": "aug8"}]
    again = [
        {"method": "rotnet", "evaluation": "linear", "labels": 0.01, "seed": 0, "test_acc": 0.4, "probe": "plain"},
        {"method": "rotnet", "evaluation": "linear", "labels": 0.01, "seed": 1, "test_acc": 0.6, "probe": "aug2"},
    ]
    table = build_table([_info("a", first, 1.0), _info("b", again, 2.0)])
    row = next(r for r in table.rows if r.name == "RotNet Linear Evaluation")
    assert row.probes == ["aug2", "plain"] and row.cells[0].ours == [40.0, 60.0]


def test_a_runs_results_show_the_probe():
    from rich.console import Console

    console = Console(width=200, record=True)
    console.print(
        results_table(
            [
                {
                    "method": "rotnet",
                    "evaluation": "linear",
                    "labels": 0.01,
                    "seed": 0,
                    "test_acc": 0.5,
                    "probe": "aug8",
                },
                {"method": "rotnet", "evaluation": "semi", "labels": 0.01, "seed": 0, "test_acc": 0.7},
            ]
        )
    )
    out = console.export_text()
    assert "linear (aug8)" in out and "semi " in out and "semi (" not in out


# ---------------------------------------------------------------- fine-tuning options


def _pretrained_like() -> ResNet20:
    encoder = ResNet20()
    for m in encoder.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.fill_(0.5)
            m.running_var.fill_(2.0)
    return encoder


FROZEN = ("stem.", "stages.0.", "stages.1.")


def test_ema_model_is_evaluated_and_returned_and_frozen_stages_stay_exact(ctx, bundle):
    encoder = _pretrained_like()
    before = _snapshot(encoder)
    cfg = ClassifierConfig(epochs=2, batch_size=8, lr=0.05, frozen_stages=2, ema=0.5, checkpoint_every=0)
    info = PhaseRef(phase="semi-ema", kind="semi", method="rotnet", seed=0, labels=0.5, evaluation="semi")
    out = train_classifier(ctx, info, cfg, bundle, bundle.train_idx[:24], encoder)
    averaged = _snapshot(out["model"].encoder)
    ck = torch.load(ctx.checkpoint_path("semi-ema"), weights_only=False)
    trained = {k.removeprefix("encoder."): v for k, v in ck["modules"]["model"].items() if k.startswith("encoder.")}
    assert "ema" in ck["modules"], "the average must be checkpointed, or a resume restarts it"
    for k, v in averaged.items():
        if k.startswith(FROZEN):
            assert torch.equal(v, before[k]), f"frozen {k} moved in the average"
    moved = [k for k in averaged if not k.startswith(FROZEN) and averaged[k].is_floating_point()]
    assert moved and all(not torch.equal(averaged[k], trained[k]) for k in moved), (
        "returned weights are the last ones, not the average"
    )
    assert all(not torch.equal(averaged[k], before[k]) for k in moved), "the average never followed training"
    assert int(ck["modules"]["ema"]["n_averaged"]) == 2 * 24 // 8, "one update after every optimizer step"
    assert out["test_acc"] == accuracy(out["model"], bundle.test_x, bundle.test_y, bundle, ctx.dev)


def test_ema_run_stopped_mid_phase_resumes_to_the_same_average(tmp_path, bundle):
    cfg = ClassifierConfig(epochs=2, batch_size=8, lr=0.05, ema=0.7, checkpoint_every=1)

    def run(rundir, stop_after: int | None):
        steps = []

        def listener(e) -> None:
            if isinstance(e, Step):
                steps.append(e)
                if stop_after is not None and len(steps) == stop_after:
                    c.request_stop("test")

        c = _ctx(rundir, listener)
        info = PhaseRef(
            phase="sup", kind="supervised", method="supervised", seed=0, labels=0.5, evaluation="supervised"
        )
        return train_classifier(c, info, cfg, bundle, bundle.train_idx[:24], None)

    store = RunStore(tmp_path / "runs")
    ref = _snapshot(run(store.create("ref"), None)["model"])
    stopped = store.create("stopped")
    with pytest.raises(RunInterrupted):
        run(stopped, 4)  # mid-epoch 2 (3 steps an epoch)
    resumed = _snapshot(run(stopped, None)["model"])  # a fresh model and generator, as a new process
    for k, v in ref.items():
        assert torch.equal(resumed[k], v), k


def test_frozen_bn_stats_off_adapts_statistics_but_not_weights(ctx, bundle):
    encoder = _pretrained_like()
    before = _snapshot(encoder)
    cfg = ClassifierConfig(epochs=1, batch_size=8, lr=0.05, frozen_stages=2, frozen_bn_stats=False, checkpoint_every=0)
    info = PhaseRef(phase="semi-bn", kind="semi", method="rotnet", seed=0, labels=0.5, evaluation="semi")
    after = _snapshot(train_classifier(ctx, info, cfg, bundle, bundle.train_idx[:24], encoder)["model"].encoder)
    stats = [k for k in before if k.startswith(FROZEN) and k.endswith(("running_mean", "running_var"))]
    weights = [k for k in before if k.startswith(FROZEN) and k.endswith(("weight", "bias"))]
    assert stats and weights
    assert all(not torch.equal(before[k], after[k]) for k in stats)
    assert all(torch.equal(before[k], after[k]) for k in weights)


def test_label_smoothing_reaches_the_loss(ctx, bundle, monkeypatch):
    import ssltui.trainer.losses as losses

    seen = []
    real = losses.F.cross_entropy

    def spy(*args, **kwargs):
        seen.append(kwargs.get("label_smoothing"))
        return real(*args, **kwargs)

    monkeypatch.setattr(losses.F, "cross_entropy", spy)
    cfg = ClassifierConfig(epochs=1, batch_size=8, label_smoothing=0.2, checkpoint_every=0)
    info = PhaseRef(phase="sup-ls", kind="supervised", method="supervised", seed=0, labels=0.5, evaluation="supervised")
    train_classifier(ctx, info, cfg, bundle, bundle.train_idx[:16], None)
    assert seen == [0.2, 0.2]  # both steps of the epoch


# ---------------------------------------------------------------- cutout


def test_cutout_zeroes_one_clipped_square_per_image():
    from ssltui.trainer.augment import cutout

    x = torch.ones(400, 3, 32, 32)
    out = cutout(x, 8, torch.Generator().manual_seed(0))
    zero = out[:, 0] == 0
    assert torch.equal(zero, (out == 0).all(1))  # all channels alike
    assert torch.equal(out[~zero.unsqueeze(1).expand_as(out)], x[~zero.unsqueeze(1).expand_as(x)])
    rows, cols = zero.any(2), zero.any(1)  # (n, 32) each
    for z, r, c in zip(zero, rows, cols):
        h, w = int(r.sum()), int(c.sum())
        assert 4 <= h <= 8 and 4 <= w <= 8  # a centre on the image keeps at least half the side
        assert int(z.sum()) == h * w  # one rectangle
        assert r.nonzero().max() - r.nonzero().min() == h - 1  # contiguous
    assert (rows.sum(1) == 8).float().mean() > 0.5  # mostly whole squares
    assert zero.any(0).all()  # every pixel is covered by some image's square: the centre spans the image


def test_cutout_zeroes_exactly_the_drawn_squares():
    """The square is where the generator's draws put it: centre (row, column) uniform on the image."""
    from ssltui.trainer.augment import cutout

    x = torch.rand(50, 3, 32, 32) + 1.0  # no pixel is zero before
    out = cutout(x, 6, torch.Generator().manual_seed(3))
    replay = torch.Generator().manual_seed(3)
    tops = torch.randint(0, 32, (50, 1), generator=replay) - 3
    lefts = torch.randint(0, 32, (50, 1), generator=replay) - 3
    for img, o, top, left in zip(x, out, tops.flatten().tolist(), lefts.flatten().tolist()):
        mask = torch.zeros(32, 32, dtype=torch.bool)
        mask[max(top, 0) : top + 6, max(left, 0) : left + 6] = True
        assert torch.equal(o == 0, mask.expand(3, 32, 32))
        assert torch.equal(o[:, ~mask], img[:, ~mask])


def test_feature_maps_of_a_weight_averaged_phase_load_its_average(run_cli, runs_dir):
    """Through the real CLI: a supervised phase with `ema` is checkpointed with its average, and
    the feature maps at the end load the average's weights (a key mismatch would fail the run)."""
    from conftest import last_json

    proc = run_cli(
        "run",
        "--preset",
        "smoke",
        "--data",
        "synthetic",
        "--device",
        "cpu",
        "--json",
        "-q",
        "--labels",
        "0.5",
        "--set",
        "data.synthetic_train_per_class=6",
        "--set",
        "data.synthetic_test_per_class=2",
        "--set",
        "data.val_fraction=0.2",
        "--set",
        "supervised.epochs=1",
        "--set",
        "supervised.batch_size=8",
        "--set",
        "supervised.ema=0.5",
        "--set",
        "runtime.featuremaps=true",
        OMP_NUM_THREADS="1",
    )
    assert proc.returncode == 0, proc.stderr
    out = last_json(proc.stdout)
    assert out["status"] == "completed" and out["results"][0]["probe"] is None
    run = runs_dir / out["run_id"]
    (ck,) = (run / "checkpoints").glob("*.pt")
    assert "ema" in torch.load(ck, weights_only=False)["modules"]
    assert (run / "featuremaps.json").is_file()
