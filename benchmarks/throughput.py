"""Pretraining throughput: the engine's training step against the usual pipeline, in one run.

    python -m benchmarks.throughput --device cuda --method all --workers 8 --steps 50 --batch-size 512
    python -m benchmarks.throughput --device cpu --workers 2 --steps 5 --batch-size 128 --json

For each method (`--method simclr|rotnet|all`) it times whole training steps (data,
augmentation, forward, backward, optimizer) of both pipelines and prints augmented views per
second, steps per second and the ratio ours / usual. Ours is the engine's real step
(`benchmarks.engine_step`: the method's paper preset, its `make_loss` and optimizer, uint8
images on the device as `load_source` + `make_bundle` put them there, bf16 autocast and
channels_last on CUDA); the usual one is torchvision v2 per-image transforms in a DataLoader
with workers, fp32 (`benchmarks.usual`). On CUDA it also reports the fraction of the GPU's bf16
peak our step reaches (FLOPs of forward + backward counted by
torch.utils.flop_counter.FlopCounterMode; `--peak-tflops`, default 989: the dense bf16 peak
of an H100 SXM, the same for an H200).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
from pathlib import Path

import torch

from benchmarks.common import BenchOptions, load_data, time_engine_step
from benchmarks.engine_step import METHODS, engine_step, preset_config
from benchmarks.usual import time_usual


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--method", default="simclr", choices=(*METHODS, "all"))
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--workers", type=int, default=8, help="DataLoader workers of the usual pipeline")
    p.add_argument("--steps", type=int, default=30, help="timed training steps per pipeline")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first (worker start-up, cuDNN autotune)")
    p.add_argument("--batch-size", type=int, default=512, help="images per step (SimCLR: two views each)")
    p.add_argument("--data", default="synthetic", help="synthetic | cifar10 | folder:PATH (ssltui's sources)")
    p.add_argument("--data-dir", type=Path, default=None, help="decode cache (default: ssltui's data dir)")
    p.add_argument(
        "--peak-tflops",
        type=float,
        default=989.0,
        help="the accelerator's dense bf16 peak in TFLOP/s (H100 SXM and H200: 989)",
    )
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads of the main process")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = p.parse_args(argv)
    if args.steps < 1 or args.batch_size < 2 or args.workers < 0 or args.warmup < 0:
        p.error("--steps >= 1, --batch-size >= 2, --workers >= 0, --warmup >= 0")
    return args


def measure(method: str, data, opts: BenchOptions, device_name: str, peak_tflops: float) -> dict:
    """Both pipelines of one method, the ratio, and our FLOP rate."""
    from ssltui.trainer.device import pick_device

    settings = pick_device(device_name, preset_config(method).runtime)
    where = "bf16 autocast, channels_last" if settings.device.type == "cuda" else "fp32"
    step = engine_step(method, data.bundle, settings, opts.batch_size, opts.seed)
    ours = time_engine_step(
        step,
        opts,
        f"ours: the engine's {method} step, uint8 data on {settings.device.type}, batched augmentation, {where}",
    )
    del step
    usual = time_usual(method, data, opts)
    entry = {"ours": ours.as_dict(), "usual": usual.as_dict(), "ratio": round(ours.views_per_s / usual.views_per_s, 3)}
    if ours.flops_per_step:
        achieved = ours.flops_per_step * ours.steps_per_s / 1e12
        entry["ours_tflops"] = round(achieved, 4)
        if settings.device.type == "cuda":
            entry["peak_tflops"] = peak_tflops
            entry["fraction_of_bf16_peak"] = round(achieved / peak_tflops, 5)
    return entry


def print_table(report: dict) -> None:
    print(
        f"{report['date']}  {report['device']}  torch {report['torch']}  data {report['data']} "
        f"({report['images']} images)  batch {report['batch_size']}  {report['steps']} steps "
        f"(+{report['warmup']} warm-up)"
    )
    for m, e in report["methods"].items():
        for key in ("ours", "usual"):
            r = e[key]
            print(f"  {m:7s} {r['views_per_s']:10.1f} views/s {r['steps_per_s']:8.3f} steps/s   {r['pipeline']}")
        line = f"  {m:7s} ratio ours/usual: {e['ratio']:.2f}x"
        if "ours_tflops" in e:
            line += f"   ours: {e['ours_tflops']:.3f} TFLOP/s (fwd+bwd)"
        if "fraction_of_bf16_peak" in e:
            line += f" = {100 * e['fraction_of_bf16_peak']:.2f}% of {e['peak_tflops']:g} TFLOP/s bf16 peak"
        print(line)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    name = args.device
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        print(f"--device {name}: no CUDA device is available", file=sys.stderr)
        return 2
    device = torch.device(name)

    from ssltui.core.errors import SsltuiError

    try:
        data = load_data(args.data, device, args.data_dir)
    except SsltuiError as exc:
        print(f"--data {args.data}: {exc.message}", file=sys.stderr)
        return int(exc.exit_code)
    if len(data.images) < args.batch_size:
        print(f"--batch-size {args.batch_size}: only {len(data.images)} training images", file=sys.stderr)
        return 2
    opts = BenchOptions(device, args.workers, args.steps, args.warmup, args.batch_size)
    dev_name = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"cpu ({platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"{torch.get_num_threads()} threads)"
    )
    report = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "device": dev_name,
        "torch": torch.__version__,
        "data": data.source,
        "images": len(data.images),
        "batch_size": args.batch_size,
        "steps": args.steps,
        "warmup": args.warmup,
        "workers": args.workers,
        "methods": {},
    }
    methods = METHODS if args.method == "all" else (args.method,)
    for m in methods:
        report["methods"][m] = measure(m, data, opts, name, args.peak_tflops)
    if args.json:
        print(json.dumps(report))
    else:
        print_table(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
