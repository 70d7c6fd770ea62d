"""The decode cache: one .npz a source under `<data dir>/decoded/`, used only while the source's
content still matches it. The cache is optional: one that is stale, damaged or unreadable is decoded
again, one that cannot be written is skipped; each case is one log line, never a failed run."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ssltui.core.errors import first_line
from ssltui.trainer.data.decode import open_regular, os_reason, printable
from ssltui.trainer.data.folder import SourceState
from ssltui.trainer.data.raw import RawData

CACHE_VERSION = 2
Log = Callable[[str], None]


def cache_file(data_dir: Path, key: str) -> Path:
    return data_dir / "decoded" / f"{key}.npz"


def _json_array(obj: object) -> np.ndarray:
    return np.frombuffer(json.dumps(obj).encode(), dtype=np.uint8)


def _when(t: object) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(t)) if isinstance(t, (int, float)) else "?"


def load_cached(path: Path, state: SourceState, log: Log) -> RawData | None:
    """The cached arrays if they were made from the source as it is now, else None (and why, logged)."""
    try:
        if not os.path.lexists(path):
            return None
        # open_regular: a FIFO planted at the cache's path must not hang the load; np.load refuses
        # pickles (allow_pickle=False), so a planted one is "unreadable", never run.
        with open_regular(path) as fh, np.load(fh) as z:
            meta = json.loads(z["meta"].tobytes())
            if meta.get("version") != CACHE_VERSION:
                log(f"decode cache stale: written in format {meta.get('version')}, not {CACHE_VERSION}; decoding again")
                return None
            if meta.get("fingerprint") != state.fingerprint:
                listing = json.loads(z["listing"].tobytes()) if "listing" in z.files else None
                reason = state.changes_since(meta.get("facts", {}), listing)
                log(f"decode cache stale: {reason} since {_when(meta.get('created'))}; decoding again")
                return None
            raw = RawData(
                z["train_x"], z["train_y"], z["test_x"], z["test_y"], meta["classes"], meta["source"], from_cache=True
            )
    except Exception as exc:  # noqa: BLE001 - the cache is optional: whatever is wrong with it, decode again
        log(
            f"decode cache unreadable: {printable(str(path))}: {type(exc).__name__}: "
            f"{first_line(exc, '')[:160]}; decoding again"
        )
        return None
    problem = raw.problem()
    if problem is not None:
        log(f"decode cache unreadable: {printable(str(path))}: {problem}; decoding again")
        return None
    return raw


def save_cached(path: Path, data: RawData, state: SourceState, log: Log) -> None:
    """Write the cache whole (temporary file, then rename) or not at all."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    meta = {
        "version": CACHE_VERSION,
        "classes": data.classes,
        "source": data.source,
        "fingerprint": state.fingerprint,
        "facts": state.facts,
        "created": time.time(),
    }
    extra = {"listing": _json_array(state.listing)} if state.listing is not None else {}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as fh:
            np.savez(
                fh,
                train_x=data.train_x,
                train_y=data.train_y,
                test_x=data.test_x,
                test_y=data.test_y,
                meta=_json_array(meta),
                **extra,
            )
        os.replace(tmp, path)
    except OSError as exc:
        log(f"decode cache not saved ({printable(str(path.parent))}: {os_reason(exc)}); the next run decodes again")
        try:
            tmp.unlink()
        except OSError:
            pass
