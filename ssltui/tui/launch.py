"""What the launch screen needs, without Textual: presets per method (and studies), the editable
hyperparameters of a preset, their validation, and starting `ssltui run`/`resume` as its own process.

One launch path: the form resolves a preset once when it is chosen (a `Plan`); its labels, seeds
and edits are applied to that plan, not to the preset file again; the launch writes the final
plan into the run folder (`launch.toml`, the format of a run's config.toml) and starts
`ssltui run --config launch.toml`, which trains it as it is.

A launched run lives in its own process session with its output in `runs/<id>/process.log`,
so a closed app or a dropped SSH connection does not stop it; the app only reads its folder.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from ssltui.core import config as cfgmod
from ssltui.core import registry
from ssltui.core.datasource import parse_source
from ssltui.core.errors import ConfigError, SsltuiError, quoted
from ssltui.core.plan import plan_to_toml
from ssltui.core.presets import Plan, PresetInfo, list_presets, resolve
from ssltui.core.store import RunDir, RunStore, atomic_write_text
from ssltui.tui.manage import RESUMABLE
from ssltui.tui.watch import LAUNCH_MARK, PROCESS_LOG

STUDY = "study"  # the method choice that lists study presets (every method in one run)
# The form lists the pretraining methods first, then the baseline, then studies.
METHODS = (*sorted(registry.method_names(), key=lambda m: not registry.method(m).pretrains), STUDY)
DEVICES = ("auto", "cpu", "cuda")
LABEL_CHOICES = (("1%", "0.01"), ("10%", "0.1"), ("1% and 10%", "0.01,0.1"))
DEFAULT_DATA = "cifar10"
LAUNCH_FILE = "launch.toml"  # the resolved configuration the app hands to `ssltui run --config`


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


def resolve_choice(preset: str, method: str) -> Plan:
    """The preset as the form's method asks for it: read and validated once per choice."""
    return resolve(preset, method=method_arg(method))


def apply_choices(
    base: Plan, labels: list[float] | None = None, seeds: list[int] | None = None, sets: list[str] | None = None
) -> Plan:
    """`base` with the form's labels, seeds and `key=value` edits, each part validated as
    `resolve` validates it, without reading the preset again."""
    cli: dict = {}
    if labels is not None:
        cli["labels"] = labels
    if seeds is not None:
        cli["seeds"] = seeds
    cli = cfgmod.deep_merge(cli, cfgmod.parse_set_options(sets or []))
    parts = []
    for part in base.parts:
        try:
            parts.append(cfgmod.build_run_config(cfgmod.deep_merge(part.resolved_dict(), cli)))
        except ConfigError as exc:
            raise ConfigError(f"preset {quoted(base.preset)}: {exc.message}") from None
    cfgmod.check_read([opt.partition("=")[0].strip() for opt in sets or []], parts)
    return Plan(base.preset, base.description, parts, base.data)


def hyperparameters(preset: str | Plan, method: str) -> list[Param]:
    """Every hyperparameter of the preset (for `method`; a name or its resolved plan) that its
    pipeline uses, with the schema's description and limits. For a study, the union over its
    parts: an edit applies to every part, and a value the parts disagree on reads 'varies: a | b'."""
    parts = (preset if isinstance(preset, Plan) else resolve_choice(preset, method)).parts
    out = []
    if method != STUDY:
        out.append(
            Param(
                "evaluation",
                toml_text(parts[0].evaluation),
                f"evaluations: {', '.join(cfgmod.VALID_EVALUATIONS[parts[0].method])}",
            )
        )
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


def preset_defaults(preset: str | Plan, method: str) -> PresetDefaults:
    plan = preset if isinstance(preset, Plan) else resolve_choice(preset, method)
    labels = sorted({f for p in plan.parts for f in p.labels})
    seeds = sorted({s for p in plan.parts for s in p.seeds})
    return PresetDefaults(",".join(f"{f:g}" for f in labels), ", ".join(map(str, seeds)), plan.data or DEFAULT_DATA)


def parse_fractions(text: str) -> list[float]:
    """'0.01,0.1', '1%', '10%, 0.5' -> label fractions; ConfigError with the reason."""
    return cfgmod.check_field("labels", cfgmod.parse_list(text, float, "labels"))


def parse_seeds(text: str) -> list[int]:
    return cfgmod.check_field("seeds", cfgmod.parse_list(text, int, "seeds"))


def check_data(spec: str) -> None:

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
    base: Plan | None = None  # the preset as resolved when it was chosen (else resolved here, once)

    def set_options(self) -> list[str]:
        return [f"{k}={v}" for k, v in self.sets.items()]

    def _base(self) -> Plan:
        if not self.preset:
            raise ConfigError("preset: none chosen")
        if self.base is None or self.base.preset != self.preset:
            self.base = resolve_choice(self.preset, self.method)
        return self.base

    def validate_config(self, labels: list[float] | None = None, seeds: list[int] | None = None) -> Plan:
        """The chosen preset with the edited hyperparameters, through the engine's validation."""
        try:
            return apply_choices(self._base(), labels, seeds, self.set_options())
        except ConfigError as exc:
            raise ConfigError(exc.message.removeprefix(f"preset {quoted(self.preset)}: ")) from None

    def resolved(self) -> Plan:
        """The plan `ssltui run` will train; ConfigError with the reason when anything would be refused."""
        fracs, seeds = parse_fractions(self.labels), parse_seeds(self.seeds)
        cfgmod.check_device(self.device, "device")
        plan = self.validate_config(fracs, seeds)
        check_data(self.data)
        return plan

    def validate(self) -> None:
        self.resolved()

    def options(self) -> cfgmod.RunOptions:
        return cfgmod.run_options(data=self.data.strip(), device=self.device)


@dataclass
class Launched:
    """A training process this app started: for 'starting…' and cancel before it holds its lock."""

    proc: subprocess.Popen
    kind: str  # "run" or "resume"
    t0: float = field(default_factory=time.monotonic)
    started_at: float = field(default_factory=time.time)  # to tell its run_start event from earlier ones
    edits: dict[str, str] = field(default_factory=dict)  # the form's edits, back in the form if it fails to begin

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
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log,
            start_new_session=True,
            env=child_env(),
        )
    return Launched(proc, kind)


def start_run(req: LaunchRequest, store: RunStore) -> tuple[RunDir, Launched]:
    """Create the run folder, write the resolved configuration into it and start
    `ssltui run --config` in a new process session (it loads the data before it writes anything
    else there, so a data error leaves the folder as the app made it: see `discard_failed_launch`)."""
    plan = req.resolved()
    text = plan_to_toml(plan, req.options())
    run = store.create(req.preset)
    try:
        atomic_write_text(run.path / LAUNCH_FILE, text)
        argv = [
            sys.executable,
            "-m",
            "ssltui",
            "run",
            "--config",
            str(run.path / LAUNCH_FILE),
            "--runs-dir",
            str(store.root),
            "--run-id",
            run.id,
            "--quiet",
        ]
        launched = spawn(argv, run.path / PROCESS_LOG, "run")
        launched.edits = dict(req.sets)
        return run, launched
    except BaseException:
        shutil.rmtree(run.path, ignore_errors=True)
        raise


# CLI flags in a launched process's error, and what the launch form calls them
_FORM_TERMS = (
    (re.compile(r"\buse --data\b"), "set the form's data field to"),
    (re.compile(r"--data-dir\b"), "$SSLTUI_DATA_DIR"),
    (re.compile(r"--data\b"), "data"),
    (re.compile(r"--(labels|seeds|device|preset|method)\b"), r"\1"),
    (re.compile(r"--set\s+"), ""),
    (re.compile(r"--config \S+: "), ""),
)


def form_terms(message: str) -> str:
    """A launched `ssltui run`'s one-line error in the launch form's words: the fields, not flags."""
    message = message.strip().removeprefix("ssltui: error: ")
    for pattern, words in _FORM_TERMS:
        message = pattern.sub(words, message)
    return message


def failed_launch(run: RunDir, launched: Launched) -> str | None:
    """When a run this app launched ended before it began (its data could not be loaded, say):
    the process's error line; None while it runs or once the run has begun (config.toml exists)."""
    if launched.kind != "run" or launched.alive() or run.config_path.exists():
        return None
    try:
        lines = (run.path / PROCESS_LOG).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        lines = []
    lines = [ln for ln in lines if ln.strip() and not ln.startswith(LAUNCH_MARK)]
    errors = [ln for ln in lines if ln.startswith("ssltui: error: ")]
    line = (errors or lines or [f"the run's process ended with exit code {launched.proc.returncode}"])[-1]
    return form_terms(line)


def discard_failed_launch(run: RunDir) -> None:
    """Remove the folder of a launch that never began: it holds only what the app put there."""
    if run.config_path.exists():
        return
    if {p.name for p in run.path.iterdir()} <= {LAUNCH_FILE, PROCESS_LOG}:
        shutil.rmtree(run.path, ignore_errors=True)


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
