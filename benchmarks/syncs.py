"""Count the host reads (device syncs) a real training phase makes, per step.

    python -m benchmarks.syncs                      # this checkout
    PYTHONPATH=/path/to/other/checkout python benchmarks/syncs.py   # another one (run by path)

On a GPU every read of a device value by the host (`.item()`, `float(t)`, `bool(t)`,
`.tolist()`, a data-dependent shape such as `nonzero`) waits for all queued work, so a loop
that reads every step can never run ahead of the device. This runs the supervised phase of
the `supervised` preset (its own checkout's preset: evaluation cadence, checkpoints) on tiny
synthetic data shaped like 1% labels (3 steps an epoch), on the CPU, and counts every such
read the phase makes: in the steps, at log points, validation passes, checkpoints. A fake
clock advances `--step-ms` per step, so the time-based cadence is that of a GPU step.

Only `ssltui` and `torch` are imported, so the file also runs by path against another
checkout (`PYTHONPATH=... python benchmarks/syncs.py`): that is how the numbers before this
change were taken.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import Counter
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode

# aten operations that make the host wait for the device: a scalar read, or an output whose
# shape depends on the data.
SYNC_OPS = frozenset(
    {
        "_local_scalar_dense",
        "nonzero",
        "masked_select",
        "unique",
        "_unique",
        "_unique2",
        "unique_consecutive",
        "unique_dim",
        "equal",
        "is_nonzero",
        "allclose",
        "item",
    }
)


class HostReads(TorchDispatchMode):
    """Counts the host reads of device values made while active, by kind. `.tolist()` and
    `.numpy()` read CPU tensors without dispatching anything, so they are counted by wrapping
    those methods; `repeat_interleave` without an output size counts (its size is data)."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: Counter = Counter()
        self._patched: list[tuple[str, object]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = str(func.overloadpacket.__name__)
        kwargs = kwargs or {}
        if name in SYNC_OPS or (
            name == "repeat_interleave"
            and kwargs.get("output_size") is None
            and isinstance(args[0], torch.Tensor)
            and len(args) == 1
        ):
            self.counts[name] += 1
        return func(*args, **kwargs)

    def __enter__(self):
        for method in ("tolist", "numpy"):
            real = getattr(torch.Tensor, method)
            self._patched.append((method, real))
            setattr(torch.Tensor, method, self._counting(method, real))
        return super().__enter__()

    def __exit__(self, *exc):
        for method, real in self._patched:
            setattr(torch.Tensor, method, real)
        self._patched.clear()
        return super().__exit__(*exc)

    def _counting(self, method: str, real):
        def wrapper(t, *args, **kwargs):
            self.counts[method] += 1
            return real(t, *args, **kwargs)

        return wrapper

    @property
    def total(self) -> int:
        return sum(self.counts.values())


class FakeClock:
    """A clock that moves only when told: `step_seconds` each training step."""

    def __init__(self, step_seconds: float):
        self.now, self.step_seconds = 0.0, step_seconds

    def __call__(self) -> float:
        return self.now

    def tick(self) -> None:
        self.now += self.step_seconds


def measure(epochs: int, step_ms: float, batch: int = 4, steps_per_epoch: int = 3) -> dict:
    """Host reads of the supervised phase (this checkout's preset) over `epochs` epochs of
    `steps_per_epoch` steps of `batch` images each."""
    from ssltui.core.events import Epoch, PhaseRef, Step
    from ssltui.core.presets import resolve
    from ssltui.core.store import RunDir
    from ssltui.trainer import loop
    from ssltui.trainer.data.bundle import make_bundle
    from ssltui.trainer.data.sources import make_synthetic
    from ssltui.trainer.device import DeviceSettings
    from ssltui.trainer.evaluation.finetune import train_classifier

    cfg = (
        resolve("supervised")
        .parts[0]
        .supervised.model_copy(update={"epochs": epochs, "min_steps": 0, "batch_size": batch, "milestones": []})
    )
    bundle = make_bundle(make_synthetic(train_per_class=8, test_per_class=2), torch.device("cpu"), 0.2, 0)
    subset = bundle.train_idx[: batch * steps_per_epoch]
    saves, events = [], []
    real_save = loop.save_checkpoint
    loop.save_checkpoint = lambda path, payload: (saves.append(payload["epoch"]), real_save(path, payload))
    clock = FakeClock(step_ms / 1000)
    with tempfile.TemporaryDirectory() as tmp:
        run = RunDir(Path(tmp))
        ctx = loop.RunContext(run, DeviceSettings(torch.device("cpu"), None, False, False), events.append)
        if hasattr(ctx, "clock"):  # a checkout whose cadence is by time
            ctx.clock = clock
            _tick_every_step(clock)
        ref = PhaseRef(phase="sync/supervised", kind="supervised", method="supervised", seed=0)
        with HostReads() as reads:
            train_classifier(ctx, ref, cfg, bundle, subset)
    loop.save_checkpoint = real_save
    steps = epochs * steps_per_epoch
    epoch_events = [e for e in events if isinstance(e, Epoch)]
    return {
        "steps": steps,
        "host_reads": reads.total,
        "reads_per_step": round(reads.total / steps, 3),
        "by_kind": dict(reads.counts),
        "step_events": sum(isinstance(e, Step) for e in events),
        "epoch_events": len(epoch_events),
        "validations": sum(e.val_acc is not None for e in epoch_events),
        "checkpoints": len(saves),
        "step_ms": step_ms,
    }


def _tick_every_step(clock: FakeClock) -> None:
    from ssltui.trainer import cudagraph

    real = cudagraph.EagerSteps.__call__

    def call(self, gstep, idx):
        clock.tick()
        return real(self, gstep, idx)

    cudagraph.EagerSteps.__call__ = call


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=200, help="epochs of 3 steps (default 200: 600 steps)")
    p.add_argument("--step-ms", type=float, default=5.0, help="fake-clock milliseconds per step")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    out = measure(args.epochs, args.step_ms)
    if args.json:
        print(json.dumps(out))
    else:
        print(f"supervised phase, {out['steps']} steps of 3-step epochs, {args.step_ms:g} ms a step (fake clock):")
        print(f"  host reads {out['host_reads']} ({out['reads_per_step']} a step) {out['by_kind']}")
        print(
            f"  step events {out['step_events']}, epoch events {out['epoch_events']}, "
            f"validation passes {out['validations']}, checkpoints {out['checkpoints']}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
