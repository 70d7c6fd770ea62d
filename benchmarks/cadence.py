"""Log points, validation passes and checkpoints of each phase of the `paper` study, before and
after the cadence by steps and seconds. No training: the counts come from
the cadence functions the loop calls (`ssltui.trainer.cadence`), with each phase's steps taken
from the presets and CIFAR-10's label subsets.

    python -m benchmarks.cadence                    # a table
    python -m benchmarks.cadence --json

Before (a cadence by epochs): a log point every max(1, steps_per_epoch // 8) steps and at each epoch
end, each reading the device twice (the loss, a finiteness check), and two more reads at every
epoch end; validation every `eval_every` epochs (supervised, semi: 5), every 10 (linear probe),
every epoch (RotNet's rotation accuracy over all 20,000 validation views), every
`knn.every_epochs` (SimCLR: 10); a checkpoint every `checkpoint_every` epochs and at the end.
After: this checkout's presets and `runtime` defaults. Log points are by wall time, so their
count depends on the step time: `--step-ms` per phase, by default the eager step times measured
on one H200 (docs/results.md; total phase time over steps, not a measurement of this code).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import asdict, dataclass

import numpy as np

from ssltui.core.config import RuntimeConfig
from ssltui.trainer.cadence import Cadence, simulate
from ssltui.trainer.data.splits import label_subset, validation_split

# Milliseconds a step on one H200, eager (the one measured `paper` study, docs/results.md): phase seconds over their
# steps (linear and semi: the four probes' 15 s over their 15,300 steps, the two semi phases'
# 41 s over 5,901).
H200_EAGER_MS = {
    "simclr pretrain": 23.7,
    "rotnet pretrain": 10.1,
    "supervised 1%": 14.5,
    "supervised 10%": 10.4,
    "linear": 1.0,
    "semi": 7.0,
}
# What main did before: validation every N epochs (0: only at the end) per kind of phase.
OLD_VAL_EVERY = {"supervised": 5, "semi": 5, "linear": 10, "pretrain:rotnet": 1, "pretrain:simclr": 10}
OLD_CHECKPOINT_EVERY = {"supervised": 10, "semi": 10, "linear": 30, "pretrain:rotnet": 5, "pretrain:simclr": 10}


@dataclass
class PhaseCounts:
    phase: str
    steps: int
    steps_per_epoch: int
    before_logs: int
    before_reads: int
    before_validations: int
    before_checkpoints: int
    after_logs: int
    after_validations: int
    after_checkpoints: int
    step_ms: float


def cifar_subsets() -> dict[float, int]:
    """Images in the 1% and 10% label subsets of CIFAR-10's training split (seed 0)."""
    labels = np.repeat(np.arange(10), 5000)
    train_idx, _ = validation_split(labels, 0.1, 0)
    return {f: len(label_subset(labels, train_idx, f, 0)) for f in (0.01, 0.1)}


def paper_phases() -> list[tuple[str, str, object, int]]:
    """(label, kind, TrainConfig, training items) of each phase of `paper`, one seed."""
    from ssltui.core.presets import resolve

    parts = {p.method + ":" + ",".join(p.evaluation): p for p in resolve("paper").parts}
    sub = cifar_subsets()
    out = [
        ("simclr pretrain", "pretrain:simclr", parts["simclr:linear"].pretrain, 45000),
        ("rotnet pretrain", "pretrain:rotnet", parts["rotnet:linear"].pretrain, 45000),
    ]
    for frac, n in sub.items():
        pct = f"{100 * frac:g}%"
        out += [
            (f"supervised {pct}", "supervised", parts["supervised:supervised"].supervised, n),
            (f"simclr linear {pct}", "linear", parts["simclr:linear"].linear, n),
            (f"rotnet linear {pct}", "linear", parts["rotnet:linear"].linear, n),
            (f"rotnet semi {pct}", "semi", parts["rotnet:semi"].semi, n),
        ]
    return out


def count(label: str, kind: str, cfg, n_items: int, runtime: RuntimeConfig, step_ms: float) -> PhaseCounts:
    batch = min(cfg.batch_size, n_items)
    spe = n_items // batch
    epochs = max(cfg.epochs, math.ceil(cfg.min_steps / spe))
    total = epochs * spe
    # Before: log points inside each epoch and at its end; two reads each, two more an epoch.
    log_every = max(1, spe // 8)
    logs_per_epoch = spe // log_every + (1 if spe % log_every else 0)
    old_val = OLD_VAL_EVERY[kind]
    before_val = epochs // old_val + (1 if epochs % old_val else 0)
    old_ck = OLD_CHECKPOINT_EVERY[kind]
    before_ck = epochs // old_ck + (1 if epochs % old_ck else 0)
    # After: this checkout's cadence (SimCLR's kNN monitor keeps knn.every_epochs = 10).
    val_every = getattr(cfg, "eval_every", 0) or (10 if kind == "pretrain:simclr" else 0)
    cadence = Cadence(
        total, spe, runtime.log_seconds, val_every, cfg.val_passes, runtime.checkpoint_seconds, cfg.checkpoint_every
    )
    after = simulate(cadence, step_ms / 1000)
    return PhaseCounts(
        label,
        total,
        spe,
        epochs * logs_per_epoch,
        2 * epochs * logs_per_epoch + 2 * epochs + before_val,
        before_val,
        before_ck,
        after.logs,
        after.validations,
        after.checkpoints,
        step_ms,
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--step-ms",
        type=float,
        default=None,
        help="one step time for every phase (default: the measured H200 eager times per phase)",
    )
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    runtime = RuntimeConfig()
    rows = [
        count(label, kind, cfg, n, runtime, args.step_ms or H200_EAGER_MS.get(label) or H200_EAGER_MS[kind])
        for label, kind, cfg, n in paper_phases()
    ]
    if args.json:
        print(json.dumps([asdict(r) for r in rows]))
        return 0
    print(
        f"`paper` study, one seed: before (a cadence by epochs) -> after (log every {runtime.log_seconds:g} s, "
        f"checkpoints every {runtime.checkpoint_seconds:g} s; step times assumed, see --help)"
    )
    print(
        f"  {'phase':20s} {'steps':>6s} {'/epoch':>6s} {'ms/step':>7s} {'log points':>17s} {'device reads':>13s} "
        f"{'validations':>12s} {'checkpoints':>12s}"
    )
    for r in rows:
        print(
            f"  {r.phase:20s} {r.steps:6d} {r.steps_per_epoch:6d} {r.step_ms:7.1f} "
            f"{r.before_logs:7d} -> {r.after_logs:6d} {r.before_reads:6d} -> {r.after_logs + r.after_validations:4d} "
            f"{r.before_validations:5d} -> {r.after_validations:3d} "
            f"{r.before_checkpoints:5d} -> {r.after_checkpoints:3d}"
        )
    tot = {
        k: sum(getattr(r, k) for r in rows)
        for k in (
            "steps",
            "before_logs",
            "after_logs",
            "before_reads",
            "before_validations",
            "after_validations",
            "before_checkpoints",
            "after_checkpoints",
        )
    }
    print(
        f"  {'all':20s} {tot['steps']:6d} {'':6s} {'':7s} {tot['before_logs']:7d} -> {tot['after_logs']:6d} "
        f"{tot['before_reads']:6d} -> {tot['after_logs'] + tot['after_validations']:4d} "
        f"{tot['before_validations']:5d} -> {tot['after_validations']:3d} "
        f"{tot['before_checkpoints']:5d} -> {tot['after_checkpoints']:3d}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
