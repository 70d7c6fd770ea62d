"""Run configuration: the declared schema (pydantic models) every preset and `--set` value is
checked against, and the options of one run (data, device, group) that are not hyperparameters.

Pure Python (no torch), so `ssltui presets` and `ssltui --help` stay fast. Every field carries
its description and limits; the launch form, `--set` and the error messages all read them here.
"""

from __future__ import annotations

import difflib
import math
import tomllib
import typing
from pathlib import Path
from typing import Annotated, Any, Literal

import annotated_types
import tomli_w
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator

from ssltui.core.errors import ConfigError

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


def _listify(value: Any) -> Any:
    """`--set a=1,2` and `--set a=1` both give a list: split a string on commas, wrap a scalar."""
    if isinstance(value, str):
        return [parse_literal(v.strip()) for v in value.split(",") if v.strip()]
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


def _check_text(value: Any) -> Any:
    """Strings end up in TOML and JSON files, which must be UTF-8: refuse undecodable bytes
    (a non-UTF-8 path on the command line arrives as lone surrogates)."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("is not valid UTF-8 text") from None
    return value


def _workers(v: Any) -> Any:
    """`runtime.workers`: a whole number >= 1, or "auto" (bool is an int to Python, not here)."""
    if v == "auto" or (isinstance(v, int) and not isinstance(v, bool) and v >= 1):
        return v
    raise ValueError("is not a whole number >= 1 or 'auto'")


def _not_negative(v: int) -> int:
    if v < 0:
        raise ValueError("is negative")
    return v


def List(item: Any) -> Any:  # noqa: N802 - reads as a type in the models below
    return Annotated[list[item], BeforeValidator(_listify)]


Text = Annotated[str, BeforeValidator(_check_text)]


class Section(BaseModel):
    """A table of settings: unknown keys, wrong types and out-of-range values are refused."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


# TrainConfig fields that say when a phase validates or saves, not what it learns.
CADENCE_FIELDS = ("checkpoint_every", "val_passes", "eval_every")
MAX_EPOCHS = 100_000  # 100x the longest schedule in the literature (SimCLR's 1,000 epochs)
MAX_STEPS = 10_000_000  # min_steps: about 100 days at 1 step a second


class TrainConfig(Section):
    """One optimisation phase: epochs, batch, optimizer and learning-rate schedule."""

    # Upper bounds: a count no run could finish (2e8 epochs, 1e12 steps) is refused when the
    # configuration is resolved, before a run folder or a sweep exists, not after it has filled memory.
    epochs: int = Field(100, ge=1, le=MAX_EPOCHS, description="passes over the phase's training images")
    min_steps: int = Field(0, ge=0, le=MAX_STEPS, description="train at least this many steps (tiny label subsets)")
    batch_size: int = Field(128, ge=1, description="images per optimizer step")
    optimizer: Literal["sgd", "lars", "adamw"] = Field("sgd", description="sgd | lars | adamw")
    lr: float = Field(0.1, gt=0.0, description="peak learning rate (after scaling)")
    lr_scaling: Literal["none", "linear", "sqrt"] = Field(
        "none", description="none | linear (lr*batch/256) | sqrt (lr*sqrt(batch))")
    momentum: float = Field(0.9, ge=0.0, le=0.9999, description="SGD/LARS momentum")
    lars_trust_coefficient: float = Field(0.001, gt=0.0,
                                          description="LARS eta: an adapted layer's step is lr x eta x |w|/|g|")
    nesterov: bool = Field(False, description="Nesterov momentum (SGD)")
    weight_decay: float = Field(5e-4, ge=0.0, le=1.0, description="L2 weight decay")
    schedule: Literal["cosine", "step", "constant"] = Field("cosine", description="cosine | step | constant")
    warmup_epochs: float = Field(0.0, ge=0.0, description="linear warm-up length in epochs")
    milestones: List(float) = Field([], description="epochs at which a step schedule multiplies lr by gamma")
    gamma: float = Field(0.1, gt=0.0, le=1.0, description="step-schedule factor")
    checkpoint_every: int = Field(0, ge=0, description=(
        "also save a checkpoint every N epochs (0: by runtime.checkpoint_seconds; phase ends and stops always save)"))
    val_passes: int = Field(20, ge=0, description=(
        "validation (or monitor) passes spread evenly over the phase's steps, the last at its end"))

    def identity(self) -> dict:
        """The settings that determine the trained weights: how often the phase validates or
        saves is left out (neither touches the weights or the random draws)."""
        return self.model_dump(mode="python", exclude=set(CADENCE_FIELDS))


class ClassifierConfig(TrainConfig):
    """Training a classifier on the labelled subset (the baseline, or fine-tuning)."""

    augment: bool = Field(True, description="random crop (padding 4) and horizontal flip")
    cutout: int = Field(0, ge=0, le=32, description="side of a square zeroed at a random place in each "
                                                     "training image (0: off)")
    frozen_stages: int = Field(0, ge=0, le=3,
                               description="stem and first N stages frozen (weights and BN statistics)")
    frozen_bn_stats: bool = Field(True, description="frozen stages keep their BatchNorm statistics (false: "
                                                    "they adapt to the labelled images, weights still frozen)")
    label_smoothing: float = Field(0.0, ge=0.0, le=0.5, description="cross-entropy label smoothing")
    ema: float = Field(0.0, ge=0.0, lt=1.0, description="decay of an exponential moving average of the weights, "
                                                        "evaluated instead of the last weights (0: off)")
    eval_every: int = Field(0, ge=0, description="validation every N epochs instead (0: by val_passes)")


class SemiConfig(ClassifierConfig):
    """Semi-supervised fine-tuning of a pretrained encoder: the paper freezes two stages."""

    frozen_stages: int = Field(2, ge=0, le=3,
                               description="stem and first N stages frozen (weights and BN statistics)")


class LinearConfig(TrainConfig):
    """Linear probe on frozen features computed once."""

    standardize: bool = Field(True, description="standardize features with the labelled subset's mean/std")
    augment_copies: int = Field(0, ge=0, le=64, description="random crop/flip copies of each labelled image "
                                                          "whose features join the plain ones (0: plain only)")
    feature_stages: List(Literal[1, 2, 3]) = Field(
        [3], min_length=1, description="encoder stages whose outputs the probe reads, concatenated "
                                       "([3]: the encoder's own feature)")
    feature_grid: Literal[1, 2, 4] = Field(1, description="each stage's output average-pooled to grid x grid "
                                                           "(1: global pooling, the encoder's own feature)")

    @field_validator("feature_stages")
    @classmethod
    def _stages_once_in_order(cls, v: list[int]) -> list[int]:
        if len(set(v)) != len(v):
            raise ValueError("names a stage twice")
        return sorted(v)

    def default_readout(self) -> bool:
        """Whether the probe reads the encoder's own feature (stage 3, globally pooled)."""
        return self.feature_stages == [3] and self.feature_grid == 1


class SimCLRConfig(Section):
    temperature: float = Field(0.5, gt=0.0, description="NT-Xent temperature")
    proj_hidden_dim: int = Field(512, ge=1, description="projection head hidden width")
    proj_out_dim: int = Field(128, ge=1, description="projection head output width")
    crop_min_scale: float = Field(0.08, gt=0.0, le=1.0, description="RandomResizedCrop smallest area fraction")
    jitter_strength: float = Field(0.5, ge=0.0, le=2.0, description="colour distortion strength s (SimCLR paper)")
    jitter_p: float = Field(0.8, ge=0.0, le=1.0, description="probability of colour jitter")
    grayscale_p: float = Field(0.2, ge=0.0, le=1.0, description="probability of grayscale")


class RotNetConfig(Section):
    crop_flip: bool = Field(True, description="random crop (padding 4) and flip before rotating")


class KnnConfig(Section):
    k: int = Field(200, ge=1, description="neighbours")
    temperature: float = Field(0.1, gt=0.0, description="vote temperature")
    every_epochs: int = Field(10, ge=0, description="kNN monitor on the validation split every N epochs (0: off)")
    max_bank: int = Field(10000, ge=1, description="most training images in the kNN feature bank")
    guard_min_steps: int = Field(250, ge=1, description="SimCLR guard rail: judge the encoder at 20% of the "
                                                        "epochs only when at least this many steps precede it")


class DataConfig(Section):
    val_fraction: float = Field(0.1, gt=0.0, le=0.5, description="held-out validation part of the training split")
    split_seed: int = Field(0, ge=0, description="seed of the validation split (fixed across runs)")
    synthetic_train_per_class: int = Field(300, ge=4, description="synthetic source: training images per class")
    synthetic_test_per_class: int = Field(100, ge=1, description="synthetic source: test images per class")


class RuntimeConfig(Section):
    amp: Literal["auto", "bf16", "off"] = Field("auto", description="auto (bf16 on CUDA) | bf16 | off")
    channels_last: bool = Field(True, description="channels_last memory format on CUDA")
    compile: bool = Field(False, description="torch.compile every phase's training forward on CUDA")
    eval_batch_size: int = Field(1024, ge=1, description="batch size for feature extraction and testing")
    cuda_graphs: Literal["auto", "on", "off"] = Field(
        "auto", description="replay each phase's training step from a CUDA graph (auto: on CUDA; on needs CUDA)")
    log_seconds: float = Field(0.25, ge=0.0, description="seconds between progress log points (0: every step)")
    checkpoint_seconds: float = Field(60.0, ge=0.0, description=(
        "seconds between checkpoints inside a phase (0: none; phase ends and stops always save)"))
    featuremaps: bool = Field(True, description="save feature-map thumbnails at the end of the run")
    workers: Annotated[int | Literal["auto"], BeforeValidator(_workers)] = Field(
        "auto", description="phases side by side, one process each (auto: one per device)")


class RunConfig(Section):
    """Everything that determines one method's pipeline: pretraining and its evaluations."""

    description: Text = Field("", description="one-line description")
    method: Literal["supervised", "simclr", "rotnet"] = Field("supervised", description="supervised | simclr | rotnet")
    evaluation: List(Literal["supervised", "linear", "semi", "knn"]) = Field(
        ["supervised"], min_length=1, description="evaluations to run after pretraining")
    labels: List(Annotated[float, Field(gt=0.0, le=1.0)]) = Field(
        [0.01, 0.1], min_length=1, description="label fractions of the training split")
    seeds: List(Annotated[int, AfterValidator(_not_negative)]) = Field(
        [0], min_length=1, description="seeds; each repeats the whole pipeline")
    data: DataConfig = Field(default_factory=DataConfig)
    pretrain: TrainConfig = Field(default_factory=TrainConfig)
    simclr: SimCLRConfig = Field(default_factory=SimCLRConfig)
    rotnet: RotNetConfig = Field(default_factory=RotNetConfig)
    knn: KnnConfig = Field(default_factory=KnnConfig)
    supervised: ClassifierConfig = Field(default_factory=ClassifierConfig)
    linear: LinearConfig = Field(default_factory=LinearConfig)
    semi: SemiConfig = Field(default_factory=SemiConfig)
    runtime: RuntimeConfig = Field(default_factory=RuntimeConfig)


TRAIN_SECTIONS = ("pretrain", "supervised", "linear", "semi")


# ---------------------------------------------------------------- devices

def check_device(name: str, option: str = "--device") -> str:
    """The one check of a device name (torch-free): auto, cpu, cuda or cuda:N."""
    if name in ("auto", "cpu", "cuda") or (name.startswith("cuda:") and name[5:].isdigit()):
        return name
    raise ConfigError(f"{option}: {name!r} is not one of auto, cpu, cuda, cuda:N")


class RunOptions(BaseModel):
    """Where and how to run; machine-specific, so not part of a preset, but recorded with the
    run (config.toml) so that `ssltui resume RUN_ID` continues with the same data and caches."""

    model_config = ConfigDict(extra="ignore")

    data: Text = "cifar10"
    data_dir: Path | None = None
    device: str = "auto"
    devices: list[str] = []  # `--devices cuda:0,cuda:1`: the workers' devices, in turn
    group: Text | None = None
    use_cache: bool = True

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        return check_device(v)

    @field_validator("devices")
    @classmethod
    def _devices(cls, v: list[str]) -> list[str]:
        return [check_device(d, "--devices") for d in v]

    def device_list(self) -> list[str]:
        """The devices phases run on: `--devices`, else the one `--device`."""
        return list(self.devices) or [self.device]

    @field_validator("data_dir", mode="before")
    @classmethod
    def _data_dir(cls, v: Any) -> Any:
        if v in (None, ""):
            return None
        _check_text(str(v))
        return v

    def to_toml_dict(self) -> dict:
        return {"data": self.data, "device": self.device, "devices": list(self.devices), "group": self.group or "",
                "data_dir": str(self.data_dir) if self.data_dir else "", "use_cache": self.use_cache}


def run_options(**values: Any) -> RunOptions:
    """RunOptions with one-line ConfigErrors."""
    try:
        return RunOptions(**values)
    except ValidationError as exc:
        raise _one_line(exc, RunOptions) from None


# ---------------------------------------------------------------- errors in one line

def _annotation_at(model: type[BaseModel], loc: tuple) -> tuple[Any, Any]:
    """(field info, annotation) of the field a validation error points at."""
    info, tp = None, model
    for part in loc:
        if isinstance(part, int) or not (isinstance(tp, type) and issubclass(tp, BaseModel)):
            continue
        info = tp.model_fields.get(part)
        if info is None:
            return None, None
        tp = info.annotation
    return info, tp


def _bounds(info: Any) -> tuple[Any, Any, bool]:
    lo = hi = None
    exclusive = False
    metas = list(getattr(info, "metadata", []))
    args = typing.get_args(getattr(info, "annotation", None))
    for a in args:  # list[Annotated[float, Field(gt=...)]]: the item's limits
        for m in typing.get_args(a)[1:]:
            metas += list(getattr(m, "metadata", []))
    for m in metas:
        if isinstance(m, annotated_types.Gt):
            lo, exclusive = m.gt, True
        elif isinstance(m, annotated_types.Ge):
            lo = m.ge
        elif isinstance(m, annotated_types.Le):
            hi = m.le
    return lo, hi, exclusive


def _choices(tp: Any) -> tuple | None:
    while typing.get_origin(tp) in (list, Annotated):
        tp = typing.get_args(tp)[0]
    return typing.get_args(tp) if typing.get_origin(tp) is Literal else None


def limits_text(info: Any) -> str:
    """' (> 0)', ' (>= 1, <= 3)' or '' for a field's declared limits."""
    lo, hi, exclusive = _bounds(info)
    parts = ([f"{'>' if exclusive else '>='} {lo:g}"] if lo is not None else []) + \
            ([f"<= {hi:g}"] if hi is not None else [])
    return f" ({', '.join(parts)})" if parts else ""


def _one_line(exc: ValidationError, model: type[BaseModel], prefix: str = "") -> ConfigError:
    """The first problem of a ValidationError as today's one-line messages."""
    err = exc.errors(include_url=False)[0]
    loc = tuple(err["loc"])
    names = [p for p in loc if isinstance(p, str)]
    key = prefix + ".".join(names)
    value, kind = err.get("input"), err["type"]
    info, tp = _annotation_at(model, loc)
    if kind == "extra_forbidden":
        parent_info, parent = _annotation_at(model, loc[:-1]) if len(loc) > 1 else (None, model)
        known = list(parent.model_fields) if isinstance(parent, type) and issubclass(parent, BaseModel) else []
        return _unknown(key, known)
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return ConfigError(f"{key}: expected an integer, got {value!r}")
    if kind in ("float_type", "float_parsing"):
        return ConfigError(f"{key}: expected a number, got {value!r}")
    if kind == "finite_number":
        return ConfigError(f"{key}: expected a finite number, got {value!r}")
    if kind in ("bool_type", "bool_parsing"):
        return ConfigError(f"{key}: expected true or false, got {value!r}")
    if kind in ("string_type",):
        return ConfigError(f"{key}: expected a string, got {value!r}")
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return ConfigError(f"{key}: expected a table of settings, got {value!r}")
    if kind == "literal_error":
        choices = _choices(tp) or ()
        return ConfigError(f"{key}: {value!r} is not one of {', '.join(map(str, choices))}")
    if kind in ("greater_than", "greater_than_equal", "less_than_equal", "less_than"):
        lo, hi, exclusive = _bounds(info)
        if lo is not None and hi is not None and any(isinstance(p, int) for p in loc):  # a list item
            return ConfigError(f"{key}: {value!r} is outside {'(' if exclusive else '['}{lo:g}, {hi:g}]")
        op = {"greater_than": ">", "greater_than_equal": ">=", "less_than_equal": "<=", "less_than": "<"}[kind]
        bound = next(iter(err.get("ctx", {}).values()), "?")
        if isinstance(value, int) and isinstance(bound, float):
            value = float(value)  # shown as the field's type, as typed from the schema
        return ConfigError(f"{key}: {value!r} is out of range (must be {op} {bound!r})")
    if kind == "too_short":
        return ConfigError(f"{key}: at least one value is needed")
    message = err["msg"].removeprefix("Value error, ")
    if kind == "value_error" and message.startswith("is "):
        return ConfigError(f"{key}: {value!r} {message}")
    return ConfigError(f"{key}: {message} (got {value!r})")


def _did_you_mean(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _unknown(key: str, known: list[str], also: str = "") -> ConfigError:
    hint = _did_you_mean(key.split(".")[-1], known)
    return ConfigError(f"unknown key {key!r}{hint}; known: {', '.join(sorted(known))}{also}")


# ---------------------------------------------------------------- building

def parse_literal(text: str) -> Any:
    """Parse a `--set` value as a TOML literal; fall back to a bare string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def build_run_config(values: dict) -> RunConfig:
    """Build and validate a RunConfig from a nested dict (a preset plus overrides)."""
    try:
        cfg = RunConfig.model_validate(values)
    except ValidationError as exc:
        raise _one_line(exc, RunConfig) from None
    validate(cfg)
    return cfg


def check_field(key: str, value: Any) -> Any:
    """One dotted key's value, typed and checked against the schema alone (the launch form
    checks each field as it is typed); ConfigError in one line otherwise."""
    values: dict = {}
    set_dotted(values, key, value)
    try:
        cfg = RunConfig.model_validate(values)
    except ValidationError as exc:
        raise _one_line(exc, RunConfig) from None
    node: Any = cfg
    for part in key.split("."):
        node = getattr(node, part)
    return node


def validate(cfg: RunConfig) -> None:
    """Cross-field checks that a single field's limits cannot express."""
    allowed = VALID_EVALUATIONS[cfg.method]
    for ev in cfg.evaluation:
        if ev not in allowed:
            raise ConfigError(
                f"evaluation: {ev!r} does not apply to method {cfg.method!r} (allowed: {', '.join(allowed)})"
            )
    for section in TRAIN_SECTIONS:
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


def schema_fields(model: type[BaseModel] = RunConfig, prefix: str = "") -> dict[str, Any]:
    """Every settable dotted key of the schema and its field info (description, limits)."""
    out: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        tp = info.annotation
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            out.update(schema_fields(tp, f"{prefix}{name}."))
        else:
            out[prefix + name] = info
    return out


def schema_keys() -> list[str]:
    """Every settable dotted key of the schema."""
    return list(schema_fields())


def check_key(key: str) -> str:
    """A settable dotted key of the schema, or a one-line ConfigError naming the close ones."""
    known = schema_keys()
    if key not in known:
        section = key.rpartition(".")[0]
        same = [k.rpartition(".")[2] for k in known if k.rpartition(".")[0] == section]
        sections = sorted({k.partition(".")[0] for k in known if "." in k})
        if not section:  # `lr=0.1`: most settings live in a section
            within = [k for k in known if k.endswith("." + key)]
            if within:
                raise ConfigError(f"unknown key {key!r}: settings are SECTION.KEY; did you mean "
                                  f"{' or '.join(repr(k) for k in within)}?")
            raise _unknown(key, same, f", or SECTION.KEY with sections {', '.join(sections)}")
        if not same:
            hint = _did_you_mean(section.partition(".")[0], sections)
            raise ConfigError(f"unknown section in {key!r}{hint}; sections: {', '.join(sections)}")
        raise _unknown(key, same)
    return key


def parse_set_options(options: list[str]) -> dict:
    """Turn `--set key=value` strings into a nested dict of raw (untyped) values."""
    out: dict = {}
    for opt in options:
        if "=" not in opt:
            raise ConfigError(f"--set {opt!r}: expected key=value")
        key, _, raw = opt.partition("=")
        set_dotted(out, check_key(key.strip()), parse_literal(raw.strip()))
    return out


def parse_list(text: str | None, kind: type, option: str) -> list | None:
    """`0.01,0.1` / `5%` / `0,1,2` from the command line or the launch form; None stays None."""
    if text is None:
        return None
    out = []
    for item in text.replace(" ", "").split(","):
        if not item:
            continue
        try:
            value = float(item[:-1]) / 100 if kind is float and item.endswith("%") else kind(item)
        except ValueError:
            what = "a valid float (0.05) or percentage (5%)" if kind is float else \
                "a non-negative integer" if kind is int else f"a valid {kind.__name__}"
            raise ConfigError(f"{option}: {item!r} is not {what}") from None
        out.append(round(value, 6) if kind is float else value)
    if not out:
        raise ConfigError(f"{option}: empty list")
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


def to_dict(cfg: BaseModel) -> dict:
    return cfg.model_dump(mode="python")


# ---------------------------------------------------------------- TOML writing

def dumps_toml(values: dict, header: str = "") -> str:
    """TOML for any nested dict of strings, numbers, booleans and lists (tomli-w: correct for
    every string, control characters included). None values are left out (TOML has no null)."""

    def clean(v: Any) -> Any:
        if isinstance(v, dict):
            return {str(k): clean(x) for k, x in v.items() if x is not None}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        if isinstance(v, Path):
            return str(v)
        if isinstance(v, float) and not math.isfinite(v):
            raise ConfigError(f"cannot write {v!r} to TOML")
        return v

    lines = "".join(f"# {line}\n" for line in header.splitlines()) if header else ""
    return lines + tomli_w.dumps(clean(values))
