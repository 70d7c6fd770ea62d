"""The supervised baseline's evaluation: a classifier trained from scratch on the labelled subset."""

from __future__ import annotations

from ssltui.trainer.evaluation.common import EvalJob
from ssltui.trainer.evaluation.finetune import train_classifier


def evaluate(job: EvalJob) -> dict:
    return train_classifier(job.ctx, job.ref, job.settings, job.bundle, job.subset, None)
