"""Data sources: torchvision's CIFAR-10, an image folder (or its archive), or synthetic data.

Each source is decoded once into uint8 arrays (N, 32, 32, 3) plus int64 labels and cached under the
data dir; later loads read the cache (well under a second) while the source's content still matches.
`load_source` needs no run: the CLI calls it before it makes a run folder, so a data error leaves
none behind.
"""

from __future__ import annotations

import hashlib
import os
import socket
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np

from ssltui.core.datasource import SYNTHETIC_CLASS_COUNT, parse_source
from ssltui.core.errors import DataError, RunInterrupted, first_line
from ssltui.trainer.data.cache import cache_file, load_cached, save_cached
from ssltui.trainer.data.decode import Check
from ssltui.trainer.data.folder import IMAGE_SUFFIXES, SourceState, load_image_folder, source_state
from ssltui.trainer.data.raw import RawData

__all__ = ["IMAGE_SUFFIXES", "RawData", "load_image_folder", "load_source", "make_synthetic"]

StopCheck = Callable[[], "bool | str"]


def stop_check(should_stop: StopCheck | None) -> Check:
    """A check that raises RunInterrupted once `should_stop()` is truthy (a string is the reason,
    e.g. "stopped by SIGTERM")."""

    def check() -> None:
        stop = should_stop() if should_stop is not None else False
        if stop:
            reason = stop if isinstance(stop, str) else "stopped"
            raise RunInterrupted(f"{reason} while loading data")

    return check


def load_source(
    spec: str,
    data_dir: Path,
    synthetic_train_per_class: int = 300,
    synthetic_test_per_class: int = 100,
    log: Callable[[str], None] = lambda s: None,
    should_stop: StopCheck | None = None,
    workers: int | None = None,
) -> RawData:
    """Decode (or read from the cache) the data source named by `spec`.

    `should_stop` is polled between images (truthy: raise RunInterrupted, promptly, whatever the
    decode's size); `workers` processes decode a folder or archive (default: one a CPU). What the
    load logged is kept in the result's `notes`."""
    kind, arg = parse_source(spec)
    notes: list[str] = []

    def note(message: str) -> None:
        notes.append(message)
        log(message)

    check = stop_check(should_stop)
    check()
    t0 = time.perf_counter()
    if kind == "synthetic":
        key = f"synthetic-{synthetic_train_per_class}-{synthetic_test_per_class}"
        state = SourceState(key, {"kind": "synthetic"})
        decoder: Callable[[], RawData] = partial(make_synthetic, synthetic_train_per_class, synthetic_test_per_class)
    elif kind == "cifar10":
        key = "cifar10-torchvision"
        state = SourceState(key, {"kind": "torchvision"})  # torchvision checks the download's md5
        decoder = partial(_load_torchvision_cifar10, data_dir / "cifar10", note)
    else:
        path = Path(arg).expanduser()
        state = source_state(path, check)
        # One cache a source path (not a content key): a changed source replaces its cache.
        key = f"folder-{hashlib.sha1(os.fsencode(os.path.realpath(path))).hexdigest()[:16]}"
        decoder = partial(load_image_folder, path, note, check, workers, state.members)

    cache = cache_file(data_dir, key)
    data = load_cached(cache, state, note)
    if data is None:
        data = decoder()
        data.decode_seconds = time.perf_counter() - t0
        save_cached(cache, data, state, note)
    data.load_seconds = time.perf_counter() - t0
    data.notes = notes
    return data


# ---------------------------------------------------------------- torchvision CIFAR-10


def _load_torchvision_cifar10(root: Path, log: Callable[[str], None]) -> RawData:
    from torchvision.datasets import CIFAR10

    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(
            f"{root}: cannot create the download folder ({exc.strerror or type(exc).__name__}); "
            f"choose another with --data-dir"
        ) from None
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(60)
    try:
        log(f"loading CIFAR-10 into {root} (downloading if needed)")
        train = CIFAR10(str(root), train=True, download=True)
        test = CIFAR10(str(root), train=False, download=True)
    except Exception as exc:  # noqa: BLE001 - any download/integrity failure means the same fix
        reason = first_line(exc)
        raise DataError(
            f"could not download CIFAR-10 into {root} ({reason}); without network use "
            f"--data folder:PATH with an image folder or its .tar.gz"
        ) from None
    finally:
        socket.setdefaulttimeout(old)
    return RawData(
        np.ascontiguousarray(train.data),
        np.asarray(train.targets, dtype=np.int64),
        np.ascontiguousarray(test.data),
        np.asarray(test.targets, dtype=np.int64),
        list(train.classes),
        "cifar10 (torchvision)",
    )


# ---------------------------------------------------------------- synthetic

SYNTHETIC_CLASSES = [f"pattern{i}" for i in range(SYNTHETIC_CLASS_COUNT)]


def make_synthetic(train_per_class: int = 300, test_per_class: int = 100, seed: int = 1234) -> RawData:
    """Ten classes of coloured 4x4 templates on an oriented background, with random placement,
    scale, brightness and noise: learnable in seconds, not linearly trivial, and with an
    up/down cue so rotation prediction is learnable too."""
    rng = np.random.default_rng(seed)
    templates = rng.uniform(0, 255, size=(10, 4, 4, 3))
    yy = np.linspace(1.0, 0.25, 32)[:, None, None]  # lighter at the top: a canonical orientation

    def draw(n_per_class: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        xs, ys = [], []
        for c in range(SYNTHETIC_CLASS_COUNT):
            for _ in range(n_per_class):
                tint = rng.uniform(60, 160, size=(1, 1, 3))
                img = np.broadcast_to(yy * tint, (32, 32, 3)).copy()
                size = int(rng.integers(12, 21))
                reps = int(np.ceil(size / 4))
                blob = np.kron(templates[c], np.ones((reps, reps, 1)))[:size, :size]
                blob = blob * rng.uniform(0.7, 1.2)
                # An upright bar above the blob gives objects a top as well.
                y0 = int(rng.integers(4, 32 - size + 1))
                x0 = int(rng.integers(0, 32 - size + 1))
                img[y0 : y0 + size, x0 : x0 + size] = blob
                img[y0 - 3 : y0 - 1, x0 : x0 + size // 2] = 255.0
                img += rng.normal(0, 12, size=img.shape)
                xs.append(np.clip(img, 0, 255).astype(np.uint8))
                ys.append(c)
        order = rng.permutation(len(xs))
        return np.stack(xs)[order], np.array(ys, dtype=np.int64)[order]

    trx, try_ = draw(train_per_class, rng)
    tex, tey = draw(test_per_class, rng)
    return RawData(trx, try_, tex, tey, list(SYNTHETIC_CLASSES), "synthetic")
