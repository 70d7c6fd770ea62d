"""Run configuration: the typed schema every preset and `--set` value is checked against.

Pure Python (no torch), so `ssltui presets` and `ssltui --help` stay fast.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import tomllib
import typing
from dataclasses import dataclass, field
from typing import Any

from ssltui.engine.errors import ConfigError

METHODS = ("supervised", "simclr", "rotnet")
EVALUATIONS = ("supervised", "linear", "semi", "knn")
# Which evaluations make sense after which method.
VALID_EVALUATIONS = {
    "supervised": ("supervised",),
    "simclr": ("linear", "semi", "knn"),
    "rotnet": ("linear", "semi", "knn"),
}
DEFAULT_EVALUATIONS = {
    "supervised": ["supervised"],
    "simclr": ["linear"],
    "rotnet": ["linear", "semi"],
}


def _f(default: Any, help: str = "", **limits: Any) -> Any:
    """A dataclass field with a help text and limits (min, max, min_exclusive, choices)."""
    meta = {"help": help, **limits}
    if isinstance(default, list):
        return field(default_factory=lambda d=default: list(d), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class TrainConfig:
    """One optimisation phase: epochs, batch, optimizer and learning-rate schedule."""

    epochs: int = _f(100, "passes over the phase's training images", min=1)
    min_steps: int = _f(0, "train at least this many steps (tiny label subsets)", min=0)
    batch_size: int = _f(128, "images per optimizer step", min=1)
    optimizer: str = _f("sgd", "sgd | lars | adamw", choices=("sgd", "lars", "adamw"))
    lr: float = _f(0.1, "peak learning rate (after scaling)", min=0.0, min_exclusive=True)
    lr_scaling: str = _f("none", "none | linear (lr*batch/256) | sqrt (lr*sqrt(batch))",
                         choices=("none", "linear", "sqrt"))
    momentum: float = _f(0.9, "SGD/LARS momentum", min=0.0, max=0.9999)
    lars_trust_coefficient: float = _f(0.001, "LARS eta: an adapted layer's step is lr x eta x |w|/|g|",
                                       min=0.0, min_exclusive=True)
    nesterov: bool = _f(False, "Nesterov momentum (SGD)")
    weight_decay: float = _f(5e-4, "L2 weight decay", min=0.0, max=1.0)
    schedule: str = _f("cosine", "cosine | step | constant", choices=("cosine", "step", "constant"))
    warmup_epochs: float = _f(0.0, "linear warm-up length in epochs", min=0.0)
    milestones: list[float] = _f([], "epochs at which a step schedule multiplies lr by gamma")
    gamma: float = _f(0.1, "step-schedule factor", min=0.0, max=1.0, min_exclusive=True)
    checkpoint_every: int = _f(1, "save a checkpoint every N epochs (0: only at the end)", min=0)


@dataclass
class ClassifierConfig(TrainConfig):
    """Training a classifier on the labelled subset (the baseline, or fine-tuning)."""

    augment: bool = _f(True, "random crop (padding 4) and horizontal flip")
    frozen_stages: int = _f(0, "stem and first N stages frozen (weights and BN statistics)", min=0, max=3)
    eval_every: int = _f(1, "validation accuracy every N epochs", min=1)


@dataclass
class LinearConfig(TrainConfig):
    """Linear probe on frozen features computed once."""

    standardize: bool = _f(True, "standardize features with the labelled subset's mean/std")


@dataclass
class SimCLRConfig:
    temperature: float = _f(0.5, "NT-Xent temperature", min=0.0, min_exclusive=True)
    proj_hidden_dim: int = _f(512, "projection head hidden width", min=1)
    proj_out_dim: int = _f(128, "projection head output width", min=1)
    crop_min_scale: float = _f(0.08, "RandomResizedCrop smallest area fraction", min=0.0, max=1.0,
                               min_exclusive=True)
    jitter_strength: float = _f(0.5, "colour distortion strength s (SimCLR paper)", min=0.0, max=2.0)
    jitter_p: float = _f(0.8, "probability of colour jitter", min=0.0, max=1.0)
    grayscale_p: float = _f(0.2, "probability of grayscale", min=0.0, max=1.0)


@dataclass
class RotNetConfig:
    crop_flip: bool = _f(True, "random crop (padding 4) and flip before rotating")


@dataclass
class KnnConfig:
    k: int = _f(200, "neighbours", min=1)
    temperature: float = _f(0.1, "vote temperature", min=0.0, min_exclusive=True)
    every_epochs: int = _f(10, "kNN monitor on the validation split every N epochs (0: off)", min=0)
    max_bank: int = _f(10000, "most training images in the kNN feature bank", min=1)
    guard_min_steps: int = _f(250, "SimCLR guard rail: judge the encoder at 20% of the epochs only when at "
                                   "least this many steps precede it", min=1)


@dataclass
class DataConfig:
    val_fraction: float = _f(0.1, "held-out validation part of the training split", min=0.0, max=0.5,
                             min_exclusive=True)
    split_seed: int = _f(0, "seed of the validation split (fixed across runs)", min=0)
    synthetic_train_per_class: int = _f(300, "synthetic source: training images per class", min=4)
    synthetic_test_per_class: int = _f(100, "synthetic source: test images per class", min=1)


@dataclass
class RuntimeConfig:
    amp: str = _f("auto", "auto (bf16 on CUDA) | bf16 | off", choices=("auto", "bf16", "off"))
    channels_last: bool = _f(True, "channels_last memory format on CUDA")
    compile: bool = _f(False, "torch.compile the training step on CUDA")
    eval_batch_size: int = _f(1024, "batch size for feature extraction and testing", min=1)
    featuremaps: bool = _f(True, "save feature-map thumbnails at the end of the run")


@dataclass
class RunConfig:
    """Everything that determines one method's pipeline: pretraining and its evaluations."""

    description: str = _f("", "one-line description")
    method: str = _f("supervised", "supervised | simclr | rotnet", choices=METHODS)
    evaluation: list[str] = _f(["supervised"], "evaluations to run after pretraining")
    labels: list[float] = _f([0.01, 0.1], "label fractions of the training split")
    seeds: list[int] = _f([0], "seeds; each repeats the whole pipeline")
    data: DataConfig = field(default_factory=DataConfig)
    pretrain: TrainConfig = field(default_factory=TrainConfig)
    simclr: SimCLRConfig = field(default_factory=SimCLRConfig)
    rotnet: RotNetConfig = field(default_factory=RotNetConfig)
    knn: KnnConfig = field(default_factory=KnnConfig)
    supervised: ClassifierConfig = field(default_factory=ClassifierConfig)
    linear: LinearConfig = field(default_factory=LinearConfig)
    semi: ClassifierConfig = field(default_factory=lambda: ClassifierConfig(frozen_stages=2))
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)


# ---------------------------------------------------------------- typed parsing

def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is list:
        return f"list of {typing.get_args(tp)[0].__name__}"
    return getattr(tp, "__name__", str(tp))


def _coerce_scalar(value: Any, tp: type, key: str) -> Any:
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        value = float(value)
        if not math.isfinite(value):
            raise ConfigError(f"{key}: expected a finite number, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    raise ConfigError(f"{key}: unsupported type {tp}")


def _check_limits(value: Any, meta: dict, key: str) -> None:
    items = value if isinstance(value, list) else [value]
    for v in items:
        choices = meta.get("choices")
        if choices is not None and v not in choices:
            raise ConfigError(f"{key}: {v!r} is not one of {', '.join(map(str, choices))}")
        lo, hi = meta.get("min"), meta.get("max")
        if lo is not None and (v < lo or (meta.get("min_exclusive") and v == lo)):
            op = ">" if meta.get("min_exclusive") else ">="
            raise ConfigError(f"{key}: {v!r} is out of range (must be {op} {lo})")
        if hi is not None and v > hi:
            raise ConfigError(f"{key}: {v!r} is out of range (must be <= {hi})")


def coerce(value: Any, tp: Any, key: str) -> Any:
    """Check `value` against the schema type `tp`, converting where lossless."""
    if typing.get_origin(tp) is list:
        (item_tp,) = typing.get_args(tp)
        if isinstance(value, str):
            value = [parse_literal(v.strip()) for v in value.split(",") if v.strip()]
        elif not isinstance(value, list):
            value = [value]
        return [_coerce_scalar(v, item_tp, key) for v in value]
    return _coerce_scalar(value, tp, key)


def parse_literal(text: str) -> Any:
    """Parse a `--set` value as a TOML literal; fall back to a bare string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _unknown(key: str, known: list[str]) -> ConfigError:
    close = difflib.get_close_matches(key.split(".")[-1], known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return ConfigError(f"unknown key {key!r}{hint}; known: {', '.join(sorted(known))}")


def _build(cls: type, values: dict, prefix: str) -> Any:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for name, value in values.items():
        key = f"{prefix}{name}"
        if name not in fields:
            raise _unknown(key, list(fields))
        tp = hints[name]
        if dataclasses.is_dataclass(tp):
            if not isinstance(value, dict):
                raise ConfigError(f"{key}: expected a table of settings, got {value!r}")
            kwargs[name] = _merge_section(fields[name], tp, value, f"{key}.")
        else:
            v = coerce(value, tp, key)
            _check_limits(v, fields[name].metadata, key)
            kwargs[name] = v
    return cls(**kwargs)


def _merge_section(f: dataclasses.Field, tp: type, values: dict, prefix: str) -> Any:
    base = f.default_factory() if f.default_factory is not dataclasses.MISSING else tp()
    merged = {**dataclasses.asdict(base), **values}
    return _build(tp, merged, prefix)


def build_run_config(values: dict) -> RunConfig:
    """Build and validate a RunConfig from a nested dict (a preset plus overrides)."""
    cfg = _build(RunConfig, values, "")
    validate(cfg)
    return cfg


def validate(cfg: RunConfig) -> None:
    """Cross-field checks that a single field's limits cannot express."""
    allowed = VALID_EVALUATIONS[cfg.method]
    if not cfg.evaluation:
        raise ConfigError("evaluation: at least one evaluation is needed")
    for ev in cfg.evaluation:
        if ev not in EVALUATIONS:
            raise ConfigError(f"evaluation: {ev!r} is not one of {', '.join(EVALUATIONS)}")
        if ev not in allowed:
            raise ConfigError(
                f"evaluation: {ev!r} does not apply to method {cfg.method!r} (allowed: {', '.join(allowed)})"
            )
    if not cfg.labels:
        raise ConfigError("labels: at least one label fraction is needed")
    for frac in cfg.labels:
        if not 0.0 < frac <= 1.0:
            raise ConfigError(f"labels: {frac!r} is outside (0, 1]")
    if not cfg.seeds:
        raise ConfigError("seeds: at least one seed is needed")
    for s in cfg.seeds:
        if s < 0:
            raise ConfigError(f"seeds: {s!r} is negative")
    for section in ("pretrain", "supervised", "linear", "semi"):
        tc: TrainConfig = getattr(cfg, section)
        for m in tc.milestones:
            if not 0 < m < tc.epochs:
                raise ConfigError(f"{section}.milestones: {m!r} is outside (0, {section}.epochs={tc.epochs})")
        if tc.warmup_epochs > tc.epochs:
            raise ConfigError(f"{section}.warmup_epochs: {tc.warmup_epochs!r} exceeds {section}.epochs={tc.epochs}")


def set_dotted(values: dict, key: str, value: Any) -> None:
    """Set `a.b.c` in a nested dict, creating tables as needed."""
    parts = key.split(".")
    node = values
    for p in parts[:-1]:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{key}: {p!r} is a value, not a table")
    node[parts[-1]] = value


def schema_keys(cls: type = RunConfig, prefix: str = "") -> list[str]:
    """Every settable dotted key of the schema."""
    keys = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            keys += schema_keys(tp, f"{prefix}{f.name}.")
        else:
            keys.append(prefix + f.name)
    return keys


def parse_set_options(options: list[str]) -> dict:
    """Turn `--set key=value` strings into a nested dict of raw (untyped) values."""
    out: dict = {}
    known = schema_keys()
    for opt in options:
        if "=" not in opt:
            raise ConfigError(f"--set {opt!r}: expected key=value")
        key, _, raw = opt.partition("=")
        key = key.strip()
        if key not in known:
            section = key.rpartition(".")[0]
            same = [k.rpartition(".")[2] for k in known if k.rpartition(".")[0] == section]
            if not same:
                sections = sorted({k.partition(".")[0] for k in known if "." in k})
                raise ConfigError(f"unknown section in {key!r}; sections: {', '.join(sections)}")
            raise _unknown(key, same)
        set_dotted(out, key, parse_literal(raw.strip()))
    return out


def deep_merge(base: dict, over: dict) -> dict:
    """Nested-dict merge; `over` wins."""
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def to_dict(cfg: Any) -> dict:
    return dataclasses.asdict(cfg)


# ---------------------------------------------------------------- TOML writing

def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def dumps_toml(values: dict, header: str = "") -> str:
    """Write a nested dict of scalars and lists as TOML (enough for our configs)."""
    lines = [f"# {line}" for line in header.splitlines()] if header else []

    def is_table_list(v: Any) -> bool:
        return isinstance(v, list) and bool(v) and all(isinstance(x, dict) for x in v)

    def emit(prefix: str, table: dict, header: str | None) -> None:
        if header is not None:
            lines.extend(["", header])
        lines.extend(f"{k} = {_toml_value(v)}" for k, v in table.items()
                     if not isinstance(v, dict) and not is_table_list(v))
        for k, v in table.items():
            name = f"{prefix}{k}"
            if isinstance(v, dict):
                emit(f"{name}.", v, f"[{name}]")
            elif is_table_list(v):
                for item in v:
                    emit(f"{name}.", item, f"[[{name}]]")

    emit("", values, None)
    return "\n".join(lines) + "\n"
