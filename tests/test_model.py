"""ResNet-20: He et al.'s parameter count, stage shapes, and freezing that really freezes."""

from __future__ import annotations

import pytest
import torch

from ssltui.trainer.models.resnet import (
    BatchNorm1d,
    BatchNorm2d,
    Classifier,
    ResNet20,
    count_parameters,
    freeze,
    set_train_mode,
)


def test_resnet20_parameter_count():
    enc = ResNet20()
    # He et al. 2016 report 0.27M for ResNet-20 on CIFAR-10 (option A shortcuts, 10-way head).
    assert count_parameters(enc) == 269_072
    assert count_parameters(Classifier(enc, 10)) == 269_722


def test_stage_outputs_and_feature():
    enc = ResNet20()
    x = torch.randn(2, 3, 32, 32)
    shapes = [tuple(t.shape) for t in enc.forward_stages(x)]
    assert shapes == [(2, 16, 32, 32), (2, 32, 16, 16), (2, 64, 8, 8)]
    assert enc(x).shape == (2, 64)
    # CIFAR stem: one 3x3 conv, no max-pool.
    assert enc.stem[0].kernel_size == (3, 3) and not any(isinstance(m, torch.nn.MaxPool2d) for m in enc.modules())


def test_frozen_stages_keep_weights_and_bn_statistics():
    torch.manual_seed(0)
    model = Classifier(ResNet20(), 10)
    frozen = model.encoder.frozen_modules(2)
    freeze(frozen)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    for _ in range(3):
        set_train_mode(model, frozen)
        loss = model(torch.randn(8, 3, 32, 32)).logsumexp(1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed, "nothing trained"
    assert all(k.startswith(("encoder.stages.2", "head")) for k in changed), changed


@pytest.mark.parametrize(
    "cls,ref,shape", [(BatchNorm2d, torch.nn.BatchNorm2d, (6, 4, 5, 5)), (BatchNorm1d, torch.nn.BatchNorm1d, (6, 4))]
)
def test_batchnorm_without_its_counter_is_torchs_batchnorm(cls, ref, shape):
    ours, theirs = cls(4), ref(4)
    gen = torch.Generator().manual_seed(0)
    for _ in range(3):  # training: the same outputs and running statistics, bit for bit
        x = torch.randn(shape, generator=gen) * 3 + 1
        assert torch.equal(ours(x), theirs(x))
    assert torch.equal(ours.running_mean, theirs.running_mean) and torch.equal(ours.running_var, theirs.running_var)
    assert int(ours.num_batches_tracked) == 0 and int(theirs.num_batches_tracked) == 3
    ours.eval(), theirs.eval()
    assert torch.equal(ours(x), theirs(x))
    assert set(ours.state_dict()) == set(theirs.state_dict())  # checkpoints keep their keys
    ours.load_state_dict(theirs.state_dict())
