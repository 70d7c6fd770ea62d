"""Training a ResNet-20 classifier on the labelled subset.

With no encoder this is the supervised baseline (from scratch); with a pretrained encoder and
`frozen_stages` it is the paper's semi-supervised fine-tuning (RotNet semi-supervised).
"""

from __future__ import annotations

import copy

import torch

from ssltui.engine.config import ClassifierConfig
from ssltui.engine.data.bundle import DataBundle
from ssltui.engine.evaluation.common import accuracy
from ssltui.engine.events import PhaseRef
from ssltui.engine.loop import Phase, RunContext
from ssltui.engine.losses import classifier_loss
from ssltui.engine.models.resnet import Classifier, ResNet20, freeze, set_train_mode
from ssltui.engine.optim import build_optimizer


def train_classifier(ctx: RunContext, info: PhaseRef, cfg: ClassifierConfig, bundle: DataBundle,
                     subset: torch.Tensor, encoder: ResNet20 | None = None) -> dict:
    """Train on `subset` (indices into the training split); return test and validation accuracy."""
    dev = ctx.dev
    gen = ctx.generator(info.seed, info.phase)
    enc = ResNet20() if encoder is None else copy.deepcopy(encoder)
    model = dev.prepare(Classifier(enc, bundle.num_classes))
    frozen = enc.frozen_modules(cfg.frozen_stages)
    freeze(frozen)
    optimizer = build_optimizer(cfg, [model])
    xs, ys = bundle.train_x[subset], bundle.train_y[subset]
    val_x, val_y = bundle.train_x[bundle.val_idx], bundle.train_y[bundle.val_idx]

    forward = dev.training_forward(model)
    step = classifier_loss(forward, xs, bundle, dev, gen, lambda pos: ys[pos], cfg.augment)

    def epoch_end(epoch: int) -> dict:
        return {"val_acc": accuracy(model, val_x, val_y, bundle, dev)}

    phase = Phase(ctx, info, cfg, len(subset), {"model": model}, optimizer, gen)
    out = phase.run(step, lambda: set_train_mode(model, frozen), epoch_end)
    test_acc = accuracy(model, bundle.test_x, bundle.test_y, bundle, dev)
    return {"test_acc": test_acc, "val_acc": out.get("val_acc"), "seconds": out["seconds"],
            "model": model}
