"""Where ssltui keeps data, runs and user presets (XDG dirs, overridable by env/flags)."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP = "ssltui"


def data_dir(override: str | os.PathLike[str] | None = None) -> Path:
    """Downloaded data sets and decoded caches: --data-dir, $SSLTUI_DATA_DIR, user cache dir."""
    if override:
        return Path(override).expanduser()
    if env := os.environ.get("SSLTUI_DATA_DIR"):
        return Path(env).expanduser()
    return Path(platformdirs.user_cache_dir(APP))


def runs_dir(override: str | os.PathLike[str] | None = None) -> Path:
    """The run store: --runs-dir, $SSLTUI_RUNS_DIR, user data dir /runs."""
    if override:
        return Path(override).expanduser()
    if env := os.environ.get("SSLTUI_RUNS_DIR"):
        return Path(env).expanduser()
    return Path(platformdirs.user_data_dir(APP)) / "runs"


def user_presets_dir() -> Path:
    return Path(platformdirs.user_config_dir(APP)) / "presets"
