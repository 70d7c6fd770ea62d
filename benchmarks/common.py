"""What every method's throughput benchmark shares: data, timing, FLOP counting.

A method's benchmark is a module `benchmarks/bench_<method>.py` with two functions,
`ours(data: BenchData, opts: BenchOptions) -> Measurement` (this project's pipeline: data on
the device, batched augmentation, bf16 autocast and channels_last on CUDA) and
`usual(data, opts) -> Measurement` (torchvision v2 per-image transforms in a DataLoader with
`opts.workers` workers, fp32). Both time whole training steps: data, forward, backward and
the optimizer step.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch


@dataclass
class BenchOptions:
    device: torch.device
    workers: int
    steps: int
    warmup: int
    batch_size: int
    seed: int = 0


@dataclass
class BenchData:
    """Training images as uint8 NHWC numpy (for the DataLoader) and NCHW on the device."""

    images: np.ndarray
    on_device: torch.Tensor
    mean: torch.Tensor  # (3,) in [0, 1], on the device
    std: torch.Tensor
    source: str


@dataclass
class Measurement:
    pipeline: str  # a one-line description
    steps: int
    seconds: float
    views_per_step: int  # augmented images through the network per step
    flops_per_step: float | None = None  # forward + backward, FlopCounterMode

    @property
    def steps_per_s(self) -> float:
        return self.steps / self.seconds

    @property
    def views_per_s(self) -> float:
        return self.steps * self.views_per_step / self.seconds

    def as_dict(self) -> dict:
        return {**asdict(self), "steps_per_s": round(self.steps_per_s, 3),
                "views_per_s": round(self.views_per_s, 1)}


def load_data(spec: str, device: torch.device, data_dir: Path | None = None) -> BenchData:
    """The training split of an ssltui data source (`synthetic`, `cifar10`, `folder:PATH`)."""
    from ssltui.engine.data.sources import load_source
    from ssltui.engine.paths import data_dir as default_data_dir

    raw = load_source(spec, default_data_dir(data_dir))
    x = raw.train_x  # (N, H, W, 3) uint8
    on_device = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))).to(device)
    flat = x.reshape(-1, 3).astype(np.float64) / 255.0
    mean = torch.tensor(flat.mean(0), dtype=torch.float32, device=device)
    std = torch.tensor(flat.std(0) + 1e-6, dtype=torch.float32, device=device)
    return BenchData(x, on_device, mean, std, raw.source)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(step: Callable[[], None], opts: BenchOptions) -> float:
    """Seconds for `opts.steps` calls of `step` after `opts.warmup` untimed ones."""
    for _ in range(opts.warmup):
        step()
    sync(opts.device)
    t0 = time.perf_counter()
    for _ in range(opts.steps):
        step()
    sync(opts.device)
    return time.perf_counter() - t0


def time_training_steps(forward_backward: Callable[[], None], opt: torch.optim.Optimizer,
                        opts: BenchOptions) -> tuple[float, float]:
    """(seconds for the timed whole steps, FLOPs of one forward+backward) of an optimizer loop."""

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        forward_backward()
        opt.step()

    seconds = time_steps(step, opts)
    flops = count_flops(forward_backward)
    opt.zero_grad(set_to_none=True)
    return seconds, flops


def count_flops(fn: Callable[[], None]) -> float:
    """FLOPs of one call (forward and backward), by torch.utils.flop_counter."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return float(counter.get_total_flops())
