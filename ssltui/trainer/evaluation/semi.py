"""Semi-supervised fine-tuning: the pretrained encoder, its first stages frozen, and a classifier
trained on the labelled subset."""

from __future__ import annotations

from ssltui.trainer.evaluation.common import EvalJob
from ssltui.trainer.evaluation.finetune import train_classifier


def evaluate(job: EvalJob) -> dict:
    return train_classifier(job.ctx, job.ref, job.settings, job.bundle, job.subset, job.encoder)
