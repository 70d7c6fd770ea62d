"""The headless face: `ssltui run | resume | presets | runs | show | table | maps | sweep`, and
`ssltui` alone for the TUI.

Module-level imports stay light (no torch): `ssltui --help`, `presets` and `runs` answer fast.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from typing import Optional

import typer

from ssltui.cli import jsonout
from ssltui.cli import options as opt
from ssltui.cli.jsonout import emit, emit_error
from ssltui.cli.maps import print_maps
from ssltui.cli.progress import make_progress
from ssltui.cli.render import curves_report
from ssltui.cli.sweep import sweep_app
from ssltui.cli.table import table_command
from ssltui.core import registry
from ssltui.core.config import parse_list, run_options
from ssltui.core.datasource import known_class_counts, parse_source
from ssltui.core.errors import ConfigError, ExitCode, RunInterrupted, SsltuiError, first_line
from ssltui.core.events import Epoch, stamp, warning_messages
from ssltui.core.graph import build_graph, phase_lengths
from ssltui.core.notes import RunNotes
from ssltui.core.paths import data_dir
from ssltui.core.paths import runs_dir as default_runs_dir
from ssltui.core.plan import find_to_resume, plan_from_toml, plan_to_toml, read_plan_file
from ssltui.core.presets import DEFAULT_PRESET, list_presets, resolve_typed
from ssltui.core.stop import StopToken, on_stop_signals
from ssltui.core.store import RunStore
from ssltui.view.tables import presets_table, results_table, run_header, runs_lines, runs_table

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


def _warn(message: str) -> None:
    print(f"ssltui: warning: {message}", file=sys.stderr, flush=True)


def _stdout_console():
    from rich.console import Console

    return Console(highlight=False)


def _store(runs_dir: Optional[Path]):
    return RunStore(default_runs_dir(runs_dir))


@app.callback(invoke_without_command=True)
def main(ctx: typer.Context) -> None:
    """Without a command, open the terminal app."""
    if ctx.invoked_subcommand is None:
        try:
            from ssltui.tui.app import run_tui
        except ImportError:
            typer.echo(ctx.get_help())
            raise typer.Exit(0) from None
        _store(None).run_entries()  # a runs dir that cannot be listed: one line, before the app takes the screen
        raise typer.Exit(run_tui())


# ---------------------------------------------------------------- run / resume


def _stop_on_signals() -> StopToken:
    """The run's stop token, asked by SIGINT/SIGTERM (a second one exits at once): the data load
    polls it, then the runner, its loop and its scheduler share it."""
    stop = StopToken()
    on_stop_signals(stop, "finishing the current step and saving a checkpoint", "the last checkpoint is whole")
    return stop


def _load_data(plan, opts, stop: StopToken, quiet: bool):
    """Decode (or read the cache of) the data before any run folder exists: a bad --data leaves
    none behind, and a SIGTERM during a long decode ends it (exit 130)."""
    from ssltui.trainer.data.sources import load_source

    def log(message: str) -> None:
        if not quiet:
            print(stamp(f"info: {message}"), file=sys.stderr, flush=True)

    first = plan.data_settings
    return load_source(
        opts.data,
        data_dir(opts.data_dir),
        first.synthetic_train_per_class,
        first.synthetic_test_per_class,
        log=log,
        should_stop=stop.poll,
    )


def _execute(
    plan, run, opts, json_out: bool, quiet: bool, resume: bool, store, raw=None, stop: StopToken | None = None
) -> int:

    # The id to resume or show the run by, from the first second (before torch is imported), where
    # progress bars would keep the first event's line from view; a pipe gets that line, and an
    # error stays the one line on stderr that scripts read.
    if not quiet and sys.stderr.isatty():
        print(f"ssltui: {'resuming' if resume else 'run'} {run.id} in {run.path}", file=sys.stderr, flush=True)
    from ssltui.trainer.runner import Runner

    progress = make_progress(quiet)
    runner = Runner(
        plan,
        run,
        opts,
        progress,
        cache_dir=store.cache_dir(),
        raw=raw,
        stop=stop if stop is not None else _stop_on_signals(),
    )
    code = ExitCode.OK
    try:
        runner.execute(resume=resume)
    except SsltuiError as exc:
        code = exc.exit_code
        if progress is not None:
            progress.close()
            progress = None
        if isinstance(exc, RunInterrupted):  # the user's own stop is no error
            print(
                f"ssltui: interrupted: {exc.message}\nssltui: continue with: ssltui resume {run.id}",
                file=sys.stderr,
                flush=True,
            )
        else:
            _err(exc.message)
    finally:
        if progress is not None:
            progress.close()
    summary = runner.summary
    if json_out:
        emit(
            {
                # No summary run id: refused before starting (e.g. the run is locked by another process).
                "run_id": run.id,
                "status": summary.status if summary.run_id else "refused",
                "group": summary.group or None,
                "error": summary.error,
                "timings": summary.timings,
                "results": [
                    r.model_dump(include={"method", "evaluation", "labels", "seed", "test_acc", "val_acc", "probe"})
                    for r in summary.results
                ],
            }
        )
    elif summary.results:
        _stdout_console().print(
            results_table([r.model_dump() for r in summary.results], title=f"run {run.id} ({summary.status})")
        )
    return int(code)


def _dry_run(plan, opts, json_out: bool, counts) -> int:
    """Print what `run` would do (every phase with the epochs and steps it will train, and the
    resolved configuration) and train nothing. `counts`: training images a class (None: unknown)."""

    for part in plan.parts:
        if (
            registry.method(part.method).pretrains
            and importlib.util.find_spec(f"ssltui.trainer.methods.{part.method}") is None
        ):
            raise ConfigError(f"method {part.method!r} has no pretraining implementation")
    graph = build_graph(plan)
    lengths = phase_lengths(plan, graph, counts) if counts else {}

    def describe(name: str) -> str:
        node = graph.node(name)
        if name not in lengths:
            return node.describe()
        length, section = lengths[name]
        decided = f"{section}.{length.decided_by}" + (
            f"={plan.parts[node.part].settings_of(section).min_steps}" if length.decided_by == "min_steps" else ""
        )
        return (
            f"{name.split('#')[0]} ({length.epochs} epochs x {length.steps_per_epoch} steps = {length.steps} "
            f"steps, batch {length.batch_size}; decided by {decided})"
        )

    def entry(n) -> dict:
        length, section = lengths.get(n.name, (None, None))
        return {
            "node": n.name,
            "phase": n.name.split("#")[0],
            "kind": n.kind,
            "epochs": length.epochs if length else n.epochs,
            "steps_per_epoch": length.steps_per_epoch if length else None,
            "steps": length.steps if length else None,
            "decided_by": f"{section}.{length.decided_by}" if length else None,
        }

    config = plan_to_toml(plan, opts)
    if json_out:
        emit(
            {
                "dry_run": True,
                "preset": plan.preset,
                "data": opts.data,
                "device": opts.device,
                "devices": opts.device_list(),
                "phases": [describe(n.name) for n in graph.phases],
                "plan": [entry(n) for n in graph.phases],
                "config": config,
                "graph": [{"node": n.name, "kind": n.kind, "needs": list(n.needs)} for n in graph.nodes],
            }
        )
    else:
        print(config, end="")
        after = {
            n.name: " after " + ", ".join(graph.node(d).describe().split(" (")[0] for d in n.needs) if n.needs else ""
            for n in graph.phases
        }
        print(
            '# phases, in order (one marked "after X" waits for X; the others can start at once):\n'
            + "\n".join(f"#   {describe(n.name)}{after[n.name]}" for n in graph.phases),
            flush=True,
        )
    return int(ExitCode.OK)


@app.command()
def run(
    preset: opt.Preset = None,
    config: Optional[Path] = typer.Option(
        None,
        "--config",
        help="a resolved run configuration (a run's config.toml, or the file the "
        "app writes): trained as it is, no preset or option resolved again",
    ),
    method: opt.Method = None,
    evaluation: opt.Evaluation = None,
    labels: opt.Labels = None,
    seeds: opt.Seeds = None,
    device: opt.Device = "auto",
    devices: Optional[str] = typer.Option(
        None,
        "--devices",
        help="phases side by side on these devices, e.g. cuda:0,cuda:1 "
        "(one worker process each unless runtime.workers says more)",
    ),
    data: opt.Data = None,
    data_dir: opt.DataDir = None,
    sets: opt.Sets = [],  # noqa: B006 - typer's default for a repeatable option, never mutated
    runs_dir: opt.RunsDir = None,
    group: Optional[str] = typer.Option(None, "--group", help="group name for `ssltui table` (default: the run id)"),
    run_id: Optional[str] = typer.Option(None, "--run-id", help="use this (new or empty) run folder name"),
    resume: bool = typer.Option(False, "--resume", help="continue the newest unfinished run of the same configuration"),
    no_cache: opt.NoCache = False,
    json_out: opt.JsonOut = False,
    quiet: opt.Quiet = False,
    dry_run: bool = typer.Option(False, "--dry-run", help="check everything, print the resolved plan, train nothing"),
) -> int:
    """Train and evaluate: pretraining, then each evaluation at each label fraction and seed."""

    if config is not None:
        given = [
            flag
            for flag, value in (
                ("--preset", preset),
                ("--method", method),
                ("--evaluation", evaluation),
                ("--labels", labels),
                ("--seeds", seeds),
                ("--set", sets),
                ("--data", data),
                ("--devices", devices),
                ("--data-dir", data_dir),
                ("--group", group),
                ("--no-cache", no_cache),
            )
            if value
        ] + (["--device"] if device != "auto" else [])
        if given:
            raise ConfigError(f"--config holds the whole configuration; drop {', '.join(given)} (or edit the file)")
        plan, file_opts = read_plan_file(config)
        data, data_dir, device, group = file_opts.data, file_opts.data_dir, file_opts.device, file_opts.group
        devices = ",".join(file_opts.devices) or None
        no_cache = not file_opts.use_cache
    else:
        plan = resolve_typed(preset or DEFAULT_PRESET, method, evaluation, labels, seeds, sets)
    data = data if data is not None else plan.data or "cifar10"
    try:
        kind, where = parse_source(data)
    except SsltuiError as exc:
        raise ConfigError(exc.message) from None
    device_list = parse_list(devices, str, "--devices") or []
    if device_list and device != "auto":
        raise ConfigError("--device and --devices: give one of them")
    opts = run_options(
        data=data, data_dir=data_dir, device=device, devices=device_list, group=group, use_cache=not no_cache
    )
    if run_id is not None:
        RunStore.check_new_id(run_id)
    if kind == "folder":
        from ssltui.trainer.data.folder import stat_source

        stat_source(Path(where).expanduser())  # missing, or a FIFO/device: exit 3, even with --dry-run
    if dry_run:
        counts = known_class_counts(kind, plan.data_settings.synthetic_train_per_class)
        if counts is None:  # a folder: its size is known once it is read (cached for the run)
            raw = _load_data(plan, opts, StopToken(), quiet)
            counts = tuple(int((raw.train_y == c).sum()) for c in range(raw.num_classes))
        return _dry_run(plan, opts, json_out, counts)
    store = _store(runs_dir)
    store.check_writable()  # before the data loads: a read-only runs dir fails in a second, not after a decode
    stop = _stop_on_signals()
    # A folder made already by another launcher records a data error in its summary, so the runner
    # loads; otherwise (and always with --config, as the app launches) load first, so a data error
    # writes nothing into the run folder.
    premade = run_id is not None and (store.root / run_id).is_dir() and config is None
    raw = None if premade else _load_data(plan, opts, stop, quiet)
    if raw is not None:
        from ssltui.trainer.twoview import check_fits_data

        check_fits_data(plan, raw)  # e.g. a queue larger than the data: refused before a run folder exists
    if resume:
        found = find_to_resume(store, plan, opts)
        if found is not None:
            return _execute(plan, found, opts, json_out, quiet, True, store, raw, stop)
        print("ssltui: no unfinished run of this configuration; starting a new one", file=sys.stderr)
    rd = store.claim(run_id) if run_id else store.create(plan.preset)
    return _execute(plan, rd, opts, json_out, quiet, False, store, raw, stop)


@app.command()
def resume(
    run_id: str = typer.Argument(..., help="run id (or a unique prefix/suffix)"),
    runs_dir: opt.RunsDir = None,
    json_out: bool = typer.Option(False, "--json"),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> int:
    """Continue a failed, interrupted or killed run from its last checkpoint."""

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

    items = list_presets(warn=_warn)
    if json_out:
        emit(
            [
                {
                    "name": i.name,
                    "method": i.method,
                    "evaluation": i.evaluation,
                    "kind": i.kind,
                    "description": i.description,
                    "path": str(i.path),
                }
                for i in items
            ]
        )
        return

    _stdout_console().print(presets_table(items))


NEWEST_RUNS = 50  # rows of `ssltui runs` on a terminal without --all


@app.command()
def runs(
    runs_dir: opt.RunsDir = None,
    json_out: bool = typer.Option(False, "--json"),
    all_runs: bool = typer.Option(False, "--all", help=f"every run (a terminal shows the newest {NEWEST_RUNS})"),
) -> None:
    """List saved runs, running ones first, then newest first."""
    store = _store(runs_dir)
    if json_out:
        emit([i.to_json() for i in store.list()])
        return
    console = _stdout_console()
    # A pipe or a file gets every run as plain lines (for grep); a terminal a table of the newest.
    infos, total = store.listing(None if all_runs or not console.is_terminal else NEWEST_RUNS)
    if not total:
        print(f"no runs in {store.root}")
        return
    if not console.is_terminal:
        for line in runs_lines(infos):
            print(line)
        return
    from rich.text import Text

    infos = list(infos)
    console.print(runs_table(infos, console.width))
    if total > len(infos):
        console.print(Text(f"… {total - len(infos):,} more (ssltui runs --all)", style="dim"))


@app.command()
def note(
    run_id: str = typer.Argument(..., help="run id (or a unique prefix/suffix)"),
    text: Optional[str] = typer.Argument(None, help="the note (omit it to print the note; '' clears it)"),
    runs_dir: opt.RunsDir = None,
) -> None:
    """Read or write a run's note (shown by `ssltui show` and the app)."""
    rd = _store(runs_dir).get(run_id)
    notes = rd.read_notes()
    if text is None:
        print(notes.note)
        return
    rd.write_notes(RunNotes.checked(note=text, tags=notes.tags))


@app.command()
def tag(
    run_id: str = typer.Argument(..., help="run id (or a unique prefix/suffix)"),
    tags: list[str] = typer.Argument(None, help="tags to add (letters, digits, _.:+-)"),
    remove: bool = typer.Option(False, "--remove", help="remove these tags instead"),
    runs_dir: opt.RunsDir = None,
) -> None:
    """Add or remove a run's tags (listed by `ssltui runs`; the app's filter reads tag:NAME)."""
    rd = _store(runs_dir).get(run_id)
    notes = rd.read_notes()
    given = list(tags or [])
    if not given:
        print(" ".join(notes.tags))
        return
    kept = (
        [t for t in notes.tags if t not in given]
        if remove
        else [*notes.tags, *(t for t in given if t not in notes.tags)]
    )
    rd.write_notes(RunNotes.checked(note=notes.note, tags=kept))


@app.command()
def maps(
    run_id: str = typer.Argument(..., help="run id (or a unique prefix/suffix)"),
    image: Optional[int] = typer.Option(None, "--image", help="only this image (0-based)"),
    ascii_only: bool = typer.Option(False, "--ascii", help="plain ASCII shading even on a colour terminal"),
    png: Optional[Path] = typer.Option(None, "--png", help="write them as PNG images into this folder instead"),
    runs_dir: opt.RunsDir = None,
) -> None:
    """Feature-map thumbnails of a finished run: 4 channels at the end of each stage, per model."""

    print_maps(_store(runs_dir), run_id, image, ascii_only, png)


@app.command()
def show(
    run_id: str = typer.Argument(...),
    runs_dir: opt.RunsDir = None,
    config: bool = typer.Option(False, "--config", help="print only the run's configuration (config.toml, as TOML)"),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """A run's results, warnings and curves; its configuration with --config."""

    rd = _store(runs_dir).get(run_id)
    if config:  # the file as written: valid TOML for a file or `--preset`, never wrapped to the terminal
        sys.stdout.write(rd.read_config_text())
        sys.stdout.flush()
        return
    info = rd.info()
    events = rd.read_events()
    epochs = [e for e in events if isinstance(e, Epoch)]
    warnings = warning_messages(events)
    try:
        config_text, config_error = rd.read_config_text(), None
    except ConfigError as exc:  # a damaged config.toml hides nothing else of the run
        config_text, config_error = None, exc.message
    if json_out:
        emit(
            {
                "run": info.to_json(),
                "summary": info.summary.model_dump(mode="json") if info.summary else None,
                "config": config_text,
                "config_error": config_error,
                "epochs": [e.to_json() for e in epochs],
                "warnings": warnings,
            }
        )
    else:
        _print_run(info, config_error, warnings, epochs)
    if config_error:  # shown above with the rest; still a damaged file, as every command reports one
        raise ConfigError(config_error)


def _print_run(info, config_error: str | None, warnings: list[str], epochs: list) -> None:
    """`show`'s text: header, results, warnings, curves, and where the configuration is (or why
    it cannot be shown)."""
    from rich.text import Text

    console = _stdout_console()
    console.print(run_header(info))
    if info.results:
        console.print(results_table(info.results))
    for message in warnings:
        console.print(Text(f"warning: {message}", style="yellow"), soft_wrap=True)
    if config_error:
        console.print(Text(f"config: {config_error}", style="yellow"), soft_wrap=True)
    else:
        console.print(Text(f"configuration: ssltui show {info.id} --config", style="dim"), soft_wrap=True)
    color = console.color_system is not None  # a pipe or NO_COLOR: plain text, no escape codes
    for part in curves_report(epochs, console.width, color):
        if isinstance(part, str):
            console.print(Text.from_ansi(part) if color else Text(part), crop=False, soft_wrap=True)
        else:
            console.print(part)


@app.command()
def table(
    group: Optional[str] = typer.Argument(None, help="group or run id (default: the newest run's group)"),
    fmt: str = typer.Option("rich", "--format", help="rich | markdown | csv | json"),
    json_out: bool = typer.Option(False, "--json", help="same as --format json"),
    runs_dir: opt.RunsDir = None,
) -> None:
    """Table 1 of the paper beside ours: paper, ours (mean ± std over seeds), difference."""

    out = table_command(_store(runs_dir), group, "json" if json_out else fmt)
    if out is not None:
        print(out, end="" if out.endswith("\n") else "\n")


app.add_typer(sweep_app, name="sweep")  # after the commands above: listed last in --help


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
    jsonout.reset()
    try:
        rv = app(prog_name="ssltui", standalone_mode=False)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        sys.exit(ExitCode.INTERRUPTED)
    except _USAGE_ERRORS as exc:  # usage errors: bad option, missing argument
        message = " ".join((exc.format_message() if hasattr(exc, "format_message") else str(exc)).split())
        _err(message)
        emit_error(message, ExitCode.USAGE)
        sys.exit(ExitCode.USAGE)
    except SsltuiError as exc:
        _err(exc.message)
        emit_error(exc.message, exc.exit_code)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        _err("interrupted")
        emit_error("interrupted", ExitCode.INTERRUPTED)
        sys.exit(ExitCode.INTERRUPTED)
    except BrokenPipeError:
        sys.exit(0)
    except Exception as exc:  # noqa: BLE001 - a bug of ours still ends in one line, not a traceback
        if os.environ.get("SSLTUI_DEBUG"):
            raise
        first = first_line(exc, "")[:200]
        message = f"internal error: {type(exc).__name__}: {first} (SSLTUI_DEBUG=1 shows the traceback)"
        _err(message)
        emit_error(message, ExitCode.FAILED)
        sys.exit(ExitCode.FAILED)
    sys.exit(rv if isinstance(rv, int) else 0)
