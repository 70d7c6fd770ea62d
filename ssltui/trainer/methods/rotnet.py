"""RotNet pretraining (Gidaris et al. 2018): predict which of four rotations an image shows.

Every image of a batch is shown in all four rotations (0, 90, 180, 270 degrees), so a
batch of 128 images is 512 inputs to a ResNet-20 with a 4-way linear head. The step is
tensor code on the device with no host synchronisation: gather, crop and flip (one draw
per image from the phase's generator), rotate, normalise, forward, cross-entropy.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ssltui.core.config import RunConfig
from ssltui.core.events import PhaseRef
from ssltui.trainer.augment import to_float
from ssltui.trainer.data.bundle import DataBundle
from ssltui.trainer.device import DeviceSettings
from ssltui.trainer.loop import Phase, RunContext
from ssltui.trainer.losses import classifier_loss
from ssltui.trainer.models.resnet import Classifier, ResNet20
from ssltui.trainer.optim import build_optimizer
from ssltui.trainer.rotation import NUM_ROTATIONS, all_rotations, rotation_labels


def rotation_inputs(x: torch.Tensor, bundle: DataBundle, dev: DeviceSettings) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 images (N, 3, H, W) -> normalised float inputs (4N, ...) in all rotations, and labels."""
    # Rotating uint8 before to_float moves a quarter of the bytes of rotating floats.
    rotated, labels = all_rotations(x)
    xb = to_float(rotated, bundle.mean, bundle.std)
    if dev.channels_last:
        xb = xb.contiguous(memory_format=torch.channels_last)
    return xb, labels


@torch.no_grad()
def rotation_accuracy(model: nn.Module, x: torch.Tensor, bundle: DataBundle, dev: DeviceSettings) -> float:
    """Fraction of the 4N rotated copies of uint8 images `x` whose rotation `model` predicts."""
    if len(x) == 0:
        return float("nan")
    was_training = model.training
    model.eval()
    batch = max(1, dev.eval_batch_size // NUM_ROTATIONS)
    correct = torch.zeros((), dtype=torch.long, device=x.device)
    for i in range(0, len(x), batch):
        xb, yb = rotation_inputs(x[i : i + batch], bundle, dev)
        with dev.autocast():
            logits = model(xb)
        correct += (logits.argmax(1) == yb).sum()
    model.train(was_training)
    return float(correct) / (NUM_ROTATIONS * len(x))  # one host sync per evaluation


def make_loss(
    forward: Callable[[torch.Tensor], torch.Tensor],
    xs: torch.Tensor,
    stats: DataBundle,
    dev: DeviceSettings,
    gen: torch.Generator,
    labels: torch.Tensor,
    crop_flip: bool,
) -> Callable[[torch.Tensor], torch.Tensor]:
    """The training step's loss for batch positions into `xs` (uint8 on the device); `stats`
    gives the normalisation mean/std. The benchmark times this same function."""
    return classifier_loss(forward, xs, stats, dev, gen, lambda pos: labels, crop_flip, NUM_ROTATIONS)


def pretrain(ctx: RunContext, info: PhaseRef, cfg: RunConfig, bundle: DataBundle) -> ResNet20:
    """Train a ResNet-20 to predict rotations of the training images (labels unused)."""
    dev = ctx.dev
    gen = ctx.generator(info.seed, info.phase)
    model = dev.prepare(Classifier(ResNet20(), NUM_ROTATIONS))
    optimizer = build_optimizer(cfg.pretrain, [model])
    forward = dev.training_forward(model)
    # One gather of the non-validation images up front; each step then indexes one tensor.
    xs = bundle.train_x[bundle.train_idx]
    val_x = bundle.train_x[bundle.val_idx]
    phase = Phase(ctx, info, cfg.pretrain, len(xs), {"model": model}, optimizer, gen, images_per_item=NUM_ROTATIONS)
    labels = rotation_labels(phase.batch_size, dev.device)  # every step has the same shape
    step = make_loss(forward, xs, bundle, dev, gen, labels, cfg.method_settings.crop_flip)

    def epoch_end(epoch: int) -> dict:
        return {"rot_acc": round(rotation_accuracy(model, val_x, bundle, dev), 6)}

    phase.run(step, model.train, epoch_end)
    model.eval()
    return model.encoder
