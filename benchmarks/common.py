"""What the throughput benchmark shares: options, the data, timing, FLOP counting.

Both pipelines of a method time whole training steps (data, augmentation, forward, backward,
optimizer): ours through `engine_step` (the engine's own model, optimizer and `make_loss`),
the usual one through `usual.time_usual` (torchvision per-image transforms in a DataLoader).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from benchmarks.engine_step import EngineStep, preset_config
from ssltui.trainer.data.bundle import DataBundle


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
    """The training images outside the validation split: the engine's bundle (uint8 NCHW on the
    device, channel statistics) and the same images as uint8 NHWC numpy for a DataLoader."""

    bundle: DataBundle
    images: np.ndarray
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
        return {**asdict(self), "steps_per_s": round(self.steps_per_s, 3), "views_per_s": round(self.views_per_s, 1)}


def load_data(spec: str, device: torch.device, data_dir: Path | None = None) -> BenchData:
    """An ssltui data source (`synthetic`, `cifar10`, `folder:PATH`) on the engine's data path:
    `load_source` + `make_bundle`, with the data settings of the paper presets."""
    from ssltui.core.paths import data_dir as default_data_dir
    from ssltui.trainer.data.bundle import make_bundle
    from ssltui.trainer.data.sources import load_source

    data = preset_config("simclr").data
    raw = load_source(spec, default_data_dir(data_dir), data.synthetic_train_per_class, data.synthetic_test_per_class)
    bundle = make_bundle(raw, device, data.val_fraction, data.split_seed)
    return BenchData(bundle, raw.train_x[bundle.train_idx.cpu().numpy()], raw.source)


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


def batch_positions(n_items: int, opts: BenchOptions) -> list[torch.Tensor]:
    """Batches as the training loop draws them: slices of a random permutation per epoch."""
    per_epoch = n_items // opts.batch_size
    if per_epoch < 1:
        raise ValueError(f"--batch-size {opts.batch_size} is larger than the {n_items} training images")
    gen = torch.Generator(device=opts.device).manual_seed(opts.seed)
    out: list[torch.Tensor] = []
    while len(out) < opts.warmup + opts.steps:
        perm = torch.randperm(n_items, device=opts.device, generator=gen)
        out += [perm[i * opts.batch_size : (i + 1) * opts.batch_size] for i in range(per_epoch)]
    return out


def time_engine_step(step: EngineStep, opts: BenchOptions, describe: str) -> Measurement:
    """Whole engine steps of any method as the training loop runs them (`EngineStep.runner`:
    replayed from a CUDA graph on CUDA, captured during the warm-up steps), and the FLOPs of
    one forward + backward."""
    positions = batch_positions(step.n_items, opts)
    run = step.runner(len(positions), opts.batch_size)
    batches = iter(enumerate(positions))
    seconds = time_steps(lambda: run(*next(batches)), opts)
    if getattr(run, "mode", "eager") == "graph":
        describe += ", replayed from a CUDA graph"
    flops = count_flops(lambda: step.forward_backward(positions[0]))
    step.optimizer.zero_grad(set_to_none=True)
    return Measurement(describe, opts.steps, seconds, step.views_per_item * opts.batch_size, flops)


def count_flops(fn: Callable[[], None]) -> float:
    """FLOPs of one call (forward and backward), by torch.utils.flop_counter."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return float(counter.get_total_flops())
