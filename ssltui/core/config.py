"""Run configuration: the declared schema (pydantic models) every preset and `--set` value is
checked against, and the options of one run (data, device, group) that are not hyperparameters.

`RunConfig` is assembled from the registries: one `[name]` section per registered method that has
settings and per registered evaluation, beside the run-wide `data` and `runtime` tables and the
`pretrain` phase. Torch-free, so `ssltui presets` and `ssltui --help` stay fast. Every field
carries its description and limits; the launch form, `--set` and the error messages read them.
"""

from __future__ import annotations

import difflib
import math
import typing
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import annotated_types
import tomli_w
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, create_model, field_validator

from ssltui.core import registry
from ssltui.core.errors import ConfigError
from ssltui.core.evaluations.knn import KnnConfig
from ssltui.core.evaluations.linear import LinearConfig
from ssltui.core.evaluations.semi import SemiConfig
from ssltui.core.settings import (
    CADENCE_FIELDS,
    ClassifierConfig,
    CommaList,
    DataConfig,
    RuntimeConfig,
    Section,
    Text,
    TrainConfig,
    check_text,
    not_negative,
    parse_literal,
)

__all__ = [
    "CADENCE_FIELDS",
    "ClassifierConfig",
    "DataConfig",
    "KnnConfig",
    "LinearConfig",
    "RunConfig",
    "RuntimeConfig",
    "Section",
    "SemiConfig",
    "TrainConfig",
    "parse_literal",
]

METHODS = registry.method_names()
EVALUATIONS = registry.evaluation_names()
# Which evaluations make sense after which method, and which run when none are named.
VALID_EVALUATIONS = {m.name: m.evaluations for m in registry.methods()}
DEFAULT_EVALUATIONS = {m.name: list(m.default_evaluations) for m in registry.methods()}
TRAIN_SECTIONS = registry.train_sections()


class _RunConfig(Section):
    """Everything that determines one method's pipeline: pretraining and its evaluations."""

    description: Text = Field("", description="one-line description")
    method: Literal[METHODS] = Field(METHODS[0], description=" | ".join(METHODS))  # type: ignore[valid-type]
    evaluation: CommaList[Literal[EVALUATIONS]] = Field(  # type: ignore[valid-type]
        [EVALUATIONS[0]], min_length=1, description="evaluations to run after pretraining"
    )
    labels: CommaList[Annotated[float, Field(gt=0.0, le=1.0)]] = Field(
        [0.01, 0.1], min_length=1, description="label fractions of the training split"
    )
    seeds: CommaList[Annotated[int, AfterValidator(not_negative)]] = Field(
        [0], min_length=1, description="seeds; each repeats the whole pipeline"
    )
    data: DataConfig = Field(default_factory=DataConfig)
    pretrain: TrainConfig = Field(default_factory=TrainConfig)

    if TYPE_CHECKING:  # the sections the registries add (see `_sections`), and runtime
        runtime: RuntimeConfig

        def __getattr__(self, name: str) -> Any: ...

    @property
    def method_settings(self) -> Any:
        """The settings section of this part's method (None for a method without one)."""
        return getattr(self, self.method) if registry.method(self.method).settings is not None else None

    def reads(self) -> tuple[str, ...]:
        """The sections this part reads, in the order it runs them: its method's (pretraining),
        its evaluations', and the run-wide data and runtime tables."""
        own = registry.method(self.method).reads
        return ("data", *own, *(e for e in self.evaluation if e not in own), "runtime")

    def resolved_dict(self) -> dict[str, Any]:
        """The part as config.toml records it: the top-level keys and only the sections it reads."""
        sections = {
            name
            for name, info in type(self).model_fields.items()
            if isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel)
        }
        return self.model_dump(mode="python", exclude=sections - set(self.reads()))

    def settings_of(self, section: str) -> Any:
        """A section of settings by name (a method's, an evaluation's, pretrain, data, runtime)."""
        return getattr(self, section)


def _sections() -> dict[str, Any]:
    out: dict[str, Any] = {}
    specs: list[registry.Method | registry.Evaluation] = [*registry.methods(), *registry.evaluations()]
    for spec in specs:
        if spec.settings is not None:
            out[spec.name] = (spec.settings, Field(default_factory=spec.settings))
    out["runtime"] = (RuntimeConfig, Field(default_factory=RuntimeConfig))
    return out


if TYPE_CHECKING:
    RunConfig = _RunConfig
else:
    RunConfig = create_model("RunConfig", __base__=_RunConfig, __module__=__name__, **_sections())
    RunConfig.__doc__ = _RunConfig.__doc__


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
        check_text(str(v))
        return v

    def to_toml_dict(self) -> dict[str, Any]:
        return {
            "data": self.data,
            "device": self.device,
            "devices": list(self.devices),
            "group": self.group or "",
            "data_dir": str(self.data_dir) if self.data_dir else "",
            "use_cache": self.use_cache,
        }


def run_options(**values: Any) -> RunOptions:
    """RunOptions with one-line ConfigErrors."""
    try:
        return RunOptions(**values)
    except ValidationError as exc:
        raise _one_line(exc, RunOptions) from None


# ---------------------------------------------------------------- errors in one line


def _annotation_at(model: type[BaseModel], loc: tuple[Any, ...]) -> tuple[Any, Any]:
    """(field info, annotation) of the field a validation error points at."""
    info: Any = None
    tp: Any = model
    for part in loc:
        if isinstance(part, int) or not (isinstance(tp, type) and issubclass(tp, BaseModel)):
            continue
        info = tp.model_fields.get(part)
        if info is None:
            return None, None
        tp = info.annotation
    return info, tp


def _bounds(info: Any) -> tuple[Any, Any, bool]:
    lo: Any = None
    hi: Any = None
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


def _choices(tp: Any) -> tuple[Any, ...] | None:
    while typing.get_origin(tp) in (list, Annotated):
        tp = typing.get_args(tp)[0]
    return typing.get_args(tp) if typing.get_origin(tp) is Literal else None


def limits_text(info: Any) -> str:
    """' (> 0)', ' (>= 1, <= 3)' or '' for a field's declared limits."""
    lo, hi, exclusive = _bounds(info)

    def shown(v: Any) -> str:  # 10,000,000 rather than 1e+07
        return f"{v:,}" if isinstance(v, int) else f"{v:g}"

    parts = ([f"{'>' if exclusive else '>='} {shown(lo)}"] if lo is not None else []) + (
        [f"<= {shown(hi)}"] if hi is not None else []
    )
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


def build_run_config(values: dict[str, Any]) -> RunConfig:
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
    values: dict[str, Any] = {}
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
    check = getattr(cfg.method_settings, "check", None)  # a method's own cross-section checks
    if check is not None:
        check(cfg)
    for section in TRAIN_SECTIONS:
        tc: TrainConfig = getattr(cfg, section)
        for m in tc.milestones:
            if not 0 < m < tc.epochs:
                raise ConfigError(
                    f"{section}.milestones: {m!r} is outside (0, {section}.epochs={tc.epochs}); "
                    f"give milestones inside it, or none: --set {section}.milestones=[]"
                )
        if tc.warmup_epochs > tc.epochs:
            raise ConfigError(
                f"{section}.warmup_epochs: {tc.warmup_epochs!r} exceeds {section}.epochs={tc.epochs}; "
                f"shorten it: --set {section}.warmup_epochs={tc.epochs}"
            )


def set_dotted(values: dict[str, Any], key: str, value: Any) -> None:
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
                raise ConfigError(
                    f"unknown key {key!r}: settings are SECTION.KEY; did you mean "
                    f"{' or '.join(repr(k) for k in within)}?"
                )
            raise _unknown(key, same, f", or SECTION.KEY with sections {', '.join(sections)}")
        if not same:
            hint = _did_you_mean(section.partition(".")[0], sections)
            raise ConfigError(f"unknown section in {key!r}{hint}; sections: {', '.join(sections)}")
        raise _unknown(key, same)
    return key


def parse_value(text: str, what: str) -> Any:
    """One value as typed (`--set`, `--param`, a form): a single-line TOML literal, else bare text.
    A newline or a trailing `# comment` is refused, never silently dropped with what follows it."""
    if "\n" in text or "\r" in text:
        raise ConfigError(f"{what}: the value spans several lines; give one value per option")
    text = text.strip()
    value = parse_literal(text)
    if "#" in text:
        head = text.partition("#")[0].strip()
        commented = value == text or (head != "" and parse_literal(head) == value)
        if commented:
            raise ConfigError(
                f"{what}: {text!r} holds a '#'; quote text that contains one (\"a #1\"), and leave comments out"
            )
    return value


def parse_set_options(options: list[str]) -> dict[str, Any]:
    """Turn `--set key=value` strings into a nested dict of raw (untyped) values."""
    out: dict[str, Any] = {}
    for opt in options:
        if "=" not in opt:
            raise ConfigError(f"--set {opt!r}: expected key=value")
        key, _, raw = opt.partition("=")
        key = check_key(key.strip())
        set_dotted(out, key, parse_value(raw, f"--set {key}"))
    return out


def readers(section: str) -> list[str]:
    """Who reads a section: 'simclr pretraining', 'the linear evaluation'."""
    return [f"{m.name} pretraining" for m in registry.methods() if section in m.reads] + [
        f"the {e.name} evaluation" for e in registry.evaluations() if e.name == section
    ]


def check_read(keys: list[str], parts: list[Any], option: str = "--set") -> None:
    """Refuse a key that no part of the run reads (it would change nothing): one line naming the
    parts and who would read it."""
    read = {s for p in parts for s in p.reads()}
    for key in keys:
        section, dot, _ = key.partition(".")
        if dot and section not in read:
            run = "; ".join(f"{p.method} with {', '.join(p.evaluation)}" for p in parts)
            who = " or ".join(readers(section)) or "nothing"
            raise ConfigError(
                f"{option} {key}: no part of this run reads [{section}] (this run: {run}; [{section}] is read by {who})"
            )


def parse_list(text: str | None, kind: type, option: str) -> list[Any] | None:
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
            what = (
                "a valid float (0.05) or percentage (5%)"
                if kind is float
                else "a non-negative integer"
                if kind is int
                else f"a valid {kind.__name__}"
            )
            raise ConfigError(f"{option}: {item!r} is not {what}") from None
        out.append(round(value, 6) if kind is float else value)
    if not out:
        raise ConfigError(f"{option}: empty list")
    return out


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Nested-dict merge; `over` wins."""
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def to_dict(cfg: BaseModel) -> dict[str, Any]:
    return cfg.model_dump(mode="python")


# ---------------------------------------------------------------- TOML writing


def dumps_toml(values: dict[str, Any], header: str = "") -> str:
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
