"""An image folder `train/<class>/*` + `test/<class>/*`, or a .tar/.tar.gz of one: its state (what
the decode cache is checked against), its layout, and its decode.

A folder is walked to a fixed depth (`[wrapper/]split/class/file`) with one scandir per folder,
so a symlink loop or a deep tree costs nothing; an archive is streamed once, never seeked.
"""

from __future__ import annotations

import hashlib
import json
import lzma
import os
import stat
import tarfile
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ssltui.core.errors import DataError, first_line
from ssltui.trainer.data.decode import (
    CHUNK,
    MAX_FILE_BYTES,
    SIZE,
    Check,
    Item,
    chunked,
    decode_chunks,
    default_workers,
    file_kind,
    open_regular,
    os_reason,
    printable,
)
from ssltui.trainer.data.raw import RawData

SPLITS = ("train", "test")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".ppm", ".pgm", ".tif", ".tiff"}
_EXTENSIONS = {s[1:] for s in IMAGE_SUFFIXES}
WHOLE_HASH_BYTES = 100 * 2**20  # archives up to this size are hashed whole (19 MB CIFAR: ~0.1 s)
EDGE_BYTES = 2**20  # larger ones: their first and last MB, with size and mtime
ARCHIVE_ERRORS = (tarfile.TarError, OSError, EOFError, zlib.error, lzma.LZMAError)


@dataclass
class Member:
    """An image (or, with size -1, a class folder) of the source, placed in its split and class."""

    parts: tuple[str, ...]  # its path inside the folder or archive
    split: str
    cls: str
    size: int = -1
    mtime_ns: int = 0
    ctime_ns: int = 0  # set by the OS on every write, so `cp -p`/rsync keeping the mtime is seen too

    @property
    def is_image(self) -> bool:
        return self.size >= 0


@dataclass
class SourceState:
    """What a decode cache is checked against: a fingerprint of the source's content, and what it
    was made from, to say what changed."""

    fingerprint: str
    facts: dict = field(default_factory=dict)
    listing: list[list] | None = None  # a folder's [path, size, mtime_ns, ctime_ns] rows (size -1: a class folder)
    members: list[Member] | None = None  # a folder's scan, reused by its decode

    def changes_since(self, old_facts: dict, old_listing: list[list] | None) -> str:
        """What changed since a cache was written, in a few words."""
        if old_facts.get("kind") != self.facts.get("kind"):
            return f"the source was {old_facts.get('kind', 'something else')}, is now {self.facts.get('kind')}"
        if self.listing is not None:
            return _listing_changes(old_listing or [], self.listing)
        old, new = old_facts, self.facts
        if old.get("size") != new["size"]:
            return f"the archive is {new['size']:,} bytes, was {old.get('size')}"
        if old.get("sha256") != new["sha256"]:
            return f"the archive's content changed (sha256 of its {new['hashed']})"
        return "the archive's modification time changed"


def _listing_changes(old_rows: list[list], new_rows: list[list]) -> str:
    old = {row[0]: tuple(row[1:]) for row in old_rows}
    new = {row[0]: tuple(row[1:]) for row in new_rows}
    changes = {
        "changed": [p for p in new if p in old and old[p] != new[p]],
        "added": [p for p in new if p not in old],
        "removed": [p for p in old if p not in new],
    }
    files = {word: [p for p in ps if not p.endswith("/")] for word, ps in changes.items()}
    folders = sorted(p for word in ("added", "removed") for p in changes[word] if p.endswith("/"))
    counts = [f"{len(ps)} file{'s' * (len(ps) != 1)} {word}" for word, ps in files.items() if ps]
    parts = []
    if counts:
        example = next(ps[0] for ps in files.values() if ps)
        parts.append(f"{', '.join(counts)} (e.g. {printable(example)})")
    if folders:
        parts.append(f"class folders added or removed: {', '.join(printable(p) for p in folders[:3])}")
    return "; ".join(parts) or "the folder's listing changed"


def _digest(obj: object) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


def stat_source(path: Path) -> os.stat_result:
    """The source's stat, refusing (before opening it) anything but a folder or a regular file."""
    shown = printable(str(path))
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise DataError(f"{shown}: no such file or folder") from None
    except OSError as exc:
        raise DataError(f"{shown}: cannot read ({os_reason(exc)})") from None
    if not (stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode)):
        raise DataError(f"{shown}: {file_kind(st.st_mode)}, not an image folder or archive")
    return st


def source_state(path: Path, check: Check) -> SourceState:
    """A folder: its listing (paths, sizes, mtimes, ctimes; one walk). An archive: size and sha256."""
    if stat.S_ISDIR(stat_source(path).st_mode):
        members = scan_folder(path, check)
        listing = [["/".join(m.parts), m.size, m.mtime_ns, m.ctime_ns] for m in members]
        facts = {"kind": "folder", "entries": len(listing)}
        return SourceState(_digest({"kind": "folder", "listing": listing}), facts, listing, members)
    return _archive_state(path)


def _archive_state(path: Path) -> SourceState:
    with open_regular(path) as fh:
        st = os.fstat(fh.fileno())
        whole = st.st_size <= WHOLE_HASH_BYTES
        spans = [(0, st.st_size)] if whole else [(0, EDGE_BYTES), (st.st_size - EDGE_BYTES, EDGE_BYTES)]
        h = hashlib.sha256()
        try:
            for start, length in spans:  # by the stat's size: a /proc file may claim 0 and never end
                fh.seek(start)
                while length > 0 and (block := fh.read(min(length, 2**20))):
                    h.update(block)
                    length -= len(block)
        except OSError as exc:
            raise DataError(f"{printable(str(path))}: cannot read ({os_reason(exc)})") from None
    facts = {
        "kind": "archive",
        "size": st.st_size,
        "sha256": h.hexdigest(),
        "hashed": "whole file" if whole else "first and last MB",
    }
    if not whole:  # a partial hash misses an edit in the middle; the mtime may not
        facts["mtime_ns"] = st.st_mtime_ns
    return SourceState(_digest(facts), facts)


# ---------------------------------------------------------------- layout


def place(parts: tuple[str, ...]) -> tuple[str, str] | None:
    """('train', 'cat', 'x.jpg') -> ('train', 'cat'), allowing one wrapping folder; None for a
    path outside the layout or in a hidden class folder."""
    for offset in (0, 1):
        p = parts[offset:]
        if len(p) == 3 and p[0] in SPLITS and not p[1].startswith("."):
            return p[0], p[1]
    return None


def is_image_name(name: str) -> bool:
    base, dot, ext = name.rpartition(".")
    return bool(dot and base) and not name.startswith(".") and ext.lower() in _EXTENSIONS


def check_layout(path: Path, seen: dict[str, set[str]], images: list[Member]) -> list[str]:
    """The classes (sorted folder names), or a DataError naming what is wrong with the layout."""
    shown = printable(str(path))
    for split in SPLITS:
        if not seen[split]:
            raise DataError(f"{shown}: no {split}/<class>/ folders with images")
    if seen["train"] != seen["test"]:
        only_train = [printable(c) for c in sorted(seen["train"] - seen["test"])]
        only_test = [printable(c) for c in sorted(seen["test"] - seen["train"])]
        raise DataError(
            f"{shown}: train and test classes differ (only in train: {only_train}, only in test: {only_test})"
        )
    classes = sorted(seen["train"])
    counts = Counter((m.split, m.cls) for m in images)
    for split in SPLITS:
        for c in classes:
            if not counts[split, c]:
                raise DataError(f"{shown}: {split}/{printable(c)} has no images")
    if len(classes) < 2:
        raise DataError(
            f"{shown}: one class ({printable(classes[0])}); telling classes apart needs at least 2 class folders"
        )
    names = [printable(c) for c in classes]
    if len(set(names)) < len(names):
        raise DataError(f"{shown}: two class folders have the same printable name")
    return classes


# ---------------------------------------------------------------- folder


def _entries(path: str) -> list[os.DirEntry]:
    try:
        with os.scandir(path) as it:
            return list(it)
    except OSError as exc:
        raise DataError(f"{printable(path)}: cannot list ({os_reason(exc)})") from None


def _subdirs(path: str) -> list[os.DirEntry]:
    out = []
    for e in _entries(path):
        try:
            if e.is_dir():  # follows links; the walk's fixed depth makes a loop harmless
                out.append(e)
        except OSError:
            pass
    return out


def scan_folder(root: Path, check: Check) -> list[Member]:
    """Every class folder and image file in the layout, sorted by path, each image stat'ed once
    (size and mtime for the cache; its type, so that only regular files are ever read)."""
    members: list[Member] = []
    for top in _subdirs(str(root)):
        if top.name in SPLITS:
            _scan_split(top.path, (top.name,), members, check)
        for sub in _subdirs(top.path):
            if sub.name in SPLITS:
                _scan_split(sub.path, (top.name, sub.name), members, check)
    members.sort(key=lambda m: m.parts)
    return members


def _scan_split(split_path: str, prefix: tuple[str, ...], out: list[Member], check: Check) -> None:
    split = prefix[-1]
    for cls in _subdirs(split_path):
        if cls.name.startswith("."):
            continue
        check()
        out.append(Member((*prefix, cls.name, ""), split, cls.name))
        for f in _entries(cls.path):
            if not is_image_name(f.name):
                continue
            try:
                st = f.stat()
            except OSError as exc:
                raise DataError(f"{printable(f.path)}: cannot read ({os_reason(exc)})") from None
            if stat.S_ISDIR(st.st_mode):
                continue
            if not stat.S_ISREG(st.st_mode):
                raise DataError(f"{printable(f.path)}: {file_kind(st.st_mode)}, not a regular file")
            out.append(Member((*prefix, cls.name, f.name), split, cls.name, st.st_size, st.st_mtime_ns, st.st_ctime_ns))


# ---------------------------------------------------------------- archive


def _archive_items(path: Path, fh, seen: dict[str, set[str]], images: list[Member], check: Check) -> Iterator[Item]:
    """Stream the archive: record its class folders and images, yield each image's bytes."""
    shown = printable(str(path))
    try:
        with tarfile.open(fileobj=fh, mode="r|*") as tf:
            for info in tf:
                check()
                parts = tuple(p for p in info.name.split("/") if p not in ("", "."))
                where = place(parts if info.isfile() else (*parts, ""))
                if where is None or not (info.isfile() or info.isdir()):
                    continue
                seen[where[0]].add(where[1])
                if not info.isfile() or not is_image_name(parts[-1]):
                    continue
                if info.size > MAX_FILE_BYTES:
                    raise DataError(
                        f"{shown}:{printable(info.name)}: over {MAX_FILE_BYTES // 2**20} MB, too large for an image"
                    )
                images.append(Member(parts, *where, size=info.size))
                yield f"{shown}:{printable(info.name)}", tf.extractfile(info).read()
    except ARCHIVE_ERRORS as exc:
        raise DataError(f"{shown}: archive is damaged ({first_line(exc)})") from None


def _is_tar(path: Path, fh) -> bool:
    try:
        found = tarfile.is_tarfile(fh)
        fh.seek(0)
        return found
    except ARCHIVE_ERRORS as exc:
        raise DataError(f"{printable(str(path))}: cannot read ({first_line(exc)})") from None


# ---------------------------------------------------------------- decode


def load_image_folder(
    path: Path,
    log: Callable[[str], None] = lambda s: None,
    check: Check | None = None,
    workers: int | None = None,
    members: list[Member] | None = None,
) -> RawData:
    """Decode an image folder or its archive on `workers` processes (default: one a CPU).
    `check` is called between images and raises to stop; `members` is a scan already made."""
    check = check or (lambda: None)
    workers = default_workers() if workers is None else workers
    shown = printable(str(path))
    seen: dict[str, set[str]] = {s: set() for s in SPLITS}
    if stat.S_ISDIR(stat_source(path).st_mode):
        members = scan_folder(path, check) if members is None else members
        for m in members:
            seen[m.split].add(m.cls)
        images = [m for m in members if m.is_image]
        classes = check_layout(path, seen, images)  # before the decode: a wrong layout costs no wait
        log(f"decoding {len(images):,} images from {shown}")
        items = ((printable(os.path.join(str(path), *m.parts)), os.path.join(path, *m.parts)) for m in images)
        arrays = decode_chunks(chunked(items, CHUNK), workers, check, log)
    else:
        images = []
        with open_regular(path) as fh:
            if not _is_tar(path, fh):
                raise DataError(f"{shown}: neither a folder nor a .tar/.tar.gz archive")
            log(f"decoding images from {shown}")
            arrays = decode_chunks(chunked(_archive_items(path, fh, seen, images, check), CHUNK), workers, check, log)
        classes = check_layout(path, seen, images)
    return _assemble(path, arrays, images, classes)


def _assemble(path: Path, arrays: list[np.ndarray], images: list[Member], classes: list[str]) -> RawData:
    """Chunks of decoded images -> train and test arrays, filled in place (one copy, not three)."""
    index = {c: i for i, c in enumerate(classes)}
    labels = np.array([index[m.cls] for m in images], dtype=np.int64)
    is_train = np.array([m.split == "train" for m in images], dtype=bool)
    out = {
        True: np.empty((int(is_train.sum()), SIZE, SIZE, 3), np.uint8),
        False: np.empty((int((~is_train).sum()), SIZE, SIZE, 3), np.uint8),
    }
    filled = {True: 0, False: 0}
    start = 0
    for i, chunk in enumerate(arrays):
        mask = is_train[start : start + len(chunk)]
        for want in (True, False):
            part = chunk[mask == want]
            out[want][filled[want] : filled[want] + len(part)] = part
            filled[want] += len(part)
        start += len(chunk)
        arrays[i] = None  # free each chunk once copied
    return RawData(
        out[True],
        labels[is_train],
        out[False],
        labels[~is_train],
        [printable(c) for c in classes],
        f"folder:{printable(str(path))}",
    )
