"""The launch form's last choices, kept in the user's state dir (XDG: ~/.local/state/ssltui)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import platformdirs

from ssltui.core.errors import SsltuiError
from ssltui.core.paths import APP
from ssltui.core.store import atomic_write_json

KEYS = ("method", "preset", "labels", "seeds", "device", "data")


def state_dir() -> Path:
    """$SSLTUI_STATE_DIR, else the user state dir."""
    env = os.environ.get("SSLTUI_STATE_DIR")
    return Path(env).expanduser() if env else Path(platformdirs.user_state_dir(APP))


def choices_path() -> Path:
    return state_dir() / "launch.json"


def load_choices() -> dict[str, str]:
    """The last launch's choices; {} when none were saved or the file is unreadable."""
    try:
        raw = json.loads(choices_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(raw, dict):
        return {}
    return {k: raw[k] for k in KEYS if isinstance(raw.get(k), str)}


def save_choices(choices: dict[str, str]) -> str | None:
    """Remember the choices; the reason when they could not be written (the launch goes on)."""
    try:
        atomic_write_json(choices_path(), {k: choices[k] for k in KEYS if k in choices})
    except (OSError, SsltuiError) as exc:
        return str(getattr(exc, "message", exc))
    return None
