"""What the launch screen needs, without Textual: presets per method (and studies), the editable
hyperparameters of a preset, their validation, and starting `ssltui run`/`resume` as its own process.

A launched run lives in its own process session with its output in `runs/<id>/process.log`,
so a closed app or a dropped SSH connection does not stop it; the app only reads its folder.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from ssltui.core import config as cfgmod
from ssltui.core import registry
from ssltui.core.errors import ConfigError, SsltuiError
from ssltui.core.presets import PresetInfo, list_presets, resolve
from ssltui.core.store import RunDir, RunStore
from ssltui.tui.manage import RESUMABLE
from ssltui.tui.watch import LAUNCH_MARK, PROCESS_LOG

STUDY = "study"  # the method choice that lists study presets (every method in one run)
# The form lists the pretraining methods first, then the baseline, then studies.
METHODS = (*sorted(registry.method_names(), key=lambda m: not registry.method(m).pretrains), STUDY)
DEVICES = ("auto", "cpu", "cuda")
LABEL_CHOICES = (("1%", "0.01"), ("10%", "0.1"), ("1% and 10%", "0.01,0.1"))
DEFAULT_DATA = "cifar10"


def presets_for(method: str, presets: list[PresetInfo] | None = None) -> list[PresetInfo]:
    """Study presets for `study`; else run presets of `method`, plus presets meant for any
    method (their description says `--method`, like `smoke`)."""
    presets = list_presets() if presets is None else presets
    if method == STUDY:
        return [p for p in presets if p.kind == "study"]
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


def section_order() -> list[str]:
    """The order a form lists sections in (a study: the union of its parts'): training from scratch,
    pretraining, each method's settings, what pretraining also reads (the kNN monitor), the
    evaluations, then the run-wide tables."""
    scratch = [e.name for e in registry.evaluations() if not e.needs_encoder]
    methods = [m.name for m in registry.methods() if m.settings is not None]
    also = [s for m in registry.methods() for s in m.reads]
    return list(dict.fromkeys([*scratch, "pretrain", *methods, *also, *registry.evaluation_names(), "data", "runtime"]))


def sections_for(cfg: cfgmod.RunConfig) -> list[str]:
    """The config sections that matter to this pipeline, in the order it runs them."""
    reads = list(registry.method(cfg.method).reads)
    return reads + [e for e in cfg.evaluation if e not in reads] + ["data", "runtime"]


def method_arg(method: str) -> str | None:
    """The `--method` for a run preset; None for a study (its parts name their methods)."""
    return None if method == STUDY else method


def hyperparameters(preset: str, method: str) -> list[Param]:
    """Every hyperparameter of the preset (for `method`) that its pipeline uses, with the
    schema's description and limits. For a study, the union over its parts: an edit applies to
    every part, and a value the parts disagree on reads 'varies: a | b'."""
    parts = resolve(preset, method=method_arg(method)).parts
    out = []
    if method != STUDY:
        out.append(Param("evaluation", toml_text(parts[0].evaluation),
                         f"evaluations: {', '.join(cfgmod.VALID_EVALUATIONS[parts[0].method])}"))
    used = {s for p in parts for s in sections_for(p)}
    for section in (s for s in section_order() if s in used):
        users = [p for p in parts if section in sections_for(p)]
        for name, info in type(getattr(users[0], section)).model_fields.items():
            values = list(dict.fromkeys(toml_text(getattr(getattr(p, section), name)) for p in users))
            value = values[0] if len(values) == 1 else "varies: " + " | ".join(values)
            out.append(Param(f"{section}.{name}", value, (info.description or "") + cfgmod.limits_text(info)))
    return out


@dataclass
class PresetDefaults:
    """What the form takes from a preset when it is chosen."""

    labels: str  # '0.01,0.1'
    seeds: str  # '0, 1'
    data: str  # the preset's data source, else cifar10


def preset_defaults(preset: str, method: str) -> PresetDefaults:
    plan = resolve(preset, method=method_arg(method))
    labels = sorted({f for p in plan.parts for f in p.labels})
    seeds = sorted({s for p in plan.parts for s in p.seeds})
    return PresetDefaults(",".join(f"{f:g}" for f in labels), ", ".join(map(str, seeds)), plan.data or DEFAULT_DATA)


def parse_fractions(text: str) -> list[float]:
    """'0.01,0.1', '1%', '10%, 0.5' -> label fractions; ConfigError with the reason."""
    return cfgmod.check_field("labels", cfgmod.parse_list(text, float, "labels"))


def parse_seeds(text: str) -> list[int]:
    return cfgmod.check_field("seeds", cfgmod.parse_list(text, int, "seeds"))


def check_data(spec: str) -> None:
    from ssltui.trainer.data.sources import parse_source

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
    method: str  # a method, or STUDY
    labels: str = "0.1"
    seeds: str = "0"
    device: str = "auto"
    data: str = DEFAULT_DATA
    sets: dict[str, str] = field(default_factory=dict)  # dotted key -> typed text

    def set_options(self) -> list[str]:
        return [f"{k}={v}" for k, v in self.sets.items()]

    def validate_config(self, labels: list[float] | None = None, seeds: list[int] | None = None) -> None:
        """The preset with the edited hyperparameters, through the engine's validation."""
        if not self.preset:
            raise ConfigError("preset: none chosen")
        try:
            resolve(self.preset, method=method_arg(self.method), labels=labels, seeds=seeds,
                    sets=self.set_options())
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
        argv = [sys.executable, "-m", "ssltui", "run", "--preset", self.preset]
        if method_arg(self.method):
            argv += ["--method", self.method]
        argv += ["--labels", fracs, "--seeds", ",".join(map(str, parse_seeds(self.seeds))),
                 "--device", self.device, "--data", self.data.strip()]
        for opt in self.set_options():
            argv += ["--set", opt]
        return argv + ["--runs-dir", str(runs_dir), "--run-id", run_id, "--quiet"]


@dataclass
class Launched:
    """A training process this app started: for 'starting…' and cancel before it holds its lock."""

    proc: subprocess.Popen
    kind: str  # "run" or "resume"
    t0: float = field(default_factory=time.monotonic)
    started_at: float = field(default_factory=time.time)  # to tell its run_start event from earlier ones

    def alive(self) -> bool:
        return self.proc.poll() is None


def child_env() -> dict:
    """The app's environment, with this checkout importable (the project may not be installed)."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def spawn(argv: list[str], log_path: Path, kind: str) -> Launched:
    """Start `argv` in a new process session, its stderr (warnings, errors, a traceback of a
    crash) appended to `log_path` (a run's process.log) after a line that marks where this
    attempt's output begins (the live log starts there). Its stdout, the results table, is in
    summary.json (a sweep's in its study) anyway."""
    with open(log_path, "ab") as log:
        log.write(f"{LAUNCH_MARK} {kind} started by the app at {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode())
        log.flush()
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log,
                                start_new_session=True, env=child_env())
    return Launched(proc, kind)


def start_run(req: LaunchRequest, store: RunStore) -> tuple[RunDir, Launched]:
    """Create the run folder and start `ssltui run` in a new process session."""
    req.validate()
    run = store.create(req.preset)
    return run, spawn(req.argv(run.id, store.root), run.path / PROCESS_LOG, "run")


def start_resume(run: RunDir, store: RunStore) -> Launched:
    """`ssltui resume RUN` in a new process session; ConfigError when the run cannot resume."""
    info = run.info()
    if info.status not in RESUMABLE:
        raise ConfigError(f"run {run.id} is {info.status}; only an interrupted, failed or stale run resumes")
    if not run.config_path.exists():
        raise ConfigError(f"run {run.id} has no config.toml; it never started, so there is nothing to resume")
    argv = [sys.executable, "-m", "ssltui", "resume", run.id, "--runs-dir", str(store.root), "--quiet"]
    return spawn(argv, run.path / PROCESS_LOG, "resume")


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
