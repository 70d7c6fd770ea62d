"""A run's resolved configuration on disk (config.toml): the plan and run options written once
when the run starts and read back by `ssltui resume`, `ssltui show` and the faces. Each part
holds only the sections it reads (`RunConfig.reads`)."""

from __future__ import annotations

import tomllib
from pathlib import Path

from ssltui.core.config import RunOptions, build_run_config, dumps_toml
from ssltui.core.errors import ConfigError, first_line
from ssltui.core.graph import digest
from ssltui.core.presets import Plan
from ssltui.core.store import RunDir, RunStore

# Runtime settings that change how a run goes, never what it computes: a resume may differ in them.
HOW_NOT_WHAT = ("workers", "log_seconds", "checkpoint_seconds")

HEADER = "ssltui resolved run configuration (every hyperparameter the run reads)"


def plan_to_toml(plan: Plan, opts: RunOptions) -> str:
    doc = {
        "preset": plan.preset,
        "description": plan.description,
        **opts.to_toml_dict(),
        "parts": [p.resolved_dict() for p in plan.parts],
    }
    return dumps_toml(doc, HEADER)


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


def plan_from_toml(run: RunDir) -> tuple[Plan, RunOptions]:
    """The plan and options a run was started with (so a resume by id needs nothing else)."""
    return plan_from_text(run.read_config_text(), str(run.config_path))


def read_plan_file(path: Path) -> tuple[Plan, RunOptions]:
    """A run configuration file (`ssltui run --config FILE`: a run's config.toml, or the one the
    app writes for the run it launches); ConfigError when it is not one."""
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


def plan_identity(plan: Plan, opts: RunOptions) -> str:
    """What was asked, as one hash: each part's settings (without its description and the runtime
    settings that only change how it runs) and the data source. `ssltui run --resume` continues
    the run of the same identity, whatever device, workers or group it is given now."""
    parts = []
    for p in plan.parts:
        d = p.resolved_dict()
        d.pop("description", None)
        d["runtime"] = {k: v for k, v in d.get("runtime", {}).items() if k not in HOW_NOT_WHAT}
        parts.append(d)
    return digest({"parts": parts, "data": opts.data})


def find_to_resume(store: RunStore, plan: Plan, opts: RunOptions) -> RunDir | None:
    """The newest unfinished run of this plan's identity (None: none)."""
    wanted = plan_identity(plan, opts)
    return store.find_unfinished(lambda run: plan_identity(*plan_from_toml(run)) == wanted)
