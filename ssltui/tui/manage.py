"""Archive and delete runs (the runs screen's `A` and `D`), without Textual.

Archived runs move to `<runs>/.archive/<id>`, which listings skip (dot folders are no runs) and
a user can move back by hand. A deletion first renames the folder out of the listing in one
step, then removes it: a run is never left half-deleted in the list.
"""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path

from ssltui.core.errors import ConfigError
from ssltui.core.store import RunDir, RunStore

ARCHIVE = ".archive"
RESUMABLE = ("interrupted", "failed", "stale", "damaged")  # statuses `ssltui resume` continues


def folder_size(path: Path) -> int:
    """Bytes in a folder (0 when it is gone)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


def _not_training(run: RunDir) -> None:
    if run.is_live():
        raise ConfigError(f"run {run.id} is training; cancel it (x) before moving it")


def archive_run(store: RunStore, run_id: str) -> Path:
    """Move the run to `<runs>/.archive/`; its new path."""
    run = store.get(run_id)
    _not_training(run)
    dest = store.root / ARCHIVE / run.id
    if dest.exists():
        raise ConfigError(f"{dest} already exists; the run stays where it is")
    try:
        dest.parent.mkdir(exist_ok=True)
        os.rename(run.path, dest)
    except OSError as exc:
        raise ConfigError(f"cannot archive {run.id} ({exc.strerror})") from None
    return dest


def delete_run(store: RunStore, run_id: str) -> None:
    """Remove the run's folder for good."""
    run = store.get(run_id)
    _not_training(run)
    doomed = store.root / f".deleting-{run.id}-{secrets.token_hex(3)}"
    try:
        os.rename(run.path, doomed)  # out of every listing at once
    except OSError as exc:
        raise ConfigError(f"cannot delete {run.id} ({exc.strerror})") from None
    shutil.rmtree(doomed, ignore_errors=True)
    if doomed.exists():
        raise ConfigError(f"{run.id} is out of the list, but {doomed} could not be removed whole (permissions?)")
