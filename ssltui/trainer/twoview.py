"""The pretraining every two-view method shares (SimCLR, BYOL, SimSiam, MoCo v2, Barlow Twins,
VICReg): the training split on the device as uint8, both views of every image of a batch drawn
in one batched pass, the method's loss on them, the kNN monitor, the guard rail against an
encoder that barely trains, the collapse guard, and `loop.Phase` for checkpoints and resume.

A method supplies its model (an nn.Module holding the online encoder as `encoder`, its heads
and any target network or queue: one module, so the phase checkpoint holds all of its state)
and its loss on the 2N views (view 1 of every image, then view 2). State a step changes besides
the optimised weights (an EMA target, a queue and its pointer) is updated in place inside the
step, so a CUDA graph replays it and a resume restores it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Protocol

import torch
from torch import nn

from ssltui.core.config import RunConfig
from ssltui.core.events import PhaseRef
from ssltui.trainer.augment import SimCLRAugment, normalizer
from ssltui.trainer.data.bundle import DataBundle
from ssltui.trainer.device import DeviceSettings
from ssltui.trainer.evaluation.common import encode
from ssltui.trainer.evaluation.knn import knn_accuracy
from ssltui.trainer.guard import (
    GuardCheck,
    barely_training_warning,
    conv_motion,
    guard_epoch,
    knn_bank,
    with_view_bn_statistics,
)
from ssltui.trainer.loop import Phase, RunContext, derive_seed
from ssltui.trainer.models.resnet import ResNet20
from ssltui.trainer.optim import build_optimizer
from ssltui.trainer.ssl_parts import CollapseMonitor, TermMeter

# The collapse guard: the SimSiam paper's per-dimension std of the L2-normalised output, times
# sqrt(d), is about 1 for outputs spread over the sphere and falls to 0 as they collapse to one
# point (its figure 2). Below this fraction of the spread the run is warned about, once.
COLLAPSE_LIMIT = 0.05

StepFn = Callable[[torch.Tensor], torch.Tensor]


class TwoViewModel(Protocol):
    encoder: ResNet20
    guards_collapse: bool  # optional, default True: watch the output with the collapse guard

    def views_loss(self, views: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(loss, the output the collapse guard watches) for 2N views: view 1 of N images, then view 2."""


def check_fits_data(plan, raw) -> None:
    """Refuse a method's settings that need more pretraining images than the data holds (its
    settings' `check_data`), before any run folder exists."""
    from ssltui.trainer.data.splits import validation_split

    for part in plan.parts:
        check = getattr(part.method_settings, "check_data", None)
        if check is not None:
            train_idx, _ = validation_split(raw.train_y, part.data.val_fraction, part.data.split_seed)
            check(len(train_idx), part)


def collapse_warning(spread: float, epoch: int, epochs: int) -> str | None:
    """The collapse guard's warning, or None for a healthy spread (or none measured yet)."""
    if not math.isfinite(spread) or spread >= COLLAPSE_LIMIT:
        return None
    return (
        f"the embeddings are collapsing after {epoch} of {epochs} epochs: the L2-normalised output's "
        f"per-dimension std is {spread:.3f} x 1/sqrt(d) (spread over the sphere: about 1; collapsed: 0); "
        f"check the learning rate, the EMA rate or the loss weights"
    )


def views_step(
    model: TwoViewModel,
    augment: SimCLRAugment,
    images: torch.Tensor,
    mean: torch.Tensor,
    std: torch.Tensor,
    dev: DeviceSettings,
    gen: torch.Generator,
    monitor: CollapseMonitor | None = None,
) -> StepFn:
    """The training step's loss for batch positions into `images` (uint8 on the device)."""
    normalize = normalizer(mean, std)

    def loss(pos: torch.Tensor) -> torch.Tensor:
        views = normalize(augment(images, gen, torch.cat([pos, pos]), dev.channels_last))
        with dev.autocast():
            value, out = model.views_loss(views)
        if monitor is not None:
            monitor.record(out)
        return value

    return loss


def pretrain_views(
    ctx: RunContext,
    info: PhaseRef,
    cfg: RunConfig,
    bundle: DataBundle,
    build: Callable[[], nn.Module],
    augment: SimCLRAugment,
    make_step: Callable[[nn.Module, torch.Tensor, torch.Generator, CollapseMonitor], StepFn] | None = None,
) -> ResNet20:
    """Pretrain a ResNet-20 with a two-view method on the training split's non-validation images.

    `build()` makes the method's model around a fresh encoder (its `encoder`); `make_step` its step
    function (default: `views_step` over the model's `views_loss`)."""
    dev = ctx.dev
    name = cfg.method
    # Seeded by the method and seed, not by the phase name (which hashes the settings): one seed
    # is one initial encoder and one stream of draws whatever the hyperparameters, so recipes
    # compare paired.
    gen = ctx.generator(info.seed, f"{name}/pretrain")
    model = dev.prepare(build())
    encoder = model.encoder
    optimizer = build_optimizer(cfg.pretrain, [model])
    images = bundle.train_x[bundle.train_idx]  # uint8 on the device; labels unused
    # Contrastive methods opt out (`guards_collapse = False`): their negatives repel, so a collapsed
    # output is no minimum of their loss, and early on their outputs may sit in a narrow cone.
    monitor = CollapseMonitor(dev.device) if getattr(model, "guards_collapse", True) else None
    if make_step is None:
        step = views_step(model, augment, images, bundle.mean, bundle.std, dev, gen, monitor)
    else:
        step = make_step(model, images, gen, monitor)

    knn = cfg.knn
    val_x, val_y = bundle.train_x[bundle.val_idx], bundle.train_y[bundle.val_idx]
    monitor_knn = bool(knn.every_epochs) and len(val_y) > 0
    bank_idx = knn_bank(bundle, knn.max_bank, info.seed) if monitor_knn else None

    def knn_of(model: nn.Module) -> float:
        bank = encode(model, bundle.train_x[bank_idx], bundle, dev)
        query = encode(model, val_x, bundle, dev)
        return knn_accuracy(query, val_y, bank, bundle.train_y[bank_idx], bundle.num_classes, knn.k, knn.temperature)

    # Recomputed on a resume too: the initial encoder is the same seeded draw.
    initial_convs = {k: v.detach().float().clone() for k, v in encoder.state_dict().items() if v.ndim == 4}
    knn_random = None
    if monitor_knn:
        reference = with_view_bn_statistics(
            encoder,
            bundle.train_x[bank_idx],
            augment,
            bundle,
            dev,
            derive_seed(info.seed, f"{name}/pretrain", "knn-random"),
        )
        knn_random = knn_of(reference)
        ctx.log(f"{info.phase}: kNN accuracy of the random (initial) encoder {knn_random:.2%}")

    collapse_warned = False

    def epoch_end(epoch: int) -> dict:
        nonlocal collapse_warned
        done = epoch + 1
        if monitor is not None and not collapse_warned:
            warning = collapse_warning(monitor.read(), done, phase.epochs)
            if warning:
                ctx.log(f"{info.phase}: {warning}", level="warning")
                collapse_warned = True
        # A loss of several weighted parts: each part's mean over the epoch, for the live chart.
        terms = model.terms.read() if isinstance(getattr(model, "terms", None), TermMeter) else None
        parts = {"loss_terms": {k: round(v, 6) for k, v in terms.items()}} if terms else {}
        if not monitor_knn:
            return parts
        # Short runs can sit near a random encoder while healthy (docs/experiments/simclr-lr.md); hence
        # knn.guard_min_steps.
        guard = guard_epoch(phase.epochs)
        guarded = done == guard and guard * phase.steps_per_epoch >= knn.guard_min_steps
        if done % knn.every_epochs and done != phase.epochs and not guarded:
            return parts
        acc = knn_of(encoder)
        warning = (
            barely_training_warning(
                GuardCheck(
                    acc,
                    knn_random,
                    conv_motion(encoder, initial_convs),
                    done,
                    phase.epochs,
                    done * phase.steps_per_epoch,
                ),
                cfg.pretrain,
            )
            if guarded
            else None
        )
        if warning:
            ctx.log(f"{info.phase}: {warning}", level="warning")
        return {"knn_acc": round(acc, 6), "knn_random": round(knn_random, 6), **parts}

    # The monitors keep their own cadence, by epochs: asked at every epoch's end, `epoch_end`
    # reads the collapse measure each time and measures kNN every knn.every_epochs epochs, at
    # the end, and at the guard rail's epoch.
    phase = Phase(
        ctx, info, cfg.pretrain, len(images), {"model": model}, optimizer, gen, images_per_item=2, val_every=1
    )
    if hasattr(model, "set_total_steps"):
        model.set_total_steps(phase.total_steps)
    phase.run(step, model.train, epoch_end)
    encoder.eval()
    return encoder
