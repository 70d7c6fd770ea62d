"""The data source a run names (`cifar10`, `synthetic` or `folder:PATH`), read without loading it:
its kind and argument, and its training images per class where they are known beforehand (the
dry run's phase lengths). Torch-free; the trainer's data package loads the source."""

from __future__ import annotations

from ssltui.core.errors import DataError

# Training images per class of the sources whose size is known without loading them.
KNOWN_CLASS_COUNTS = {"cifar10": (5000,) * 10}
SYNTHETIC_CLASS_COUNT = 10


def parse_source(spec: str) -> tuple[str, str]:
    """`cifar10`, `synthetic` or `folder:PATH` -> (kind, argument)."""
    if spec in ("cifar10", "synthetic"):
        return spec, ""
    if spec.startswith("folder:"):
        path = spec[len("folder:") :]
        if not path:
            raise DataError("--data folder: needs a path, e.g. --data folder:/data/cifar10-jpeg.tar.gz")
        return "folder", path
    raise DataError(f"--data {spec!r}: expected cifar10, synthetic or folder:PATH")


def known_class_counts(source: str, synthetic_train_per_class: int) -> tuple[int, ...] | None:
    """Training images per class of a source known without loading it (None: load it to know)."""
    if source == "synthetic":
        return (synthetic_train_per_class,) * SYNTHETIC_CLASS_COUNT
    return KNOWN_CLASS_COUNTS.get(source)
