"""What every evaluation is given (`EvalJob`) and the batched inference helpers they share.

An evaluation is `ssltui.trainer.evaluation.<name>.evaluate(job) -> dict` with at least
"test_acc" (and "val_acc", "probe" where it has them), looked up by its registered name.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ssltui.trainer.augment import to_float
from ssltui.trainer.data.bundle import DataBundle
from ssltui.trainer.device import DeviceSettings

if TYPE_CHECKING:
    from ssltui.core.events import PhaseRef
    from ssltui.trainer.loop import RunContext

Readout = tuple[Sequence[int], int]


@dataclass
class EvalJob:
    """One evaluation phase: its settings section, the labelled subset and, after a pretraining,
    the encoder with its validation and test features (computed once per encoder and readout)."""

    ctx: RunContext
    ref: PhaseRef
    settings: Any  # the evaluation's own section of the part's RunConfig
    bundle: DataBundle
    subset: torch.Tensor  # indices of the labelled training images
    encoder: nn.Module | None
    features: Callable[[Readout | None], dict[str, torch.Tensor]]


def evaluator(name: str) -> Callable[[EvalJob], dict]:
    """The `evaluate` function of the evaluation registered as `name`."""
    return importlib.import_module(f"ssltui.trainer.evaluation.{name}").evaluate


@torch.no_grad()
def encode(
    encoder: nn.Module, x: torch.Tensor, bundle: DataBundle, dev: DeviceSettings, readout: Readout | None = None
) -> torch.Tensor:
    """Features (N, D) float32 of uint8 images `x`, the encoder in eval mode: its own feature, or
    with `readout = (stages, grid)` those stages' outputs pooled to grid x grid (ResNet20.readout)."""
    was_training = encoder.training
    encoder.eval()
    batch_size = dev.eval_batch_size
    out = []
    for i in range(0, len(x), batch_size):
        xb = to_float(x[i : i + batch_size], bundle.mean, bundle.std)
        if dev.channels_last:
            xb = xb.contiguous(memory_format=torch.channels_last)
        with dev.autocast():
            out.append((encoder(xb) if readout is None else encoder.readout(xb, *readout)).float())
    encoder.train(was_training)
    return torch.cat(out) if out else torch.zeros(0, 1, device=x.device)


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, bundle: DataBundle, dev: DeviceSettings) -> float:
    """Top-1 accuracy (a fraction) of a classifier on uint8 images."""
    if len(x) == 0:
        return float("nan")
    was_training = model.training
    model.eval()
    batch_size = dev.eval_batch_size
    correct = torch.zeros((), device=x.device, dtype=torch.long)
    for i in range(0, len(x), batch_size):
        xb = to_float(x[i : i + batch_size], bundle.mean, bundle.std)
        if dev.channels_last:
            xb = xb.contiguous(memory_format=torch.channels_last)
        with dev.autocast():
            logits = model(xb)
        correct += (logits.argmax(1) == y[i : i + batch_size]).sum()
    model.train(was_training)
    return float(correct) / len(x)
