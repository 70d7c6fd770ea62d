"""Data sources: torchvision's CIFAR-10, an image folder (or its archive), or synthetic data.

Each source is decoded once into uint8 arrays (N, 32, 32, 3) plus int64 labels and cached
under the data dir, keyed by the source, so later loads take well under a second.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import socket
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from ssltui.engine.errors import DataError, first_line

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".ppm", ".tif", ".tiff"}
CACHE_VERSION = 1


@dataclass
class RawData:
    """A decoded data set: uint8 NHWC images and int64 labels."""

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    classes: list[str]
    source: str
    decode_seconds: float = 0.0  # time spent decoding (0 when read from the cache)
    load_seconds: float = 0.0
    from_cache: bool = False

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def parse_source(spec: str) -> tuple[str, str]:
    """`cifar10`, `synthetic` or `folder:PATH` -> (kind, argument)."""
    if spec in ("cifar10", "synthetic"):
        return spec, ""
    if spec.startswith("folder:"):
        path = spec[len("folder:"):]
        if not path:
            raise DataError("--data folder: needs a path, e.g. --data folder:/data/cifar10-jpeg.tar.gz")
        return "folder", path
    raise DataError(f"--data {spec!r}: expected cifar10, synthetic or folder:PATH")


# ---------------------------------------------------------------- cache

def _cache_file(cache_dir: Path, key: str) -> Path:
    return cache_dir / "decoded" / f"{key}.npz"


def _save_cache(path: Path, data: RawData) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            np.savez(fh, train_x=data.train_x, train_y=data.train_y, test_x=data.test_x,
                     test_y=data.test_y, meta=np.frombuffer(json.dumps(
                         {"classes": data.classes, "source": data.source, "version": CACHE_VERSION}
                     ).encode(), dtype=np.uint8))
        os.replace(tmp, path)
    except OSError:
        # A cache that cannot be written (read-only or full disk) only costs speed next time.
        try:
            tmp.unlink()
        except OSError:
            pass


def _load_cache(path: Path) -> RawData | None:
    try:
        with np.load(path) as z:
            meta = json.loads(z["meta"].tobytes())
            if meta.get("version") != CACHE_VERSION:
                return None
            return RawData(z["train_x"], z["train_y"], z["test_x"], z["test_y"], meta["classes"],
                           meta["source"], from_cache=True)
    except (OSError, ValueError, KeyError):
        return None


def load_source(spec: str, data_dir: Path, synthetic_train_per_class: int = 300,
                synthetic_test_per_class: int = 100, log: Callable[[str], None] = lambda s: None) -> RawData:
    """Decode (or read from the cache) the data source named by `spec`."""
    kind, arg = parse_source(spec)
    t0 = time.perf_counter()
    if kind == "synthetic":
        key = f"synthetic-{synthetic_train_per_class}-{synthetic_test_per_class}-v{CACHE_VERSION}"
        decoder: Callable[[], RawData] = lambda: make_synthetic(synthetic_train_per_class,
                                                                synthetic_test_per_class)
    elif kind == "cifar10":
        key = "cifar10-torchvision"
        decoder = lambda: _load_torchvision_cifar10(data_dir / "cifar10", log)
    else:
        path = Path(arg).expanduser()
        if not path.exists():
            raise DataError(f"{path}: no such file or folder")
        st = path.stat()
        ident = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"
        key = f"folder-{hashlib.sha1(ident.encode()).hexdigest()[:16]}"
        decoder = lambda: load_image_folder(path, log)

    cache = _cache_file(data_dir, key)
    cached = _load_cache(cache) if cache.exists() else None
    if cached is not None:
        cached.load_seconds = time.perf_counter() - t0
        return cached
    data = decoder()
    data.decode_seconds = time.perf_counter() - t0
    data.load_seconds = data.decode_seconds
    _save_cache(cache, data)
    return data


# ---------------------------------------------------------------- torchvision CIFAR-10

def _load_torchvision_cifar10(root: Path, log: Callable[[str], None]) -> RawData:
    from torchvision.datasets import CIFAR10

    root.mkdir(parents=True, exist_ok=True)
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
    return RawData(np.ascontiguousarray(train.data), np.asarray(train.targets, dtype=np.int64),
                   np.ascontiguousarray(test.data), np.asarray(test.targets, dtype=np.int64),
                   list(train.classes), "cifar10 (torchvision)")


# ---------------------------------------------------------------- image folder / archive

def _decode(blob: bytes, name: str) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(blob)) as im:
            im = im.convert("RGB")
            if im.size != (32, 32):
                im = im.resize((32, 32), Image.BILINEAR)
            return np.asarray(im, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise DataError(f"{name}: not a readable image ({type(exc).__name__})") from None


def _split_member(parts: tuple[str, ...]) -> tuple[str, str] | None:
    """('train', 'cat', 'x.jpg') -> ('train', 'cat'), allowing one wrapping folder."""
    for offset in (0, 1):
        p = parts[offset:]
        if len(p) == 3 and p[0] in ("train", "test"):
            return p[0], p[1]
    return None


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or type(exc).__name__})") from None


def _iter_folder(root: Path) -> Iterable[tuple[str, str, str, Callable[[], bytes] | None]]:
    """Files, and directories (read is None) so that an empty class folder is seen too."""
    try:
        paths = sorted(root.rglob("*"))
    except OSError as exc:
        raise DataError(f"{root}: cannot list ({exc.strerror or type(exc).__name__})") from None
    for path in paths:
        rel = path.relative_to(root).parts
        if path.is_file():
            yield "/".join(rel), rel, str(path), lambda p=path: _read(p)
        elif path.is_dir() and len(rel) >= 2:
            yield "/".join(rel), (*rel, ""), str(path), None


def _iter_tar(path: Path) -> Iterable[tuple[str, tuple, str, Callable[[], bytes]]]:
    try:
        tf = tarfile.open(path, "r:*")
    except (tarfile.TarError, OSError) as exc:
        raise DataError(f"{path}: not a readable tar archive ({exc})") from None
    with tf:
        try:
            for m in tf:
                parts = tuple(p for p in m.name.split("/") if p not in ("", "."))
                if m.isfile():
                    fh = tf.extractfile(m)
                    data = fh.read() if fh is not None else b""
                    yield m.name, parts, f"{path}:{m.name}", lambda d=data: d
                elif m.isdir() and len(parts) >= 2:
                    yield m.name, (*parts, ""), f"{path}:{m.name}", None
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise DataError(f"{path}: archive is damaged ({exc})") from None


def load_image_folder(path: Path, log: Callable[[str], None] = lambda s: None) -> RawData:
    """An image folder `train/<class>/*` + `test/<class>/*`, or a .tar/.tar.gz of one."""
    try:
        is_tar = not path.is_dir() and tarfile.is_tarfile(path)
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or type(exc).__name__})") from None
    if path.is_dir():
        members = _iter_folder(path)
    elif is_tar:
        members = _iter_tar(path)
    else:
        raise DataError(f"{path}: neither a folder nor a .tar/.tar.gz archive")
    log(f"decoding images from {path}")
    images: dict[str, list[np.ndarray]] = {"train": [], "test": []}
    names: dict[str, list[str]] = {"train": [], "test": []}
    seen_dirs: dict[str, set[str]] = {"train": set(), "test": set()}
    for _name, parts, where, read in members:
        split_cls = _split_member(parts)
        if split_cls is None:
            continue
        split, cls = split_cls
        if cls.startswith("."):
            continue
        seen_dirs[split].add(cls)
        if read is None or Path(parts[-1]).suffix.lower() not in IMAGE_SUFFIXES or parts[-1].startswith("."):
            continue
        images[split].append(_decode(read(), where))
        names[split].append(cls)
    for split in ("train", "test"):
        if not seen_dirs[split]:
            raise DataError(f"{path}: no {split}/<class>/ folders with images")
    if seen_dirs["train"] != seen_dirs["test"]:
        only_train = sorted(seen_dirs["train"] - seen_dirs["test"])
        only_test = sorted(seen_dirs["test"] - seen_dirs["train"])
        raise DataError(f"{path}: train and test classes differ (only in train: {only_train}, "
                        f"only in test: {only_test})")
    classes = sorted(seen_dirs["train"])
    for split in ("train", "test"):
        present = set(names[split])
        empty = [c for c in classes if c not in present]
        if empty:
            raise DataError(f"{path}: {split}/{empty[0]} has no images")
    index = {c: i for i, c in enumerate(classes)}

    def stack(split: str) -> tuple[np.ndarray, np.ndarray]:
        return np.stack(images[split]), np.array([index[c] for c in names[split]], dtype=np.int64)

    trx, try_ = stack("train")
    tex, tey = stack("test")
    return RawData(trx, try_, tex, tey, classes, f"folder:{path}")


# ---------------------------------------------------------------- synthetic

SYNTHETIC_CLASSES = [f"pattern{i}" for i in range(10)]


def make_synthetic(train_per_class: int = 300, test_per_class: int = 100, seed: int = 1234) -> RawData:
    """Ten classes of coloured 4x4 templates on an oriented background, with random placement,
    scale, brightness and noise: learnable in seconds, not linearly trivial, and with an
    up/down cue so rotation prediction is learnable too."""
    rng = np.random.default_rng(seed)
    templates = rng.uniform(0, 255, size=(10, 4, 4, 3))
    yy = np.linspace(1.0, 0.25, 32)[:, None, None]  # lighter at the top: a canonical orientation

    def draw(n_per_class: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        xs, ys = [], []
        for c in range(10):
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
                img[y0:y0 + size, x0:x0 + size] = blob
                img[y0 - 3:y0 - 1, x0:x0 + size // 2] = 255.0
                img += rng.normal(0, 12, size=img.shape)
                xs.append(np.clip(img, 0, 255).astype(np.uint8))
                ys.append(c)
        order = rng.permutation(len(xs))
        return np.stack(xs)[order], np.array(ys, dtype=np.int64)[order]

    trx, try_ = draw(train_per_class, rng)
    tex, tey = draw(test_per_class, rng)
    return RawData(trx, try_, tex, tey, list(SYNTHETIC_CLASSES), "synthetic")
