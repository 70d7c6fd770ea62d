"""Presets: TOML files of hyperparameters, and studies that combine several of them.

A run preset describes one method's pipeline (its pretraining and evaluations). A study
preset (`study = [...]`) lists run presets, each with optional overrides; its other keys and
tables (labels, seeds, [pretrain], ...) apply to every part. `paper` is one.
A preset may name the data it is meant for (`[data] source = "synthetic"`): the source `--data`
defaults to with it. It is a run option, not a hyperparameter, so it never reaches RunConfig.
Presets are looked up in $SSLTUI_PRESETS_DIR, the user presets dir, then the shipped ones.
"""

from __future__ import annotations

import os
import sys
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ssltui.core.config import (
    DEFAULT_EVALUATIONS,
    METHODS,
    VALID_EVALUATIONS,
    DataConfig,
    RunConfig,
    RuntimeConfig,
    build_run_config,
    check_read,
    deep_merge,
    parse_list,
    parse_set_options,
)
from ssltui.core.errors import ConfigError, quoted
from ssltui.core.paths import user_presets_dir

DEFAULT_PRESET = "supervised"  # `ssltui run` and `ssltui sweep` without --preset


def preset_dirs() -> list[Path]:
    """Where presets are looked up, first match wins."""
    dirs = []
    if env := os.environ.get("SSLTUI_PRESETS_DIR"):
        dirs.append(Path(env))
    dirs.append(user_presets_dir())
    repo = Path(__file__).resolve().parents[2] / "presets"  # a checkout or editable install
    dirs.append(repo)
    dirs.append(Path(sys.prefix) / "share" / "ssltui" / "presets")  # a wheel install
    return [d for d in dirs if d.is_dir()]


@dataclass
class PresetInfo:
    name: str
    path: Path
    description: str
    method: str
    evaluation: str
    kind: str  # "run" or "study"
    data: str | None = None  # the preset's data source ([data] source), when it names one


def data_source(raw: dict[str, Any]) -> str | None:
    """The `[data] source` a preset names, if any."""
    data = raw.get("data")
    source = data.get("source") if isinstance(data, dict) else None
    return source if isinstance(source, str) and source.strip() else None


def _without_source(raw: dict[str, Any]) -> dict[str, Any]:
    """The preset without its data source (a run option, which RunConfig does not take)."""
    if isinstance(raw.get("data"), dict) and "source" in raw["data"]:
        raw = {**raw, "data": {k: v for k, v in raw["data"].items() if k != "source"}}
    return raw


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            data = fh.read()
        return tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"preset {path}: not UTF-8 text (byte {exc.start})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"preset {path}: not valid TOML ({exc})") from None
    except RecursionError:
        raise ConfigError(f"preset {path}: tables or arrays nested too deeply to read") from None
    except OSError as exc:
        raise ConfigError(f"preset {path}: cannot read ({exc.strerror})") from None


MAX_BASE_DEPTH = 16  # presets based on presets based on ...: deeper is a mistake, not a design


def _read_preset(path: Path, chain: tuple[str, ...] = ()) -> dict[str, Any]:
    """A preset file with its `base` applied: the base preset's tables and keys, then this file's
    (tables merge key by key; a value, or a list, replaces the base's)."""
    raw = _read_toml(path)
    if "base" not in raw:
        return raw
    name, base = path.stem, raw["base"]
    if not isinstance(base, str) or not base.strip():
        raise ConfigError(f"preset {quoted(name)}: base must name a preset (a string), got {base!r}")
    if base in (*chain, name):
        raise ConfigError(f"preset {quoted(name)}: base {base!r} is circular ({' -> '.join([*chain, name, base])})")
    if len(chain) >= MAX_BASE_DEPTH:
        raise ConfigError(f"preset {quoted(name)}: more than {MAX_BASE_DEPTH} presets deep in bases")
    beside = path.parent / f"{base}.toml"  # a shipped preset's base is the shipped one, not a user's
    try:
        base_path = beside if beside.is_file() else find_preset(base)
    except ConfigError as exc:
        raise ConfigError(f"preset {quoted(name)}: base {base!r}: {exc.message}") from None
    parent = _read_preset(base_path, (*chain, name))
    own = {k: v for k, v in raw.items() if k != "base"}
    if ("study" in own and "study" not in parent) or ("study" in parent and "method" in own):
        raise ConfigError(
            f"preset {quoted(name)}: base {base!r} is a {'study' if 'study' in parent else 'run preset'}; "
            f"a study's base is a study, a run preset's a run preset"
        )
    return deep_merge(parent, own)


def find_preset(name: str) -> Path:
    """The file of preset `name` (a name or a path to a .toml file)."""
    if name.endswith(".toml") or os.sep in name:
        p = Path(name)
        if not p.is_file():
            raise ConfigError(f"preset file {quoted(name)} does not exist")
        return p
    for d in preset_dirs():
        p = d / f"{name}.toml"
        if p.is_file():
            return p
    known = ", ".join(sorted({p.stem for d in preset_dirs() for p in d.glob("*.toml")}))
    raise ConfigError(f"unknown preset {quoted(name)}; known: {known}")


def list_presets(warn: Callable[[str], None] | None = None) -> list[PresetInfo]:
    """All presets by name (earlier dirs shadow later ones). A file that cannot be read (not
    UTF-8, not TOML, no permission) is left out, and `warn` gets one line saying why: one bad
    user preset must not hide the others."""
    seen: dict[str, PresetInfo] = {}
    for d in preset_dirs():
        for p in sorted(d.glob("*.toml")):
            if p.stem in seen:
                continue
            try:
                raw = _read_preset(p)
            except ConfigError as exc:
                if warn is not None:
                    warn(f"skipped {exc.message}")
                continue
            if "study" in raw:
                entries = raw["study"] if isinstance(raw["study"], list) else []
                first = entries[0] if entries else None
                first = first.get("preset") if isinstance(first, dict) else first
                source = data_source(raw)
                if source is None and isinstance(first, str):
                    try:
                        source = data_source(_read_preset(find_preset(first)))
                    except ConfigError:
                        pass
                seen[p.stem] = PresetInfo(
                    p.stem, p, str(raw.get("description", "")), "study", f"{len(entries)} parts", "study", source
                )
            else:
                method = str(raw.get("method", METHODS[0]))
                ev = raw.get("evaluation", DEFAULT_EVALUATIONS.get(method, ["?"]))
                ev = ev if isinstance(ev, list) else [ev]
                seen[p.stem] = PresetInfo(
                    p.stem, p, str(raw.get("description", "")), method, ",".join(map(str, ev)), "run", data_source(raw)
                )
    return sorted(seen.values(), key=lambda i: i.name)


RUN_WIDE = ("data", "runtime")  # sections a run has once, whatever its parts


@dataclass
class Plan:
    """What one `ssltui run` will do: one or more method pipelines (parts), and the run-wide
    `data` and `runtime` settings every part shares (`resolve` refuses parts that disagree)."""

    preset: str
    description: str
    parts: list[RunConfig] = field(default_factory=list)
    data: str | None = None  # the data source the preset names (`--data` defaults to it)

    @property
    def data_settings(self) -> DataConfig:
        return self.parts[0].data

    @property
    def runtime(self) -> RuntimeConfig:
        return self.parts[0].runtime


def check_run_wide(preset: str, parts: list[RunConfig]) -> None:
    """A run has one `data` and one `runtime` table: parts that disagree on one are refused."""
    for section in RUN_WIDE:
        first = getattr(parts[0], section)
        for i, part in enumerate(parts[1:], 1):
            other = getattr(part, section)
            for key in type(first).model_fields:
                a, b = getattr(first, key), getattr(other, key)
                if a != b:
                    raise ConfigError(
                        f"preset {quoted(preset)}: its parts disagree on the run-wide setting {section}.{key} "
                        f"({a!r} in part 1, {b!r} in part {i + 1}); a run has one: set it in the study's "
                        f"[{section}] table or with --set {section}.{key}=VALUE"
                    )


def _run_raw(name: str, stack: tuple[str, ...] = ()) -> dict[str, Any]:
    raw = _read_preset(find_preset(name))
    if "study" in raw:
        raise ConfigError(f"preset {quoted(name)} is a study; a study cannot be part of {stack[-1]!r}")
    return raw


def resolve(
    preset: str,
    method: str | None = None,
    evaluation: list[str] | None = None,
    labels: list[float] | None = None,
    seeds: list[int] | None = None,
    sets: list[str] | None = None,
) -> Plan:
    """Load a preset and apply the command-line overrides, validating everything."""
    try:
        preset.encode("utf-8")
    except UnicodeEncodeError:  # the name is written into the run's config.toml and summary.json
        raise ConfigError(f"--preset {quoted(preset)}: the path is not valid UTF-8 text; rename the file") from None
    raw = _read_preset(find_preset(preset))
    source = data_source(raw)
    raw = _without_source(raw)
    cli: dict[str, Any] = {}
    if labels is not None:
        cli["labels"] = labels
    if seeds is not None:
        cli["seeds"] = seeds
    cli = deep_merge(cli, parse_set_options(sets or []))

    if "study" in raw:
        if method is not None or evaluation is not None:
            raise ConfigError(f"preset {quoted(preset)} is a study; --method/--evaluation apply to run presets")
        # Everything but the list and its description applies to every part (labels, seeds,
        # and whole sections such as [pretrain] or [data]).
        common = {k: v for k, v in raw.items() if k not in ("study", "description")}
        if not isinstance(raw["study"], list) or not raw["study"]:
            raise ConfigError(f"preset {quoted(preset)}: study must be a non-empty list of presets")
        raws = []
        for entry in raw["study"]:
            if isinstance(entry, str):
                entry = {"preset": entry}
            if not isinstance(entry, dict) or not isinstance(entry.get("preset"), str):
                raise ConfigError(f"preset {quoted(preset)}: each study entry needs a 'preset' name (a string)")
            over = {k: v for k, v in entry.items() if k != "preset"}
            base = _run_raw(entry["preset"], (preset,))
            source = source or data_source(over) or data_source(base)
            base, over = _without_source(base), _without_source(over)
            raws.append(deep_merge(deep_merge(deep_merge(base, over), common), cli))
        description = str(raw.get("description", ""))
    else:
        part = dict(raw)
        if "evaluation" not in part and isinstance(part.get("method"), str) and part["method"] in DEFAULT_EVALUATIONS:
            # What `ssltui presets` lists for such a preset, rather than the schema's "supervised".
            part["evaluation"] = list(DEFAULT_EVALUATIONS[part["method"]])
        if method is not None:
            if method not in METHODS:
                raise ConfigError(f"--method: {method!r} is not one of {', '.join(METHODS)}")
            part["method"] = method
            if evaluation is None:
                current = part.get("evaluation", [])
                current = current if isinstance(current, list) else [current]
                if not current or any(e not in VALID_EVALUATIONS[method] for e in current):
                    part["evaluation"] = list(DEFAULT_EVALUATIONS[method])
        if evaluation is not None:
            part["evaluation"] = evaluation
        raws = [deep_merge(part, cli)]
        description = str(raw.get("description", ""))

    parts: list[RunConfig] = []
    for r in raws:
        try:
            parts.append(build_run_config(r))
        except ConfigError as exc:
            raise ConfigError(f"preset {quoted(preset)}: {exc.message}") from None
    check_read([opt.partition("=")[0].strip() for opt in sets or []], parts)
    check_run_wide(preset, parts)
    return Plan(preset=preset, description=description, parts=parts, data=source)


def resolve_typed(
    preset: str,
    method: str | None = None,
    evaluation: str | None = None,
    labels: str | None = None,
    seeds: str | None = None,
    sets: list[str] | None = None,
) -> Plan:
    """`resolve` with `--evaluation/--labels/--seeds` as typed on a command line (comma lists;
    None keeps the preset's): one reading for `ssltui run`, `ssltui sweep` and the app's sweep form."""
    return resolve(
        preset,
        method=method,
        evaluation=parse_list(evaluation, str, "--evaluation"),
        labels=parse_list(labels, float, "--labels"),
        seeds=parse_list(seeds, int, "--seeds"),
        sets=sets,
    )
