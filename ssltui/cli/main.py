"""The headless face: `ssltui run | resume | presets | runs | show`, and `ssltui` alone for the TUI.

Module-level imports stay light (no torch): `ssltui --help`, `presets` and `runs` answer fast.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
from pathlib import Path
from typing import Optional

import typer

from ssltui.engine.errors import ConfigError, ExitCode, SsltuiError, first_line

app = typer.Typer(
    name="ssltui",
    help="Self-supervised learning (SimCLR, RotNet) on CIFAR-10 with ResNet-20. "
         "Run `ssltui` alone for the terminal app.",
    no_args_is_help=False,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _err(message: str) -> None:
    print(f"ssltui: error: {message}", file=sys.stderr, flush=True)


def _stdout_console():
    from rich.console import Console

    return Console(highlight=False)


def _parse_list(text: str | None, kind: type, option: str) -> list | None:
    if text is None:
        return None
    out = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        try:
            out.append(kind(item))
        except ValueError:
            raise ConfigError(f"{option}: {item!r} is not a valid {kind.__name__}") from None
    if not out:
        raise ConfigError(f"{option}: empty list")
    return out


def _store(runs_dir: Optional[Path]):
    from ssltui.engine.paths import runs_dir as default_runs_dir
    from ssltui.engine.store import RunStore

    return RunStore(default_runs_dir(runs_dir))


@app.callback(invoke_without_command=True)
def main(ctx: typer.Context) -> None:
    """Without a command, open the terminal app."""
    if ctx.invoked_subcommand is None:
        try:
            from ssltui.tui.app import run_tui
        except ImportError:
            typer.echo(ctx.get_help())
            raise typer.Exit(0)
        raise typer.Exit(run_tui())


# ---------------------------------------------------------------- run / resume

RUNS_DIR_OPT = typer.Option(None, "--runs-dir", help="run store (default: $SSLTUI_RUNS_DIR or the user data dir)")


def _install_signal_handlers(runner) -> None:
    count = {"n": 0}

    def handler(signum, _frame):
        count["n"] += 1
        name = signal.Signals(signum).name
        if count["n"] > 1:
            print(f"ssltui: {name} again, exiting now (the last checkpoint is whole)", file=sys.stderr, flush=True)
            os._exit(ExitCode.INTERRUPTED)
        print(f"ssltui: {name}: finishing the current step and saving a checkpoint "
              f"(again to exit at once)", file=sys.stderr, flush=True)
        runner.request_stop(f"stopped by {name}")

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def _execute(plan, run, opts, json_out: bool, quiet: bool, resume: bool, store) -> int:
    from ssltui.cli.progress import make_progress
    from ssltui.engine.runner import Runner

    progress = make_progress(quiet)
    runner = Runner(plan, run, opts, progress, cache_dir=store.cache_dir())
    _install_signal_handlers(runner)
    code = ExitCode.OK
    try:
        runner.execute(resume=resume)
    except SsltuiError as exc:
        code = exc.exit_code
        if progress is not None:
            progress.close()
            progress = None
        _err(exc.message)
    finally:
        if progress is not None:
            progress.close()
    summary = runner.summary or {}
    results = summary.get("results", [])
    if json_out:
        print(json.dumps({
            # No summary: refused before starting (e.g. the run is locked by another process).
            "run_id": run.id, "status": summary.get("status", "refused"), "group": summary.get("group"),
            "error": summary.get("error"), "timings": summary.get("timings", {}),
            "results": [{k: r[k] for k in ("method", "evaluation", "labels", "seed", "test_acc")}
                        | {"val_acc": r.get("val_acc")} for r in results],
        }), flush=True)
    elif results:
        from ssltui.cli.render import results_table

        _stdout_console().print(results_table(results, title=f"run {run.id} ({summary.get('status')})"))
    return int(code)


def _dry_run(plan, opts, json_out: bool) -> int:
    """Print what `run` would do (every phase, and the resolved configuration) and train nothing."""
    import importlib.util

    from ssltui.engine.runner import plan_to_toml

    for part in plan.parts:
        if part.method != "supervised" and importlib.util.find_spec(f"ssltui.engine.methods.{part.method}") is None:
            raise ConfigError(f"method {part.method!r} has no pretraining implementation")
    phases = []
    for pi, part in enumerate(plan.parts):
        for seed in part.seeds:
            if part.method != "supervised":
                phases.append(f"{part.method}/pretrain/seed{seed} ({part.pretrain.epochs} epochs)")
            for frac in part.labels:
                for ev in part.evaluation:
                    epochs = getattr(part, ev).epochs if ev in ("supervised", "semi", "linear") else 0
                    phases.append(f"p{pi}-{part.method}/{ev}/labels{frac:g}/seed{seed}"
                                  + (f" ({epochs} epochs)" if epochs else ""))
    config = plan_to_toml(plan, opts)
    if json_out:
        print(json.dumps({"dry_run": True, "preset": plan.preset, "data": opts.data, "device": opts.device,
                          "phases": phases, "config": config}), flush=True)
    else:
        print(config, end="")
        print("# phases, in order:\n" + "\n".join(f"#   {p}" for p in phases), flush=True)
    return int(ExitCode.OK)


@app.command()
def run(
    preset: str = typer.Option("supervised", "--preset", "-p", help="preset name or .toml path (see `ssltui presets`)"),
    method: Optional[str] = typer.Option(None, "--method", help="supervised | simclr | rotnet"),
    evaluation: Optional[str] = typer.Option(None, "--evaluation", help="comma list of supervised, linear, semi, knn"),
    labels: Optional[str] = typer.Option(None, "--labels", help="label fractions, e.g. 0.01,0.1"),
    seeds: Optional[str] = typer.Option(None, "--seeds", help="seeds, e.g. 0,1,2"),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda"),
    data: str = typer.Option("cifar10", "--data", help="cifar10 | synthetic | folder:PATH (folder or .tar.gz)"),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="download/cache dir (default: $SSLTUI_DATA_DIR or the user cache dir)"),
    sets: list[str] = typer.Option([], "--set", help="override a hyperparameter: key=value (repeatable)"),
    runs_dir: Optional[Path] = RUNS_DIR_OPT,
    group: Optional[str] = typer.Option(None, "--group", help="group name for `ssltui table` (default: the run id)"),
    run_id: Optional[str] = typer.Option(None, "--run-id", help="use this (new or empty) run folder name"),
    resume: bool = typer.Option(False, "--resume", help="continue the newest unfinished run of the same configuration"),
    no_cache: bool = typer.Option(False, "--no-cache", help="do not reuse pretrained encoders from earlier runs"),
    json_out: bool = typer.Option(False, "--json", help="print one JSON object as stdout's last line"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress on stderr"),
    dry_run: bool = typer.Option(False, "--dry-run", help="check everything, print the resolved plan, train nothing"),
) -> int:
    """Train and evaluate: pretraining, then each evaluation at each label fraction and seed."""
    from ssltui.engine.presets import resolve
    from ssltui.engine.runner import RunOptions, plan_to_toml
    from ssltui.engine.data.sources import parse_source
    from ssltui.engine.store import RunDir

    plan = resolve(preset, method=method,
                   evaluation=_parse_list(evaluation, str, "--evaluation"),
                   labels=_parse_list(labels, float, "--labels"),
                   seeds=_parse_list(seeds, int, "--seeds"), sets=sets)
    try:
        kind, where = parse_source(data)
    except SsltuiError as exc:
        raise ConfigError(exc.message) from None
    if device not in ("auto", "cpu", "cuda") and not device.startswith("cuda:"):
        raise ConfigError(f"--device: {device!r} is not one of auto, cpu, cuda, cuda:N")
    if run_id is not None and (not re.fullmatch(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,99}", run_id) or run_id == "cache"):
        raise ConfigError(f"--run-id {run_id!r}: use a plain folder name (letters, digits, - _ ., at most 100)")
    if kind == "folder" and not Path(where).expanduser().exists():
        from ssltui.engine.errors import DataError

        raise DataError(f"{where}: no such file or folder")  # before a run folder is made
    opts = RunOptions(data=data, data_dir=data_dir, device=device, group=group, use_cache=not no_cache)
    if dry_run:
        return _dry_run(plan, opts, json_out)
    store = _store(runs_dir)
    if resume:
        wanted = plan_to_toml(plan, opts)
        for info in store.list():
            if info.status in ("interrupted", "failed", "stale", "running") and \
                    RunDir(info.path).config_path.is_file() and \
                    RunDir(info.path).config_path.read_text() == wanted:
                if info.status == "running":
                    raise ConfigError(f"run {info.id} is still running in another process")
                return _execute(plan, RunDir(info.path), opts, json_out, quiet, True, store)
        print("ssltui: no unfinished run of this configuration; starting a new one", file=sys.stderr)
    if run_id:
        store.root.mkdir(parents=True, exist_ok=True)
        path = store.root / run_id
        if path.exists() and (path / "config.toml").exists():
            raise ConfigError(f"--run-id {run_id!r}: that run already exists")
        path.mkdir(exist_ok=True)
        rd = RunDir(path)
    else:
        rd = store.create(plan.preset)
    return _execute(plan, rd, opts, json_out, quiet, False, store)


@app.command()
def resume(
    run_id: str = typer.Argument(..., help="run id (or a unique prefix/suffix)"),
    runs_dir: Optional[Path] = RUNS_DIR_OPT,
    json_out: bool = typer.Option(False, "--json"),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> int:
    """Continue a failed, interrupted or killed run from its last checkpoint."""
    from ssltui.engine.runner import plan_from_toml

    store = _store(runs_dir)
    rd = store.get(run_id)
    info = rd.info()
    if info.status == "completed":
        raise ConfigError(f"run {rd.id} is already completed")
    if info.status == "running":
        raise ConfigError(f"run {rd.id} is being trained by another process")
    plan, opts = plan_from_toml(rd)
    return _execute(plan, rd, opts, json_out, quiet, True, store)


# ---------------------------------------------------------------- listings

@app.command()
def presets(json_out: bool = typer.Option(False, "--json", help="JSON list")) -> None:
    """List presets: name, method, evaluation, description."""
    from ssltui.engine.presets import list_presets

    items = list_presets()
    if json_out:
        print(json.dumps([{"name": i.name, "method": i.method, "evaluation": i.evaluation,
                           "kind": i.kind, "description": i.description, "path": str(i.path)} for i in items]))
        return
    from rich.table import Table

    table = Table()
    for col in ("name", "method", "evaluation", "description"):
        table.add_column(col, no_wrap=col != "description", ratio=1 if col == "description" else None)
    for i in items:
        table.add_row(i.name, i.method, i.evaluation, i.description)
    _stdout_console().print(table)


@app.command()
def runs(runs_dir: Optional[Path] = RUNS_DIR_OPT, json_out: bool = typer.Option(False, "--json")) -> None:
    """List saved runs, running ones first."""
    store = _store(runs_dir)
    infos = store.list()
    if json_out:
        print(json.dumps([i.to_json() for i in infos]))
        return
    if not infos:
        print(f"no runs in {store.root}")
        return
    from ssltui.cli.render import runs_table

    _stdout_console().print(runs_table(infos))


@app.command()
def maps(run_id: str = typer.Argument(..., help="run id (or a unique prefix/suffix)"),
         image: Optional[int] = typer.Option(None, "--image", help="only this image (0-based)"),
         ascii_only: bool = typer.Option(False, "--ascii", help="plain ASCII shading even on a colour terminal"),
         runs_dir: Optional[Path] = RUNS_DIR_OPT) -> None:
    """Feature-map thumbnails of a finished run: 4 channels at the end of each stage, per model."""
    from ssltui.cli.maps import print_maps

    print_maps(_store(runs_dir), run_id, image, ascii_only)


@app.command()
def show(run_id: str = typer.Argument(...), runs_dir: Optional[Path] = RUNS_DIR_OPT,
         json_out: bool = typer.Option(False, "--json")) -> None:
    """A run's configuration, results and curves."""
    store = _store(runs_dir)
    rd = store.get(run_id)
    info = rd.info()
    metrics = rd.read_metrics()
    config_text = rd.config_path.read_text() if rd.config_path.exists() else ""
    # Such as the SimCLR guard rail's "the encoder is barely training".
    warnings = [m["message"] for m in metrics if m.get("event") == "log" and m.get("level") == "warning"
                and isinstance(m.get("message"), str)]
    if json_out:
        try:
            summary = rd.read_summary()
        except (OSError, ValueError):
            summary = None
        epochs = [m for m in metrics if m.get("event") == "epoch"]
        print(json.dumps({"run": info.to_json(), "summary": summary, "config": config_text, "epochs": epochs,
                          "warnings": warnings}))
        return
    from ssltui.cli.render import curves_plot, results_table

    console = _stdout_console()
    console.print(f"[bold]run {info.id}[/bold]  status: {info.status}  preset: {info.preset}")
    if info.error:
        console.print(f"error: {info.error}", markup=False)
    console.print(config_text, markup=False, highlight=False)
    if info.results:
        console.print(results_table(info.results))
    for message in warnings:
        console.print(f"warning: {message}", markup=False, style="yellow")
    print(curves_plot(metrics))


@app.command()
def table(group: Optional[str] = typer.Argument(None, help="group or run id (default: the newest run's group)"),
          fmt: str = typer.Option("rich", "--format", help="rich | markdown | csv | json"),
          json_out: bool = typer.Option(False, "--json", help="same as --format json"),
          runs_dir: Optional[Path] = RUNS_DIR_OPT) -> None:
    """Table 1 of the paper beside ours: paper, ours (mean ± std over seeds), difference."""
    from ssltui.cli.table import table_command

    out = table_command(_store(runs_dir), group, "json" if json_out else fmt)
    if out is not None:
        print(out, end="" if out.endswith("\n") else "\n")


# ---------------------------------------------------------------- entry point

def _usage_errors() -> tuple[type[BaseException], ...]:
    """Usage-error classes: typer >= 0.20 vendors click (TyperException), older typer raises click's."""
    found = [getattr(typer, "TyperException", None)]
    try:
        import click

        found.append(click.exceptions.ClickException)
    except ImportError:
        pass
    return tuple(c for c in found if c is not None)


_USAGE_ERRORS = _usage_errors()


def entry() -> None:
    """Console-script entry: every error is one line and an exit code, never a traceback."""
    try:
        rv = app(prog_name="ssltui", standalone_mode=False)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        sys.exit(ExitCode.INTERRUPTED)
    except _USAGE_ERRORS as exc:  # usage errors: bad option, missing argument
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        _err(" ".join(message.split()))
        sys.exit(ExitCode.USAGE)
    except SsltuiError as exc:
        _err(exc.message)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        _err("interrupted")
        sys.exit(ExitCode.INTERRUPTED)
    except BrokenPipeError:
        sys.exit(0)
    except Exception as exc:  # noqa: BLE001 - a bug of ours still ends in one line, not a traceback
        if os.environ.get("SSLTUI_DEBUG"):
            raise
        first = first_line(exc, "")[:200]
        _err(f"internal error: {type(exc).__name__}: {first} (SSLTUI_DEBUG=1 shows the traceback)")
        sys.exit(ExitCode.FAILED)
    sys.exit(rv if isinstance(rv, int) else 0)
