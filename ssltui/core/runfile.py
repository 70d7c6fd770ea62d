"""A run's resolved configuration as a file: every hyperparameter of every part and the run's
options (data, device, ...). A run folder's config.toml is one; the app writes one for the run it
launches and `ssltui run --config FILE` trains from it without resolving a preset again."""

from __future__ import annotations

import tomllib
from pathlib import Path

from ssltui.core.config import RunOptions, build_run_config, dumps_toml, to_dict
from ssltui.core.errors import ConfigError, first_line
from ssltui.core.presets import Plan


def plan_to_toml(plan: Plan, opts: RunOptions) -> str:
    doc = {"preset": plan.preset, "description": plan.description, **opts.to_toml_dict(),
           "parts": [to_dict(p) for p in plan.parts]}
    return dumps_toml(doc, "ssltui resolved run configuration (every hyperparameter)")


def plan_from_text(text: str, where: str) -> tuple[Plan, RunOptions]:
    """The plan and options a run configuration holds; ConfigError naming `where` and its first
    problem when the text is not one."""
    try:
        raw = tomllib.loads(text)
        if not isinstance(raw.get("parts"), list) or not raw["parts"]:
            raise ConfigError("no [[parts]]: not a run configuration (a run folder's config.toml is one)")
        parts = [build_run_config(p) for p in raw["parts"]]
        opts = RunOptions.model_validate(raw)
        preset, description = raw.get("preset", "?"), raw.get("description", "")
        if not isinstance(preset, str) or not isinstance(description, str):
            raise ConfigError("preset and description must be strings")
    except (KeyError, TypeError, tomllib.TOMLDecodeError, ValueError) as exc:
        raise ConfigError(f"{where}: unreadable run configuration ({first_line(exc)[:120]})") from None
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc.message}") from None
    return Plan(preset, description, parts), opts


def read_plan_file(path: Path) -> tuple[Plan, RunOptions]:
    """`plan_from_text` of a file; ConfigError when it cannot be read as UTF-8 text."""
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"--config {path}: no such file") from None
    except IsADirectoryError:
        raise ConfigError(f"--config {path}: a folder, not a run configuration file") from None
    except OSError as exc:
        raise ConfigError(f"--config {path}: cannot read it ({exc.strerror or type(exc).__name__})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"--config {path}: not UTF-8 text, so not a run configuration") from None
    return plan_from_text(text, f"--config {path}")
