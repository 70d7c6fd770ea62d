"""The benchmark helpers time the engine's real step of any method against the usual pipeline
(shown for RotNet, which has the most method-specific parts: rotations, four views an image)."""

from __future__ import annotations

import pytest
import torch

from benchmarks import common, usual
from benchmarks.engine_step import engine_step
from ssltui.trainer.data.bundle import make_bundle
from ssltui.trainer.data.sources import make_synthetic
from ssltui.trainer.device import DeviceSettings
from ssltui.trainer.methods import rotnet, simclr

CPU = DeviceSettings(torch.device("cpu"), None, False, False)


@pytest.fixture(scope="module")
def data():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny steps on a small shared box: one thread is many times faster
    raw = make_synthetic(6, 1)
    bundle = make_bundle(raw, torch.device("cpu"), 0.2, 0)
    yield common.BenchData(bundle, raw.train_x[bundle.train_idx.numpy()], "synthetic")
    torch.set_num_threads(threads)


def test_engine_step_is_the_methods_own_loss_and_optimizer(data, monkeypatch):
    for method, module, views in (("rotnet", rotnet, 4), ("simclr", simclr, 2)):
        made = []
        real = module.make_loss
        monkeypatch.setattr(
            module, "make_loss", lambda *a, real=real, made=made, **k: made.append(real(*a, **k)) or made[-1]
        )
        step = engine_step(method, data.bundle, CPU, 4)
        assert made == [step.loss]  # the loss is what the method's own make_loss returned
        assert step.views_per_item == views and step.n_items == len(data.images) == len(data.bundle.train_idx)
        before = [p.detach().clone() for p in step.model.parameters()]
        loss = step(torch.arange(4))
        assert torch.isfinite(loss)
        assert any(not torch.equal(a, b) for a, b in zip(before, step.model.parameters()))


def test_both_pipelines_time_steps_of_four_views_per_image(data):
    opts = common.BenchOptions(torch.device("cpu"), workers=0, steps=2, warmup=1, batch_size=4)
    ours = common.time_engine_step(engine_step("rotnet", data.bundle, CPU, 4), opts, "ours")
    theirs = usual.time_usual("rotnet", data, opts)
    for m in (ours, theirs):
        assert m.steps == 2 and m.views_per_step == 16 and m.seconds > 0
    assert 0.15e9 < ours.flops_per_step / 16 < 0.4e9


def test_batches_are_slices_of_epoch_permutations():
    opts = common.BenchOptions(torch.device("cpu"), workers=0, steps=5, warmup=1, batch_size=4)
    batches = common.batch_positions(10, opts)
    assert len(batches) >= 6 and all(len(b) == 4 for b in batches)
    # Two batches an epoch, disjoint within it.
    assert not set(batches[0].tolist()) & set(batches[1].tolist())
    with pytest.raises(ValueError):
        common.batch_positions(3, opts)


def test_usual_collate_builds_the_same_rotations():
    from ssltui.trainer.rotation import all_rotations

    batch = [(torch.rand(3, 8, 8),) for _ in range(3)]
    x, y = usual.rotate_collate(batch)
    ref_x, ref_y = all_rotations(torch.stack([b[0] for b in batch]))
    assert torch.equal(x, ref_x) and torch.equal(y, ref_y)


def test_usual_simclr_batch_is_first_views_then_second():
    batch = [(torch.full((1,), float(i)), torch.full((1,), 10.0 + i)) for i in range(3)]
    assert usual.two_views(batch).view(-1).tolist() == [0.0, 1.0, 2.0, 10.0, 11.0, 12.0]
