"""The supervised baseline: no pretraining; the `supervised` evaluation trains a ResNet-20 from
scratch on the labelled subset."""

from __future__ import annotations

from ssltui.core.registry import Method

METHOD = Method(
    name="supervised",
    title="Supervised",
    summary="the baseline: ResNet-20 from scratch on the labelled images",
    settings=None,
    evaluations=("supervised",),
    default_evaluations=("supervised",),
    reads=(),
    order=0,
    pretrains=False,
    short="sup",
)
