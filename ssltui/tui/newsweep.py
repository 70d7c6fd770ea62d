"""What the new-sweep form needs, without Textual: the run presets a sweep can start from, the
form's choices checked by the sweep CLI's own parsing (engine/sweep/space.py), and starting
`ssltui sweep` as its own process with launch.py's `spawn`.

The sweep lives in its own process session, its output in `<runs>/sweeps/NAME.log`; the sweep
screen reads its Optuna study, so a closed app leaves the sweep running. No torch, no Optuna.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ssltui.engine import config as cfgmod
from ssltui.engine.errors import ConfigError
from ssltui.engine.presets import PresetInfo, list_presets, resolve
from ssltui.engine.store import RunStore
from ssltui.engine.sweep.space import SAMPLERS, SweepDefinition, check_name, make_definition, parse_params
from ssltui.tui.launch import DEFAULT_DATA, Launched, check_data, spawn

AUTO = "auto"  # the sampler choice that lets the CLI pick (grid when every parameter lists values)
SAMPLER_CHOICES = (AUTO, *SAMPLERS)
METRIC = "val_acc"


def sweep_presets(presets: list[PresetInfo] | None = None) -> list[PresetInfo]:
    """Run presets only: a sweep's trials are single runs, never studies."""
    return [p for p in (list_presets() if presets is None else presets) if p.kind == "run"]


def preset_data(preset: str) -> str:
    """The data source the preset names (synthetic for smoke), else cifar10, as the launch form."""
    return resolve(preset).data or DEFAULT_DATA


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
    """Everything the new-sweep form chose, as typed."""

    preset: str
    params: str  # KEY=SPEC items split by ';'
    trials: str = ""  # blank: the sampler's own count (every grid point, else 20)
    sampler: str = AUTO
    data: str = DEFAULT_DATA
    device: str = "auto"
    name: str = ""  # blank: default_name(preset)

    def param_specs(self) -> list[str]:
        return [t.strip() for t in self.params.split(";") if t.strip()]

    def trial_count(self) -> int | None:
        if not self.trials.strip():
            return None
        try:
            return int(self.trials.strip())
        except ValueError:
            raise ConfigError(f"--trials {self.trials.strip()!r}: not a whole number") from None

    def definition(self) -> SweepDefinition:
        """The sweep `ssltui sweep` would start: ConfigError with the CLI's own one-line reason."""
        if not self.preset:
            raise ConfigError("preset: none chosen")
        specs = parse_params(self.param_specs())
        return make_definition(resolve(self.preset), specs, None if self.sampler == AUTO else self.sampler,
                               self.trial_count(), METRIC, False, 3, 1, None, self.data.strip())

    def validate(self, taken: frozenset[str] = frozenset()) -> SweepDefinition:
        """Raise ConfigError when `ssltui sweep` would refuse any of it, or would join one of the
        `taken` sweeps instead of starting a new one."""
        cfgmod.check_device(self.device, "device")
        check_data(self.data)
        name = self.name.strip()
        if name:
            check_name(name)
            if name in taken:
                raise ConfigError(f"name: sweep {name!r} exists; a new sweep needs a new name "
                                  f"(`ssltui sweep --name {name}` continues that one)")
        return self.definition()

    def argv(self, name: str, runs_dir: Path) -> list[str]:
        argv = [sys.executable, "-m", "ssltui", "sweep", "--preset", self.preset]
        for spec in self.param_specs():
            argv += ["--param", spec]
        if self.sampler != AUTO:
            argv += ["--sampler", self.sampler]
        if self.trial_count() is not None:
            argv += ["--trials", str(self.trial_count())]
        # Not --quiet: the log then says which trial runs and how each ended, one line per event.
        return argv + ["--name", name, "--data", self.data.strip(), "--device", self.device,
                       "--runs-dir", str(runs_dir)]


def start_sweep(req: SweepRequest, store: RunStore, taken: frozenset[str] = frozenset()
                ) -> tuple[str, Path, Launched]:
    """Check the request, then start `ssltui sweep` in a new process session: its name, its log."""
    req.validate(taken)
    name = req.name.strip() or default_name(req.preset)
    log = sweep_log(store, name)
    log.parent.mkdir(parents=True, exist_ok=True)
    return name, log, spawn(req.argv(name, store.root), log, "sweep")
