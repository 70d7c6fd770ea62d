"""A run's per-epoch curves (loss and monitored accuracy of each phase), for `ssltui show` and
the results screen's curves tab. Plain data: no rich, no plotext, no torch."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from ssltui.core import registry
from ssltui.core.events import ACCURACY_NAMES, Epoch

KIND_ORDER = ("pretrain", *registry.evaluation_names())


@dataclass
class Curve:
    """One phase's epoch loss, and its monitored accuracy (percent) where measured."""

    label: str
    kind: str
    epochs: list[int]
    loss: list[float]
    acc_epochs: list[int]
    accuracy: list[float]
    acc_name: str  # validation | kNN | rotation | ''


def phase_curves(epochs: list[Epoch], prefix: str = "") -> list[Curve]:
    """A curve per phase, in the order the phases ran; a later record of an epoch (a resume) wins."""
    by_phase: dict[str, dict[int, Epoch]] = defaultdict(dict)
    for e in epochs:
        by_phase[e.phase][e.epoch] = e
    out = []
    for recs in by_phase.values():
        xs = sorted(recs)
        first = recs[xs[0]]
        acc_key = next((k for k in ACCURACY_NAMES if any(k in recs[x].accuracies() for x in xs)), None)
        acc_xs = [x for x in xs if acc_key is not None and acc_key in recs[x].accuracies()]
        out.append(
            Curve(
                f"{prefix}{first.label()}",
                first.kind,
                xs,
                [recs[x].loss for x in xs],
                acc_xs,
                [100 * recs[x].accuracies()[acc_key] for x in acc_xs],
                ACCURACY_NAMES.get(acc_key or "", ""),
            )
        )
    return out


def kinds(curves: list[Curve]) -> list[str]:
    """The phase kinds present, in the order a pipeline runs them."""
    present = {c.kind for c in curves}
    return [k for k in KIND_ORDER if k in present] + sorted(present - set(KIND_ORDER))


SMOOTHING = (0.0, 0.6, 0.9)  # the weights the curves cycle through (0: raw)


def smooth(ys: list[float], weight: float) -> list[float]:
    """An exponential moving average with weight `weight` on the past, debiased as TensorBoard's
    (the first points are not pulled toward zero); 0 returns the values as they are."""
    if weight <= 0:
        return list(ys)
    out, avg = [], 0.0
    for n, y in enumerate(ys, 1):
        avg = weight * avg + (1 - weight) * y
        out.append(avg / (1 - weight**n))
    return out
