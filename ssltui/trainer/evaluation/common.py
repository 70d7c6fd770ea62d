"""Batched inference helpers shared by the evaluations."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ssltui.trainer.augment import to_float
from ssltui.trainer.data.bundle import DataBundle
from ssltui.trainer.device import DeviceSettings


@torch.no_grad()
def encode(encoder: nn.Module, x: torch.Tensor, bundle: DataBundle, dev: DeviceSettings,
           readout: tuple[Sequence[int], int] | None = None) -> torch.Tensor:
    """Features (N, D) float32 of uint8 images `x`, the encoder in eval mode: its own feature, or
    with `readout = (stages, grid)` those stages' outputs pooled to grid x grid (ResNet20.readout)."""
    was_training = encoder.training
    encoder.eval()
    batch_size = dev.eval_batch_size
    out = []
    for i in range(0, len(x), batch_size):
        xb = to_float(x[i:i + batch_size], bundle.mean, bundle.std)
        if dev.channels_last:
            xb = xb.contiguous(memory_format=torch.channels_last)
        with dev.autocast():
            out.append((encoder(xb) if readout is None else encoder.readout(xb, *readout)).float())
    encoder.train(was_training)
    return torch.cat(out) if out else torch.zeros(0, 1, device=x.device)


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, bundle: DataBundle,
             dev: DeviceSettings) -> float:
    """Top-1 accuracy (a fraction) of a classifier on uint8 images."""
    if len(x) == 0:
        return float("nan")
    was_training = model.training
    model.eval()
    batch_size = dev.eval_batch_size
    correct = torch.zeros((), device=x.device, dtype=torch.long)
    for i in range(0, len(x), batch_size):
        xb = to_float(x[i:i + batch_size], bundle.mean, bundle.std)
        if dev.channels_last:
            xb = xb.contiguous(memory_format=torch.channels_last)
        with dev.autocast():
            logits = model(xb)
        correct += (logits.argmax(1) == y[i:i + batch_size]).sum()
    model.train(was_training)
    return float(correct) / len(x)
