"""What the new-sweep form needs, without Textual: the run presets a sweep can start from, the
form's choices read by the sweep CLI's own code (core/sweep/space.py `define_sweep`), and
starting `ssltui sweep` as its own process with launch.py's `spawn`.

The sweep lives in its own process session, its output in `<runs>/sweeps/NAME.log`; the sweep
screen reads its Optuna study, so a closed app leaves the sweep running. No torch, no Optuna.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ssltui.core import config as cfgmod
from ssltui.core.errors import ConfigError
from ssltui.core.presets import PresetInfo, list_presets, resolve
from ssltui.core.store import RunStore
from ssltui.core.sweep.space import METRICS, SAMPLERS, SweepDefinition, check_name, define_sweep, parse_params
from ssltui.tui.launch import DEFAULT_DATA, Launched, check_data, spawn

AUTO = "auto"  # the sampler choice that lets the CLI pick (grid when every parameter lists values)
SAMPLER_CHOICES = (AUTO, *SAMPLERS)
PRESETS_OWN = ""  # a blank method: the preset's own (no --method)


def sweep_presets(presets: list[PresetInfo] | None = None) -> list[PresetInfo]:
    """Run presets only: a sweep's trials are single runs, never studies."""
    return [p for p in (list_presets() if presets is None else presets) if p.kind == "run"]


@dataclass(frozen=True)
class PresetValues:
    """What a sweep of the preset runs when the form leaves a field blank, as the form shows it."""

    method: str
    evaluation: str  # 'linear,knn'
    labels: str  # '0.01,0.1'
    seeds: str  # '0,1'
    data: str  # the preset's data source (synthetic for smoke), else cifar10, as the launch form


def preset_values(preset: str, method: str = PRESETS_OWN) -> PresetValues:
    """The preset's own values, with `method` (blank: the preset's) as `--method` would set it."""
    plan = resolve(preset, method=method or None)
    part = plan.parts[0]  # a run preset: one part
    return PresetValues(
        part.method,
        ",".join(part.evaluation),
        ",".join(f"{f:g}" for f in part.labels),
        ",".join(map(str, part.seeds)),
        plan.data or DEFAULT_DATA,
    )


def typed_items(text: str) -> list[str]:
    """Several `KEY=...` items in one field, split by ';' (a value may hold commas)."""
    return [t.strip() for t in text.split(";") if t.strip()]


def default_name(preset: str, now: float | None = None) -> str:
    """`<preset>-<date>-<time>`: a new sweep each time the form starts one."""
    stem = "".join(c if c.isalnum() or c in "-_." else "-" for c in preset.rsplit("/", 1)[-1]).removesuffix(".toml")
    return f"{stem[:40] or 'sweep'}-{time.strftime('%Y%m%d-%H%M%S', time.localtime(now))}"


def sweep_log(store: RunStore, name: str) -> Path:
    return store.sweeps_dir() / f"{name}.log"


def process_key(name: str) -> str:
    """The sweep's key in the app's processes (run ids never hold ':')."""
    return f"sweep:{name}"


@dataclass
class SweepRequest:
    """Everything the new-sweep form chose, as typed; a blank field is the preset's own value
    (method, evaluation, labels, seeds) or the CLI's default (trials, metric, name)."""

    preset: str
    params: str  # KEY=SPEC items split by ';'
    trials: str = ""  # blank: the sampler's own count (every grid point, else 20)
    sampler: str = AUTO
    data: str = DEFAULT_DATA
    device: str = "auto"
    name: str = ""  # blank: default_name(preset)
    method: str = PRESETS_OWN
    evaluation: str = ""  # comma list
    labels: str = ""  # comma list of fractions or percentages
    seeds: str = ""  # comma list
    sets: str = ""  # fixed overrides: KEY=VALUE items split by ';'
    metric: str = METRICS[0]
    prune: bool = False

    def param_specs(self) -> list[str]:
        return typed_items(self.params)

    def set_specs(self) -> list[str]:
        return typed_items(self.sets)

    def trial_count(self) -> int | None:
        if not self.trials.strip():
            return None
        try:
            return int(self.trials.strip())
        except ValueError:
            raise ConfigError(f"--trials {self.trials.strip()!r}: not a whole number") from None

    def options(self) -> list[tuple[str, str]]:
        """The typed plan options as `ssltui sweep` takes them: (flag, text), blank ones left out."""
        typed = [
            ("--method", self.method),
            ("--evaluation", self.evaluation),
            ("--labels", self.labels),
            ("--seeds", self.seeds),
        ] + [("--set", s) for s in self.set_specs()]
        return [(flag, text.strip()) for flag, text in typed if text.strip()]

    def definition(self) -> SweepDefinition:
        """The sweep `ssltui sweep` would start: ConfigError with the CLI's own one-line reason."""
        if not self.preset:
            raise ConfigError("preset: none chosen")
        typed = dict(self.options())
        return define_sweep(
            self.preset,
            parse_params(self.param_specs()),
            method=typed.get("--method"),
            evaluation=typed.get("--evaluation"),
            labels=typed.get("--labels"),
            seeds=typed.get("--seeds"),
            sets=self.set_specs(),
            sampler=None if self.sampler == AUTO else self.sampler,
            trials=self.trial_count(),
            metric=self.metric.strip() or METRICS[0],
            prune=self.prune,
            data=self.data.strip(),
        )

    def validate(self, taken: frozenset[str] = frozenset()) -> SweepDefinition:
        """Raise ConfigError when `ssltui sweep` would refuse any of it, or would join one of the
        `taken` sweeps instead of starting a new one."""
        cfgmod.check_device(self.device, "device")
        check_data(self.data)
        name = self.name.strip()
        if name:
            check_name(name)
            if name in taken:
                raise ConfigError(
                    f"name: sweep {name!r} exists; a new sweep needs a new name "
                    f"(`ssltui sweep --name {name}` continues that one)"
                )
        return self.definition()

    def argv(self, name: str, runs_dir: Path) -> list[str]:
        """`ssltui sweep` with every choice of the form: it defines the sweep `definition()` checked."""
        argv = [sys.executable, "-m", "ssltui", "sweep", "--preset", self.preset]
        for spec in self.param_specs():
            argv += ["--param", spec]
        for flag, text in self.options():
            argv += [flag, text]
        if self.sampler != AUTO:
            argv += ["--sampler", self.sampler]
        if self.trial_count() is not None:
            argv += ["--trials", str(self.trial_count())]
        argv += ["--metric", self.metric.strip() or METRICS[0]] + (["--prune"] if self.prune else [])
        # Not --quiet: the log then says which trial runs and how each ended, one line per event.
        return argv + [
            "--name",
            name,
            "--data",
            self.data.strip(),
            "--device",
            self.device,
            "--runs-dir",
            str(runs_dir),
        ]


def start_sweep(req: SweepRequest, store: RunStore, taken: frozenset[str] = frozenset()) -> tuple[str, Path, Launched]:
    """Check the request, then start `ssltui sweep` in a new process session: its name, its log."""
    req.validate(taken)
    name = req.name.strip() or default_name(req.preset)
    log = sweep_log(store, name)
    log.parent.mkdir(parents=True, exist_ok=True)
    return name, log, spawn(req.argv(name, store.root), log, "sweep")
