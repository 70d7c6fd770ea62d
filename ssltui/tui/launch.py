"""What the launch screen needs, without Textual: presets per method, the editable
hyperparameters of a preset, their validation, and starting `ssltui run` as its own process.

A launched run lives in its own process session with its output in `runs/<id>/process.log`,
so a closed app or a dropped SSH connection does not stop it; the app only reads its folder.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ssltui.engine import config as cfgmod
from ssltui.engine.errors import ConfigError, SsltuiError
from ssltui.engine.presets import PresetInfo, list_presets, resolve
from ssltui.engine.store import RunDir, RunStore
from ssltui.tui.watch import PROCESS_LOG

METHODS = ("simclr", "rotnet", "supervised")
DEVICES = ("auto", "cpu", "cuda")
LABEL_CHOICES = (("1%", "0.01"), ("10%", "0.1"), ("1% and 10%", "0.01,0.1"))


def presets_for(method: str, presets: list[PresetInfo] | None = None) -> list[PresetInfo]:
    """Run presets of `method`, plus presets meant for any method (their description says
    `--method`, like `smoke`)."""
    presets = list_presets() if presets is None else presets
    return [p for p in presets if p.kind == "run" and (p.method == method or "--method" in p.description)]


@dataclass
class Param:
    """One editable hyperparameter: dotted key, its value as TOML text, help and limits."""

    key: str
    value: str
    help: str


def toml_text(v: object) -> str:
    """A value as the user types it (TOML literal; strings bare when they are plain words)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, list):
        return ", ".join(toml_text(x) for x in v)
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def sections_for(cfg: cfgmod.RunConfig) -> list[str]:
    """The config sections that matter to this pipeline, in the order it runs them."""
    if cfg.method == "supervised":
        out = ["supervised"]
    else:
        out = ["pretrain", cfg.method, "knn"] + [e for e in ("linear", "semi") if e in cfg.evaluation]
    return out + ["data", "runtime"]


def hyperparameters(preset: str, method: str) -> list[Param]:
    """Every hyperparameter of the preset (for `method`) that its pipeline uses, with the
    schema's description and limits."""
    cfg = resolve(preset, method=method).parts[0]
    out = [Param("evaluation", toml_text(cfg.evaluation),
                 f"evaluations: {', '.join(cfgmod.VALID_EVALUATIONS[cfg.method])}")]
    for section in sections_for(cfg):
        obj = getattr(cfg, section)
        for name, info in type(obj).model_fields.items():
            out.append(Param(f"{section}.{name}", toml_text(getattr(obj, name)),
                             (info.description or "") + cfgmod.limits_text(info)))
    return out


def parse_fractions(text: str) -> list[float]:
    """'0.01,0.1', '1%', '10%, 0.5' -> label fractions; ConfigError with the reason."""
    return cfgmod.check_field("labels", cfgmod.parse_list(text, float, "labels"))


def parse_seeds(text: str) -> list[int]:
    return cfgmod.check_field("seeds", cfgmod.parse_list(text, int, "seeds"))


def check_data(spec: str) -> None:
    from ssltui.engine.data.sources import parse_source

    try:
        kind, arg = parse_source(spec.strip())
    except SsltuiError as exc:
        raise ConfigError(exc.message) from None
    if kind == "folder" and not Path(arg).expanduser().exists():
        raise ConfigError(f"data: {arg} does not exist")


@dataclass
class LaunchRequest:
    """Everything the launch screen chose."""

    preset: str
    method: str
    labels: str = "0.1"
    seeds: str = "0"
    device: str = "auto"
    data: str = "cifar10"
    sets: dict[str, str] = field(default_factory=dict)  # dotted key -> typed text

    def set_options(self) -> list[str]:
        return [f"{k}={v}" for k, v in self.sets.items()]

    def validate_config(self, labels: list[float] | None = None, seeds: list[int] | None = None) -> None:
        """The preset with the edited hyperparameters, through the engine's validation."""
        if not self.preset:
            raise ConfigError("preset: none chosen")
        try:
            resolve(self.preset, method=self.method, labels=labels, seeds=seeds, sets=self.set_options())
        except ConfigError as exc:
            raise ConfigError(exc.message.removeprefix(f"preset {self.preset!r}: ")) from None

    def validate(self) -> None:
        """Raise ConfigError with the reason when anything would be refused by `ssltui run`."""
        fracs, seeds = parse_fractions(self.labels), parse_seeds(self.seeds)
        cfgmod.check_device(self.device, "device")
        self.validate_config(fracs, seeds)
        check_data(self.data)

    def argv(self, run_id: str, runs_dir: Path) -> list[str]:
        fracs = ",".join(f"{f:g}" for f in parse_fractions(self.labels))
        argv = [sys.executable, "-m", "ssltui", "run", "--preset", self.preset, "--method", self.method,
                "--labels", fracs, "--seeds", ",".join(map(str, parse_seeds(self.seeds))),
                "--device", self.device, "--data", self.data.strip()]
        for opt in self.set_options():
            argv += ["--set", opt]
        return argv + ["--runs-dir", str(runs_dir), "--run-id", run_id, "--quiet"]


def child_env() -> dict:
    """The app's environment, with this checkout importable (the project may not be installed)."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def start_run(req: LaunchRequest, store: RunStore) -> tuple[RunDir, subprocess.Popen]:
    """Create the run folder and start `ssltui run` in a new process session."""
    req.validate()
    run = store.create(req.preset)
    with open(run.path / PROCESS_LOG, "ab") as log:
        proc = subprocess.Popen(req.argv(run.id, store.root), stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True, env=child_env())
    return run, proc


def run_pid(run: RunDir) -> int | None:
    """The pid of the process training `run` (summary.json, else run.lock), if it is live."""
    if not run.is_live():
        return None
    try:
        pid = run.read_summary().pid
        if pid is not None:
            return pid
    except (OSError, ValueError):
        pass
    try:
        return int(run.lock_path.read_text(encoding="utf-8").split()[0])
    except (OSError, ValueError, IndexError):
        return None


def cancel_run(run: RunDir) -> bool:
    """SIGINT the training process: it stops after the current step, saves a checkpoint and
    marks the run interrupted. False when no live process trains the run."""
    pid = run_pid(run)
    if pid is None:
        return False
    try:
        os.kill(pid, signal.SIGINT)
    except ProcessLookupError:
        return False
    return True
