"""Checkpoints: written to a temporary file and renamed, read back with weights_only=True."""

from __future__ import annotations

import errno
import io
import warnings
from pathlib import Path
from typing import Any

import torch

from ssltui.core.errors import ConfigError, RunFailed, first_line
from ssltui.core.store import atomic_write_bytes

FORMAT = "ssltui-checkpoint"
VERSION = 1


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """Serialise `payload` (tensors, dicts, lists, numbers, strings) and write it atomically."""
    buf = io.BytesIO()
    torch.save({"format": FORMAT, "version": VERSION, **payload}, buf)
    try:
        atomic_write_bytes(path, buf.getvalue())
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise RunFailed(f"disk full while saving {path}; the previous checkpoint is kept") from None
        raise RunFailed(f"cannot save checkpoint {path}: {exc.strerror}") from None


def load_checkpoint(path: Path, kind: str | None = None) -> dict[str, Any]:
    """Load one of our checkpoints; anything else is refused with a one-line ConfigError."""
    if not Path(path).is_file():
        raise ConfigError(f"{path}: no such checkpoint")
    try:
        with warnings.catch_warnings():  # e.g. "pickle protocol 4": the one line below says enough
            warnings.simplefilter("ignore")
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - a hostile or broken file can make the unpickler raise anything
        # (UnpicklingError, RuntimeError, EOFError, BadZipFile, and KeyError on a bad memo index)
        first = first_line(exc)
        raise ConfigError(f"{path}: not a loadable ssltui checkpoint ({first[:160]})") from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise ConfigError(f"{path}: not an ssltui checkpoint")
    if obj.get("version") != VERSION:
        raise ConfigError(f"{path}: checkpoint version {obj.get('version')} is not {VERSION}")
    if kind is not None and obj.get("kind") != kind:
        raise ConfigError(f"{path}: a {obj.get('kind')!r} checkpoint, expected {kind!r}")
    return obj


def require_keys(ck: dict[str, Any], keys: tuple[str, ...], path: Path) -> None:
    """One-line refusal of a checkpoint of ours that lacks what its kind must hold."""
    missing = [k for k in keys if k not in ck]
    if missing:
        raise ConfigError(f"{path}: not a complete ssltui checkpoint (missing {', '.join(missing)})")


def load_state(module: torch.nn.Module, state: Any, where: str) -> None:
    """load_state_dict with a one-line error for another architecture."""
    if not isinstance(state, dict):
        raise ConfigError(f"{where}: no model weights in it")
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = first_line(exc)
        raise ConfigError(f"{where}: weights do not fit this model ({first[:160]})") from None
