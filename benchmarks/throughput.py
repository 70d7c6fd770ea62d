"""Pretraining throughput: this project's pipeline against the usual one, on one machine, in one run.

    python benchmarks/throughput.py --device cuda --workers 8 --steps 50 --batch-size 512
    python benchmarks/throughput.py --device cpu --workers 2 --steps 5 --batch-size 128 --json

For each method (`--method simclr|rotnet|all`; a method is benchmarked when
`benchmarks/bench_<method>.py` exists, see common.py for its two functions) it times whole
training steps (data, augmentation, forward, backward, optimizer) of both pipelines and prints
augmented views per second, steps per second and the ratio ours / usual. On CUDA it also
reports the fraction of the GPU's bf16 peak our step reaches (FLOPs of forward + backward
counted by torch.utils.flop_counter.FlopCounterMode; `--peak-tflops`, default 989: the dense
bf16 peak of an H100 SXM, the same for an H200).
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import json
import os
import platform
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]  # `common`, `bench_*` and the ssltui package

import torch  # noqa: E402

from common import BenchOptions, load_data  # noqa: E402

METHODS = ("simclr", "rotnet")


def available_methods() -> list[str]:
    return [m for m in METHODS if (HERE / f"bench_{m}.py").is_file()]


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
    p.add_argument("--peak-tflops", type=float, default=989.0,
                   help="the accelerator's dense bf16 peak in TFLOP/s (H100 SXM and H200: 989)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads of the main process")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = p.parse_args(argv)
    if args.steps < 1 or args.batch_size < 2 or args.workers < 0 or args.warmup < 0:
        p.error("--steps >= 1, --batch-size >= 2, --workers >= 0, --warmup >= 0")
    return args


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
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    methods = available_methods() if args.method == "all" else [args.method]
    missing = [m for m in methods if m not in available_methods()]
    if missing:
        print(f"--method {missing[0]}: benchmarks/bench_{missing[0]}.py is absent", file=sys.stderr)
        return 2

    from ssltui.engine.errors import SsltuiError

    try:
        data = load_data(args.data, device, args.data_dir)
    except SsltuiError as exc:
        print(f"--data {args.data}: {exc.message}", file=sys.stderr)
        return int(exc.exit_code)
    opts = BenchOptions(device, args.workers, args.steps, args.warmup, args.batch_size)
    dev_name = torch.cuda.get_device_name(device) if device.type == "cuda" else \
        f"cpu ({platform.processor() or platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} threads)"
    report = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "device": dev_name, "torch": torch.__version__, "data": data.source, "images": len(data.images),
              "batch_size": args.batch_size, "steps": args.steps, "warmup": args.warmup,
              "workers": args.workers, "methods": {}}
    for m in methods:
        bench = importlib.import_module(f"bench_{m}")
        ours = bench.ours(data, opts)
        usual = bench.usual(data, opts)
        entry = {"ours": ours.as_dict(), "usual": usual.as_dict(),
                 "ratio": round(ours.views_per_s / usual.views_per_s, 3)}
        if ours.flops_per_step:
            achieved = ours.flops_per_step * ours.steps_per_s / 1e12
            entry["ours_tflops"] = round(achieved, 4)
            if device.type == "cuda":
                entry["peak_tflops"] = args.peak_tflops
                entry["fraction_of_bf16_peak"] = round(achieved / args.peak_tflops, 5)
        report["methods"][m] = entry

    if args.json:
        print(json.dumps(report))
        return 0
    print(f"{report['date']}  {report['device']}  torch {report['torch']}  data {report['data']} "
          f"({report['images']} images)  batch {args.batch_size}  {args.steps} steps (+{args.warmup} warm-up)")
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
