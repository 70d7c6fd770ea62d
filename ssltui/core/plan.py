"""A run's resolved configuration on disk (config.toml): the plan and run options written once
when the run starts and read back by `ssltui resume`, `ssltui show` and the faces. Each part
holds only the sections it reads (`RunConfig.reads`)."""

from __future__ import annotations

import tomllib

from ssltui.core.config import RunOptions, build_run_config, dumps_toml
from ssltui.core.errors import ConfigError, first_line
from ssltui.core.presets import Plan
from ssltui.core.store import RunDir

HEADER = "ssltui resolved run configuration (every hyperparameter the run reads)"


def plan_to_toml(plan: Plan, opts: RunOptions) -> str:
    doc = {"preset": plan.preset, "description": plan.description, **opts.to_toml_dict(),
           "parts": [p.resolved_dict() for p in plan.parts]}
    return dumps_toml(doc, HEADER)


def plan_from_toml(run: RunDir) -> tuple[Plan, RunOptions]:
    """The plan and options a run was started with (so a resume by id needs nothing else)."""
    text = run.read_config_text()
    try:
        raw = tomllib.loads(text)
        parts = [build_run_config(p) for p in raw["parts"]]
        opts = RunOptions.model_validate(raw)
    except (KeyError, TypeError, tomllib.TOMLDecodeError, ValueError) as exc:
        raise ConfigError(f"{run.config_path}: unreadable run configuration ({first_line(exc)[:120]})") from None
    except ConfigError as exc:
        raise ConfigError(f"{run.config_path}: {exc.message}") from None
    return Plan(raw.get("preset", "?"), raw.get("description", ""), parts), opts
