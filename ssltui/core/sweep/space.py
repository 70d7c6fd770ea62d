"""What a sweep searches: `--param KEY=SPEC` parsed and checked against the config schema, and
the sweep's definition (the resolved plan, the parameters, sampler, metric, pruning).

Pure Python (no torch, no Optuna at import): a bad `--param` exits 2 before anything heavy loads.
"""

from __future__ import annotations

import hashlib
import json
import math
import typing
from dataclasses import dataclass
from typing import Any, Literal

import tomli_w
from pydantic import BaseModel, ConfigDict, Field

from ssltui.core import registry
from ssltui.core.config import (
    RunConfig,
    build_run_config,
    check_field,
    check_key,
    check_read,
    deep_merge,
    parse_value,
    schema_fields,
    set_dotted,
    to_dict,
)
from ssltui.core.errors import ConfigError
from ssltui.core.presets import Plan, resolve_typed

SPEC_HELP = "log:LO:HI, int:LO:HI, LO:HI or a comma list of values"
SAMPLERS = ("grid", "random", "tpe")
METRICS = ("val_acc", "knn_acc")  # the first is the default
GRID_MAX_RANGE = 64  # an int range in a grid lists every integer; more is a sampler's job
GRID_MAX_POINTS = 10_000  # a grid's points are queued when it is created; more is a sampler's job
Value = str | bool | int | float


def _kind_of(key: str) -> type | None:
    """int or float for a numeric setting, list for a list, None for anything else."""
    tp = schema_fields()[key].annotation
    while typing.get_origin(tp) is typing.Annotated:
        tp = typing.get_args(tp)[0]
    if typing.get_origin(tp) is list:
        return list
    return tp if tp in (int, float) else None


@dataclass(frozen=True)
class Param:
    """One swept setting: a range (`log`, `int`, `uniform`) or a list of values (`choice`)."""

    key: str
    kind: Literal["log", "int", "uniform", "choice"]
    low: float | int | None = None
    high: float | int | None = None
    choices: tuple[Value, ...] = ()

    @property
    def bounds(self) -> tuple[float | int, float | int]:
        """(low, high) of a range; a choice has none."""
        if self.low is None or self.high is None:
            raise ConfigError(f"--param {self.key}: a list of values has no range")
        return self.low, self.high

    @property
    def integer(self) -> bool:
        """Sampled as an integer (an int range, or a range over an integer setting)."""
        return self.kind == "int" or (self.kind != "choice" and isinstance(self.low, int))

    def spec(self) -> str:
        """KEY=SPEC, canonical: how the sweep's definition records it."""
        if self.kind == "choice":
            return f"{self.key}=" + ",".join(literal(v) for v in self.choices)
        prefix = {"log": "log:", "int": "int:", "uniform": ""}[self.kind]
        return f"{self.key}={prefix}{self.low!r}:{self.high!r}"

    def candidates(self) -> list[Value]:
        """The values checked before a sweep starts: the ends of a range, or every listed value."""
        return list(self.choices) if self.kind == "choice" else list(self.bounds)

    def grid(self) -> list[Value]:
        """Every value a grid runs; ConfigError for a continuous range."""
        if self.kind == "choice":
            return list(self.choices)
        low, high = self.bounds
        if self.integer and self.kind != "log" and high - low < GRID_MAX_RANGE:
            return list(range(int(low), int(high) + 1))
        raise ConfigError(
            f"--sampler grid: --param {self.spec()} is a range; list its values "
            f"(KEY=a,b,c) or use --sampler random or tpe"
        )

    def suggest(self, trial: Any) -> Value:
        """The trial's value (sampled by Optuna, or fixed for a queued grid point), schema-checked."""
        if self.kind == "choice":
            value = trial.suggest_categorical(self.key, list(self.choices))
        elif self.integer:
            value = trial.suggest_int(self.key, int(self.bounds[0]), int(self.bounds[1]), log=self.kind == "log")
        else:
            value = trial.suggest_float(self.key, float(self.bounds[0]), float(self.bounds[1]), log=self.kind == "log")
        checked: Value = check_field(self.key, value)
        return checked


def literal(value: Value) -> str:
    """A value as a TOML literal (what `--set` parses back): 0.1, 3, true, "sgd"."""
    return tomli_w.dumps({"v": value}).partition("=")[2].strip()


def _number(text: str, integer: bool, spec: str) -> int | float:
    try:
        value = int(text) if integer else float(text)
    except ValueError:
        what = "an integer" if integer else "a number"
        raise ConfigError(f"--param {spec}: {text.strip()!r} is not {what}") from None
    if not math.isfinite(value):
        raise ConfigError(f"--param {spec}: {text.strip()!r} is not a finite number")
    return value


def _range(key: str, kind: Literal["log", "int", "uniform"], bounds: str, spec: str) -> Param:
    numeric = _kind_of(key)
    if numeric not in (int, float):
        raise ConfigError(f"--param {spec}: {key} is not a number; list its values instead (KEY=a,b)")
    lo_text, sep, hi_text = bounds.partition(":")
    if not sep or ":" in hi_text:
        raise ConfigError(f"--param {spec}: expected {SPEC_HELP}")
    integer = kind == "int" or numeric is int
    lo, hi = _number(lo_text, integer, spec), _number(hi_text, integer, spec)
    if not lo < hi:
        raise ConfigError(f"--param {spec}: the range needs LO < HI")
    if kind == "log" and lo <= 0:
        raise ConfigError(f"--param {spec}: a log range needs LO > 0")
    return Param(key, kind, lo, hi)


def parse_param(text: str) -> Param:
    """`KEY=SPEC` -> Param, its key and every bound or value typed and range-checked by the schema
    (the same one-line errors as `--set`)."""
    key, sep, spec = (part.strip() for part in text.partition("="))
    if not sep or not key or not spec:
        raise ConfigError(f"--param {text!r}: expected KEY=SPEC with SPEC one of {SPEC_HELP}")
    try:
        check_key(key)
    except ConfigError as exc:
        raise ConfigError(f"--param {exc.message}") from None
    if _kind_of(key) is list:
        raise ConfigError(
            f"--param {key}: a list setting cannot be swept (sweep its items' settings, or --labels/--seeds)"
        )
    head, _, rest = spec.partition(":")
    if head == "log":
        param = _range(key, "log", rest, text)
    elif head == "int":
        param = _range(key, "int", rest, text)
    elif ":" in spec and "," not in spec:
        param = _range(key, "uniform", spec, text)
    else:
        values: list[Value] = []
        for item in spec.split(","):
            value = parse_value(item, f"--param {key}") if item.strip() else None
            if value is None or isinstance(value, (list, dict)):
                raise ConfigError(f"--param {text}: {item.strip()!r} is not a single value")
            if value not in values:
                values.append(value)
        param = Param(key, "choice", choices=tuple(values))
    for value in param.candidates():
        try:
            check_field(key, value)
        except ConfigError as exc:
            raise ConfigError(f"--param {exc.message}") from None
    return param


def parse_params(texts: list[str]) -> list[Param]:
    params = [parse_param(t) for t in texts]
    keys = [p.key for p in params]
    for key in keys:
        if keys.count(key) > 1:
            raise ConfigError(f"--param {key}: given twice")
    return params


# ---------------------------------------------------------------- the sweep's definition


class SweepDefinition(BaseModel):
    """Everything that decides a sweep's trials, kept with its Optuna study (a user attribute),
    so a worker on another machine joins with `--name` alone and runs the same search."""

    model_config = ConfigDict(extra="ignore")

    version: int = 1
    preset: str
    description: str = ""
    parts: list[dict[str, Any]]  # the resolved plan; each trial sets its parameters on every part
    params: list[str]  # KEY=SPEC, canonical
    sampler: Literal["grid", "random", "tpe"]
    trials: int = Field(ge=1)
    metric: Literal["val_acc", "knn_acc"] = "val_acc"
    prune: bool = False
    prune_startup: int = Field(3, ge=0)  # trials finished before the pruner may stop one
    prune_warmup: int = Field(1, ge=0)  # epochs of a phase reported before it may be pruned
    sampler_seed: int | None = None
    data: str = "cifar10"

    def search_space(self) -> list[Param]:
        return [parse_param(p) for p in self.params]

    def plan(self, values: dict[str, Value]) -> Plan:
        """The run plan of one trial: the definition's plan with `values` set on every part."""
        over: dict[str, Any] = {}
        for key, value in values.items():
            set_dotted(over, key, value)
        return Plan(self.preset, self.description, [build_run_config(deep_merge(p, over)) for p in self.parts])

    def grid_size(self) -> int:
        """How many points the grid has, counted without listing them."""
        return math.prod(len(p.grid()) for p in self.search_space())

    def grid(self) -> list[dict[str, Value]]:
        """Every point of the grid, in the order given (the last parameter varies fastest)."""
        points: list[dict[str, Value]] = [{}]
        for param in self.search_space():
            points = [{**point, param.key: v} for point in points for v in param.grid()]
        return points

    def identity(self) -> str:
        """What two workers must agree on to share a sweep (all but the trial count and data path)."""
        return json.dumps(self.model_dump(exclude={"trials", "data", "sampler_seed"}), sort_keys=True)

    def default_name(self) -> str:
        """`<preset>-<hash>`: the same command names the same sweep, so rerunning it resumes it."""
        stem = "".join(c if c.isalnum() or c in "-_." else "-" for c in self.preset.rsplit("/", 1)[-1])
        stem = stem.removesuffix(".toml")[:40] or "sweep"
        return f"{stem}-{hashlib.sha1(self.identity().encode()).hexdigest()[:8]}"


def check_name(name: str) -> str:
    """A sweep name: it becomes the trials' group and a part of their run ids."""
    if not (0 < len(name) <= 100) or not all(c.isalnum() or c in "-_." for c in name) or name.startswith("."):
        raise ConfigError(f"--name {name[:60]!r}: use letters, digits, - _ . (at most 100)")
    return name


def make_definition(
    plan: Plan,
    params: list[Param],
    sampler: str | None,
    trials: int | None,
    metric: str,
    prune: bool,
    prune_startup: int,
    prune_warmup: int,
    sampler_seed: int | None,
    data: str,
) -> SweepDefinition:
    """Check a new sweep whole before its first trial: every bound or value of every parameter
    builds a valid run configuration, the sampler fits the space, the metric is measured."""
    if not params:
        raise ConfigError("--param: a sweep needs at least one parameter (KEY=SPEC)")
    if sampler is not None and sampler not in SAMPLERS:
        raise ConfigError(f"--sampler: {sampler!r} is not one of {', '.join(SAMPLERS)}")
    if metric not in METRICS:
        raise ConfigError(f"--metric: {metric!r} is not one of {', '.join(METRICS)}")
    if sampler is None:
        sampler = "grid" if all(p.kind == "choice" for p in params) else "tpe"
    defn = SweepDefinition(
        preset=plan.preset,
        description=plan.description,
        parts=[to_dict(p) for p in plan.parts],
        params=[p.spec() for p in params],
        sampler=sampler,
        trials=1,
        metric=metric,
        prune=prune,
        prune_startup=prune_startup,
        prune_warmup=prune_warmup,
        sampler_seed=sampler_seed,
        data=data,
    )
    if sampler == "grid":
        size = defn.grid_size()
        if size > GRID_MAX_POINTS:
            raise ConfigError(
                f"--sampler grid: {size:,} points, more than {GRID_MAX_POINTS:,}; list fewer values, "
                f"or use --sampler random or tpe with --trials N"
            )
        if trials is not None and trials != size:
            raise ConfigError(
                f"--trials {trials}: a grid runs each of its {size} points once; "
                f"--trials applies to --sampler random and tpe"
            )
        defn.trials = size
    else:
        defn.trials = 20 if trials is None else trials
        if defn.trials < 1:
            raise ConfigError(f"--trials {defn.trials}: at least 1")
    first = {p.key: p.candidates()[0] for p in params}
    for p in params:
        for value in p.candidates():
            try:
                defn.plan({**first, p.key: value})
            except ConfigError as exc:
                raise ConfigError(f"--param {p.key}={literal(value)}: {exc.message}") from None
    if metric == "knn_acc":
        check_knn_metric(plan.parts)
    return defn


def define_sweep(
    preset: str,
    params: list[Param],
    *,
    method: str | None = None,
    evaluation: str | None = None,
    labels: str | None = None,
    seeds: str | None = None,
    sets: list[str] | None = None,
    sampler: str | None = None,
    trials: int | None = None,
    metric: str = METRICS[0],
    prune: bool = False,
    prune_startup: int = 3,
    prune_warmup: int = 1,
    sampler_seed: int | None = None,
    data: str | None = None,
) -> SweepDefinition:
    """A new sweep from `ssltui sweep`'s options as typed (None: the preset's own, and for data
    the preset's source, else cifar10, as `ssltui run` reads it): the one reading the CLI and the
    app's new-sweep form share, so the form starts the sweep it checked."""
    plan = resolve_typed(preset, method, evaluation, labels, seeds, sets)
    check_read([p.key for p in params], plan.parts, "--param")
    return make_definition(
        plan,
        params,
        sampler,
        trials,
        metric,
        prune,
        prune_startup,
        prune_warmup,
        sampler_seed,
        data or plan.data or "cifar10",
    )


def check_knn_metric(parts: list[RunConfig]) -> None:
    """`--metric knn_acc` reads the kNN monitor of pretraining: every part must have one."""
    for part in parts:
        if "knn" not in registry.method(part.method).reads or part.knn.every_epochs == 0:
            monitored = ", ".join(m.name for m in registry.methods() if "knn" in m.reads)
            raise ConfigError(
                f"--metric knn_acc: the kNN monitor runs during pretraining; it needs a method that "
                f"has one ({monitored}) and knn.every_epochs > 0 (or use --metric val_acc)"
            )
