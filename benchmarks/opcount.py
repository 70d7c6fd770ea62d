"""Count the aten operations one training step of each method dispatches, by part of the step.

    python -m benchmarks.opcount                    # SimCLR and RotNet, a table
    python -m benchmarks.opcount --json --top 15    # one JSON object, with the most frequent ops
    python -m benchmarks.opcount --time 15 --batch-size 64   # and CPU milliseconds per part

On a GPU the steps of ssltui are bound by host-side dispatch (~25-35 us an operation), so the
number of operations per step is the step's cost there; it does not depend on the batch size,
so it is measured exactly on the CPU with a tiny batch. Every operation dispatched below
autograd is counted (a TorchDispatchMode: composite ops count as the ops they decompose into,
backward ops included); `kernels` leaves out view ops (views, detach, unbind: metadata only,
no kernel), `ops` has them. One warm-up step runs first: the first optimizer step also
creates the momentum buffers.

Parts: augment (batch gather, augmentation, normalisation: everything before the model's
forward), forward+loss, backward, optimizer (zero_grad and step). `--like-cuda` emulates on
the CPU what a CUDA device runs (bf16 autocast, channels_last, fused optimizers); CUDA's own
kernels (cuDNN batch norm, for one) can decompose slightly differently, so those counts are
close to, not exactly, a GPU's.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import Counter

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from benchmarks.engine_step import METHODS, EngineStep, engine_step

PARTS = ("augment", "forward+loss", "backward", "optimizer")


class OpCounter(TorchDispatchMode):
    """Counts dispatched aten operations by name into the current `part`; names of view ops
    (no kernel, only new tensor metadata) are collected in `views`."""

    def __init__(self) -> None:
        super().__init__()
        self.part = PARTS[0]
        self.counts: dict[str, Counter] = {p: Counter() for p in PARTS}
        self.views: set[str] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = str(func.overloadpacket.__name__)
        self.counts[self.part][name] += foreach_launches(name, args)
        if func.is_view:
            self.views.add(name)
        return func(*args, **(kwargs or {}))


def foreach_launches(name: str, args: tuple) -> int:
    """1, or for a multi-tensor op whose tensor lists differ in shape, one per tensor.

    CUDA runs a `_foreach_*` op as one multi-tensor kernel only when its tensor lists agree
    tensor by tensor in shape, stride and dtype; otherwise it falls back to one kernel per
    tensor (e.g. `_foreach_mul(grads, [0-d tensors])`). The CPU always loops, so this is a
    count of what a CUDA device would launch.
    """
    if not name.startswith("_foreach_"):
        return 1
    lists = [a for a in args if isinstance(a, (list, tuple)) and a and isinstance(a[0], torch.Tensor)]
    if len(lists) < 2:
        return 1
    first = lists[0]
    same = all(
        len(other) == len(first)
        and all(a.shape == b.shape and a.stride() == b.stride() and a.dtype == b.dtype for a, b in zip(first, other))
        for other in lists[1:]
    )
    return 1 if same else len(first)


def count_step(step: EngineStep, pos: torch.Tensor) -> OpCounter:
    """The operations of one whole step of `step` on batch positions `pos`, by part."""
    step(pos)  # warm-up: optimizer state, lazily built buffers
    counter = OpCounter()

    def enter_forward(*_) -> None:
        counter.part = "forward+loss"

    hook = step.model.register_forward_pre_hook(enter_forward)
    try:
        with counter:
            counter.part = "optimizer"
            step.optimizer.zero_grad(set_to_none=True)
            counter.part = "augment"
            loss = step.loss(pos)
            counter.part = "backward"
            loss.backward()
            counter.part = "optimizer"
            step.optimizer.step()
    finally:
        hook.remove()
    return counter


def time_parts(step: EngineStep, batch_size: int, steps: int) -> dict[str, float]:
    """Median milliseconds of each part over `steps` steps (after one warm-up), on random batches."""
    entered: list[float] = []
    hook = step.model.register_forward_pre_hook(lambda *_: entered.append(time.perf_counter()))
    gen = torch.Generator().manual_seed(0)
    rows = []
    try:
        for i in range(steps + 1):
            pos = torch.randint(0, step.n_items, (batch_size,), generator=gen)
            t0 = time.perf_counter()
            step.optimizer.zero_grad(set_to_none=True)
            t1 = time.perf_counter()
            loss = step.loss(pos)
            t2 = time.perf_counter()
            loss.backward()
            t3 = time.perf_counter()
            step.optimizer.step()
            t4 = time.perf_counter()
            if i:
                rows.append((entered[-1] - t1, t2 - entered[-1], t3 - t2, t1 - t0 + t4 - t3))
    finally:
        hook.remove()
    return {p: round(1000 * statistics.median(r[k] for r in rows), 2) for k, p in enumerate(PARTS)}


def tiny_bundle(device: torch.device):
    """A few synthetic images through the engine's data path (the count does not depend on them)."""
    from ssltui.trainer.data.bundle import make_bundle
    from ssltui.trainer.data.sources import make_synthetic

    return make_bundle(make_synthetic(train_per_class=10, test_per_class=1), device, 0.1, 0)


def device_settings(like_cuda: bool):
    """CPU settings, or the CUDA ones (bf16 autocast, channels_last) emulated on the CPU."""
    from ssltui.trainer.device import DeviceSettings

    if like_cuda:
        return DeviceSettings(torch.device("cpu"), torch.bfloat16, True, False)
    return DeviceSettings(torch.device("cpu"), None, False, False)


def cpu_step(method: str, batch_size: int, like_cuda: bool = False) -> EngineStep:
    dev = device_settings(like_cuda)
    return engine_step(method, tiny_bundle(dev.device), dev, batch_size, fused=like_cuda or None)


def count_method(method: str, batch_size: int = 4, like_cuda: bool = False) -> OpCounter:
    """Per-part operation counts of one step of `method` on the CPU."""
    return count_step(cpu_step(method, batch_size, like_cuda), torch.arange(batch_size))


def summary(counter: OpCounter, top: int = 0) -> dict:
    """Totals: `ops` (every dispatched op) and `kernels` (without view ops), per part and whole."""
    counts = counter.counts

    def kernels(c: Counter) -> int:
        return sum(v for k, v in c.items() if k not in counter.views)

    out = {
        "ops": sum(sum(c.values()) for c in counts.values()),
        "kernels": sum(kernels(c) for c in counts.values()),
        "parts": {p: {"ops": sum(c.values()), "kernels": kernels(c)} for p, c in counts.items()},
    }
    if top:
        out["top"] = {p: dict(c.most_common(top)) for p, c in counts.items()}
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--method", default="all", choices=(*METHODS, "all"))
    p.add_argument("--batch-size", type=int, default=4, help="images per step (the count does not depend on it)")
    p.add_argument(
        "--like-cuda",
        action="store_true",
        help="bf16 autocast, channels_last and fused optimizers, as on a CUDA device",
    )
    p.add_argument("--top", type=int, default=0, help="also list the N most frequent ops of each part")
    p.add_argument(
        "--time",
        type=int,
        default=0,
        metavar="STEPS",
        help="also time STEPS steps on the CPU (median milliseconds per part)",
    )
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = p.parse_args(argv)
    if not 2 <= args.batch_size <= 90 or args.top < 0 or args.time < 0:
        p.error("2 <= --batch-size <= 90 (the images of the tiny data set), --top >= 0, --time >= 0")
    return args


def report_method(method: str, args: argparse.Namespace) -> dict:
    out = summary(count_method(method, args.batch_size, args.like_cuda), args.top)
    if args.time:
        out["ms"] = time_parts(cpu_step(method, args.batch_size, args.like_cuda), args.batch_size, args.time)
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    methods = METHODS if args.method == "all" else (args.method,)
    report = {
        "torch": torch.__version__,
        "batch_size": args.batch_size,
        "like_cuda": args.like_cuda,
        "threads": torch.get_num_threads(),
        "methods": {m: report_method(m, args) for m in methods},
    }
    if args.json:
        print(json.dumps(report))
        return 0
    mode = "as on CUDA (bf16 autocast, channels_last, fused)" if args.like_cuda else "CPU settings"
    print(f"aten operations per training step, torch {report['torch']}, {mode}")
    print("  ops (kernels: without view ops)")
    print(f"  {'method':8s}" + "".join(f"{p:>16s}" for p in (*PARTS, "total")))
    for m, s in report["methods"].items():
        cells = [s["parts"][p] for p in PARTS] + [s]
        print(f"  {m:8s}" + "".join(f"{c['ops']:>7d} ({c['kernels']:>5d})" for c in cells))
        if "ms" in s:
            print(
                f"  {'ms':8s}"
                + "".join(f"{s['ms'][p]:>16.1f}" for p in PARTS)
                + f"{sum(s['ms'].values()):>16.1f}   (CPU, {report['threads']} threads, median)"
            )
        for p, ops in s.get("top", {}).items():
            print(f"    {p}: " + ", ".join(f"{k} {v}" for k, v in ops.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
