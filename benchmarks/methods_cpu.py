"""Reduced-scale CPU check of the two-view methods: each pretrains a ResNet-20 for a few epochs on
a class-balanced subset of CIFAR-10 with its own preset's recipe (batch and epochs shrunk), then
its frozen features are scored on a test subset by kNN and by a linear probe, beside a random
encoder's (BatchNorm statistics of the training images, weights untrained).

    python -m benchmarks.methods_cpu --data folder:../shared/data/cifar10-jpeg.tar.gz \
        --per-class 200 --epochs 4 --batch-size 64 --out docs/experiments/methods.json

Every row also scores kNN on the VALIDATION split (held out of the training images, never the
test split). `--variant NAME=METHOD:KEY=VALUE;KEY=VALUE` adds a row for another reading of a
method's recipe (e.g. another paper's learning rate); choose between readings on `val_knn_acc`.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import platform
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ssltui.core.config import build_run_config, check_key, parse_value, set_dotted, to_dict
from ssltui.core.events import Epoch, Log, PhaseRef
from ssltui.core.paths import data_dir as default_data_dir
from ssltui.core.presets import resolve
from ssltui.core.store import RunDir
from ssltui.trainer.data.bundle import DataBundle, make_bundle
from ssltui.trainer.data.raw import RawData
from ssltui.trainer.data.sources import load_source
from ssltui.trainer.device import pick_device
from ssltui.trainer.evaluation.common import encode
from ssltui.trainer.evaluation.knn import knn_accuracy
from ssltui.trainer.loop import RunContext
from ssltui.trainer.models.resnet import ResNet20
from ssltui.trainer.optim import peak_lr

METHODS = ("simclr", "byol", "simsiam", "moco", "barlow", "vicreg")


def balanced_subset(raw: RawData, train_per_class: int, test_per_class: int, seed: int = 0) -> RawData:
    """The first `n` images of each class after a seeded shuffle, for both splits."""
    rng = np.random.default_rng(seed)

    def pick(y: np.ndarray, n: int) -> np.ndarray:
        return np.sort(np.concatenate([rng.permutation(np.flatnonzero(y == c))[:n] for c in np.unique(y)]))

    tr, te = pick(raw.train_y, train_per_class), pick(raw.test_y, test_per_class)
    return dataclasses.replace(
        raw, train_x=raw.train_x[tr], train_y=raw.train_y[tr], test_x=raw.test_x[te], test_y=raw.test_y[te]
    )


@torch.no_grad()
def random_encoder(bundle: DataBundle, seed: int) -> ResNet20:
    """An untrained ResNet-20 whose BatchNorm statistics are those of the training images."""
    torch.manual_seed(seed)
    enc = ResNet20()
    for m in enc.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None
    enc.train()
    dev = pick_device("cpu", build_run_config({}).runtime)
    x = bundle.train_x[bundle.train_idx]
    for i in range(0, len(x), 500):
        enc(((x[i : i + 500].float() / 255) - bundle.mean.view(1, -1, 1, 1)) / bundle.std.view(1, -1, 1, 1))
    del dev
    return enc.eval()


def linear_probe_acc(
    train_f: torch.Tensor,
    train_y: torch.Tensor,
    test_f: torch.Tensor,
    test_y: torch.Tensor,
    classes: int,
    steps: int = 300,
) -> float:
    """Multinomial logistic regression on standardised features (full-batch L-BFGS, weight decay 1e-4)."""
    mean, std = train_f.mean(0), train_f.std(0) + 1e-6
    a, b = (train_f - mean) / std, (test_f - mean) / std
    torch.manual_seed(0)
    layer = nn.Linear(a.shape[1], classes)
    opt = torch.optim.LBFGS(layer.parameters(), lr=0.5, max_iter=steps, history_size=20, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(layer(a), train_y) + 1e-4 * layer.weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        return float((layer(b).argmax(1) == test_y).float().mean())


def score(encoder: nn.Module, bundle: DataBundle, dev) -> dict:
    bank_x, bank_y = bundle.train_x[bundle.train_idx], bundle.train_y[bundle.train_idx]
    bank = encode(encoder, bank_x, bundle, dev)
    test = encode(encoder, bundle.test_x, bundle, dev)
    val = encode(encoder, bundle.train_x[bundle.val_idx], bundle, dev)
    val_knn = knn_accuracy(val, bundle.train_y[bundle.val_idx], bank, bank_y, bundle.num_classes, k=20, temperature=0.1)
    knn = knn_accuracy(test, bundle.test_y, bank, bank_y, bundle.num_classes, k=20, temperature=0.1)
    lin = linear_probe_acc(bank, bank_y, test, bundle.test_y, bundle.num_classes)
    return {"val_knn_acc": round(val_knn, 4), "knn_acc": round(knn, 4), "linear_acc": round(lin, 4)}


def events_steps(events: list) -> int:
    """The global steps the pretraining ran (its last epoch event's)."""
    return max((e.step for e in events if isinstance(e, Epoch)), default=0)


def parse_variant(text: str) -> tuple[str, str, dict]:
    """`NAME=METHOD:KEY=VALUE;KEY=VALUE` -> (name, method, nested overrides)."""
    name, _, rest = text.partition("=")
    method, _, sets = rest.partition(":")
    if not name or not method:
        raise SystemExit(f"--variant {text!r}: expected NAME=METHOD:KEY=VALUE;KEY=VALUE")
    overrides: dict = {}
    for item in filter(None, sets.split(";")):
        key, _, raw = item.partition("=")
        set_dotted(overrides, check_key(key.strip()), parse_value(raw, f"--variant {name} {key}"))
    return name, method, overrides


def method_config(method: str, epochs: int, batch_size: int, images: int, overrides: dict | None = None):
    """The method's linear preset, `overrides` applied, with the pretraining shrunk to `epochs`
    of `batch_size` (the learning rate follows the preset's `lr_scaling`; warm-up at most a
    quarter of the epochs)."""
    values = to_dict(resolve(f"{method}-linear").parts[0])
    for section, table in (overrides or {}).items():
        values.setdefault(section, {}).update(table)
    values["pretrain"].update(
        epochs=epochs, batch_size=batch_size, warmup_epochs=min(values["pretrain"]["warmup_epochs"], epochs / 4)
    )
    values["knn"]["every_epochs"] = 0
    settings = values.get(method) or {}
    if "queue_size" in settings:
        settings["queue_size"] = min(settings["queue_size"], images // 2)
    return build_run_config(values)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="folder:../shared/data/cifar10-jpeg.tar.gz")
    ap.add_argument("--per-class", type=int, default=200)
    ap.add_argument("--test-per-class", type=int, default=100)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--val-fraction", type=float, default=0.1, help="of the training images, held out for val_knn_acc")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument(
        "--variant",
        action="append",
        default=[],
        help="NAME=METHOD:KEY=VALUE;KEY=VALUE, another reading of a method's recipe (a row of its own)",
    )
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    raw = load_source(args.data, default_data_dir(None))
    raw = balanced_subset(raw, args.per_class, args.test_per_class, args.seed)
    dev = pick_device("cpu", build_run_config({}).runtime)
    bundle = make_bundle(raw, dev.device, args.val_fraction, 0)
    rows = [{"method": "random", "seconds": 0.0, **score(random_encoder(bundle, args.seed), bundle, dev)}]
    print(json.dumps(rows[-1]), flush=True)
    runs = [(m, m, {}) for m in filter(None, args.methods.split(","))] + [parse_variant(v) for v in args.variant]
    for name, method, overrides in runs:
        cfg = method_config(method, args.epochs, args.batch_size, len(bundle.train_idx), overrides)
        with tempfile.TemporaryDirectory() as tmp:
            run = RunDir(Path(tmp) / "run")
            run.checkpoints_dir.mkdir(parents=True)
            events: list = []
            ctx = RunContext(run, dev, events.append)
            ref = PhaseRef(phase=f"{method}/pretrain/seed{args.seed}", kind="pretrain", method=method, seed=args.seed)
            t0 = time.perf_counter()
            encoder = importlib.import_module(f"ssltui.trainer.methods.{method}").pretrain(ctx, ref, cfg, bundle)
            seconds = time.perf_counter() - t0
        warnings = [e.message for e in events if isinstance(e, Log) and e.level == "warning"]
        rows.append(
            {
                "method": name,
                **({"overrides": overrides} if overrides else {}),
                "peak_lr": round(peak_lr(cfg.pretrain), 6),
                "steps": int(events_steps(events)),
                "seconds": round(seconds, 1),
                **score(encoder, bundle, dev),
                "warnings": warnings,
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    report = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": platform.processor() or platform.machine(),
        "threads": args.threads,
        "torch": torch.__version__,
        "data": args.data,
        "train_images": int(len(bundle.train_idx)),
        "val_images": int(len(bundle.val_idx)),
        "test_images": int(len(bundle.test_y)),
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "seed": args.seed,
        "rows": rows,
    }
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "rows"}))


if __name__ == "__main__":
    main()
