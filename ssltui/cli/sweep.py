"""`ssltui sweep ...`: run a sweep's trials, `sweep show NAME`, `sweep list`.

Importing this module costs typer only; Optuna and torch load when a sweep command runs.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from ssltui.cli import options as opt
from ssltui.cli.jsonout import emit
from ssltui.cli.progress import make_progress
from ssltui.core.config import check_device
from ssltui.core.datasource import parse_source
from ssltui.core.errors import ConfigError, ExitCode, SsltuiError
from ssltui.core.paths import runs_dir as default_runs_dir
from ssltui.core.presets import DEFAULT_PRESET
from ssltui.core.stop import on_stop_signals
from ssltui.core.store import RunStore
from ssltui.core.sweep.listing import list_sqlite, storage_url, unfinished_sqlite
from ssltui.core.sweep.space import check_name, define_sweep, parse_params
from ssltui.view.sweeps import chosen, effect_chart, importances_text, sweep_header, sweeps_table, trials_table

sweep_app = typer.Typer(
    help="Search hyperparameters on the validation split (Optuna): run trials, "
    "`sweep show NAME`, `sweep list`, `sweep rm NAME`.",
    no_args_is_help=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

STORAGE_OPT = typer.Option(
    None,
    "--storage",
    help="Optuna storage URL (default: $SSLTUI_SWEEP_STORAGE or "
    "<runs dir>/sweeps/optuna.db); postgresql://... to share a sweep",
)


def _store(runs_dir: Optional[Path]):
    return RunStore(default_runs_dir(runs_dir))


def _console():
    from rich.console import Console

    return Console(highlight=False)


@sweep_app.callback(invoke_without_command=True)
def sweep(
    ctx: typer.Context,
    params: list[str] = typer.Option([], "--param", help="KEY=SPEC: log:LO:HI, int:LO:HI, LO:HI or a,b,c (repeatable)"),
    preset: opt.Preset = None,
    method: opt.Method = None,
    evaluation: opt.Evaluation = None,
    labels: opt.Labels = None,
    seeds: opt.Seeds = None,
    sets: opt.Sets = [],  # noqa: B006 - typer's default for a repeatable option, never mutated
    sampler: Optional[str] = typer.Option(
        None, "--sampler", help="grid | random | tpe (default: grid when every --param lists values, else tpe)"
    ),
    trials: Optional[int] = typer.Option(None, "--trials", min=1, help="trials in all (random, tpe; default 20)"),
    metric: str = typer.Option("val_acc", "--metric", help="val_acc | knn_acc, on the validation split"),
    prune: bool = typer.Option(False, "--prune", help="stop trials below the median of earlier trials"),
    prune_startup: int = typer.Option(3, "--prune-startup", min=0, help="complete trials before any is pruned"),
    prune_warmup: int = typer.Option(1, "--prune-warmup", min=0, help="epochs of each phase never pruned"),
    sampler_seed: Optional[int] = typer.Option(None, "--sampler-seed", help="seed of the sampler (one worker)"),
    name: Optional[str] = typer.Option(
        None, "--name", help="sweep name (default: preset and a hash of the definition); --name alone joins a sweep"
    ),
    storage: Optional[str] = STORAGE_OPT,
    device: opt.Device = "auto",
    data: opt.Data = None,
    data_dir: opt.DataDir = None,
    runs_dir: opt.RunsDir = None,
    no_cache: opt.NoCache = False,
    json_out: opt.JsonOut = False,
    quiet: opt.Quiet = False,
) -> int:
    """Run trials of a sweep until it has them all: each trial is an ordinary run (group = the
    sweep's name). Several workers (`--name N --storage postgresql://...`) share one sweep."""
    if ctx.invoked_subcommand is not None:
        return 0

    check_device(device)
    if data is not None:
        _check_data(data)
    specs = parse_params(params)  # a bad --param exits 2 before Optuna or torch loads
    store = _store(runs_dir)
    store.check_writable()  # the sweep storage and every trial's run folder go there
    if specs:
        defn = define_sweep(
            preset or DEFAULT_PRESET,
            specs,
            method=method,
            evaluation=evaluation,
            labels=labels,
            seeds=seeds,
            sets=sets,
            sampler=sampler,
            trials=trials,
            metric=metric,
            prune=prune,
            prune_startup=prune_startup,
            prune_warmup=prune_warmup,
            sampler_seed=sampler_seed,
            data=data,
        )
        name = check_name(name or defn.default_name())
    else:
        given = [
            opt
            for opt, v in (
                ("--preset", preset),
                ("--method", method),
                ("--evaluation", evaluation),
                ("--labels", labels),
                ("--seeds", seeds),
                ("--set", sets),
                ("--sampler", sampler),
                ("--prune", prune),
            )
            if v
        ]
        if name is None:
            raise ConfigError("--param KEY=SPEC starts a sweep; --name NAME continues one (see `ssltui sweep list`)")
        if given:
            raise ConfigError(
                f"{given[0]} defines a new sweep and needs --param; give only --name to continue sweep {name!r}"
            )
        defn = None
        check_name(name)
    from ssltui.core.sweep.listing import storage_url
    from ssltui.core.sweep.study import Sweep

    url = storage_url(storage, store.sweeps_dir())
    if defn is not None:
        handle = Sweep.start(url, name, defn)
    else:
        handle = Sweep.open(url, name)
        if trials is not None:
            handle.set_trials(trials)
    return _work(handle, store, data or handle.definition.data, device, data_dir, not no_cache, json_out, quiet)


def _check_data(data: str) -> None:
    """The data source named, and a folder or archive that exists (exit 2 or 3 before any trial)."""

    try:
        kind, where = parse_source(data)
    except SsltuiError as exc:
        raise ConfigError(exc.message) from None
    if kind == "folder":
        from ssltui.trainer.data.folder import stat_source

        stat_source(Path(where).expanduser())


def _work(
    handle, store, data: str, device: str, data_dir: Optional[Path], use_cache: bool, json_out: bool, quiet: bool
) -> int:
    from ssltui.trainer.sweep_worker import SweepWorker

    _check_data(data)

    def say(line: str) -> None:
        if not quiet:
            print(f"ssltui sweep {handle.name}: {line}", file=sys.stderr, flush=True)

    worker = SweepWorker(
        handle,
        store,
        data=data,
        device=device,
        data_dir=str(data_dir) if data_dir else None,
        use_cache=use_cache,
        progress=lambda: make_progress(quiet),
        say=say,
    )
    on_stop_signals(
        worker.stop,
        "finishing the current step, saving a checkpoint, queueing the trial again",
        "the trial is queued again once its heartbeat stops",
    )
    from ssltui.core.sweep.study import shown_url

    say(f"{handle.definition.sampler} over {', '.join(handle.definition.params)}; storage {shown_url(handle.url)}")
    from ssltui.core.sweep.report import SweepReport
    from ssltui.core.sweep.study import STORAGE_ERRORS, storage_lost

    code, error = ExitCode.OK, None
    try:
        worker.run()
    except SsltuiError as exc:
        code, error = exc.exit_code, exc.message
    else:
        failed = [o for o in worker.outcomes if o.state == "failed"]
        if failed and len(failed) == len(worker.outcomes):  # nothing learnt: a failure, not a finished sweep
            code = ExitCode.FAILED
            error = (
                f"every trial failed ({len(failed)} of {len(failed)}); trial {failed[0].number}: "
                f"{failed[0].error or 'no reason recorded'}"
            )
    report, running = None, []
    if worker.lost is None:  # a storage that failed is not asked again
        try:
            report = SweepReport.of(handle)
            # Nothing left to take is not a finished sweep while a trial is still marked running.
            running = handle.running() if code == ExitCode.OK else []
        except STORAGE_ERRORS as exc:
            lost = storage_lost(handle.url, exc)
            code, error = (lost.exit_code, lost.message) if error is None else (code, error)
    if error is not None:
        print(f"ssltui: error: {error}", file=sys.stderr, flush=True)
    for trial in running:
        say(trial.line(handle.name))
    if json_out:
        status = (
            ("incomplete" if running else "completed")
            if code == ExitCode.OK
            else "interrupted"
            if code == ExitCode.INTERRUPTED
            else "failed"
        )
        head = report.to_json() if report is not None else {"sweep": handle.name, "storage": shown_url(handle.url)}
        emit(
            {
                **head,
                "worker": [o.to_json() for o in worker.outcomes],
                "status": status,
                "running": [t.to_json() for t in running],
                "error": error,
            }
        )
    elif report is not None:
        _print_report(report, charts=False)
    return int(code)


def _print_report(report, charts: bool) -> None:
    console = _console()
    console.print(sweep_header(report))
    console.print(trials_table(report))
    console.print(chosen(report))
    if not charts:
        return
    console.print(importances_text(report))
    for param in report.definition.search_space():
        print(effect_chart(report, param, width=min(console.width, 100), color=console.is_terminal))


@sweep_app.command("show")
def show(
    name: str = typer.Argument(..., help="sweep name (see `ssltui sweep list`)"),
    storage: Optional[str] = STORAGE_OPT,
    runs_dir: opt.RunsDir = None,
    json_out: bool = typer.Option(False, "--json", help="one JSON object"),
) -> None:
    """Trials ranked by the validation metric, each parameter's effect, and the test accuracy of
    the chosen trial only."""
    from ssltui.core.sweep.listing import storage_url
    from ssltui.core.sweep.report import open_report

    report = open_report(storage_url(storage, _store(runs_dir).sweeps_dir()), name)
    if json_out:
        emit(report.to_json())
        return
    _print_report(report, charts=True)


@sweep_app.command("list")
def list_(
    storage: Optional[str] = STORAGE_OPT,
    runs_dir: opt.RunsDir = None,
    json_out: bool = typer.Option(False, "--json", help="JSON list"),
) -> None:
    """The sweeps in a storage: name, preset, metric, sampler, trials, best value."""

    url = storage_url(storage, _store(runs_dir).sweeps_dir())
    items, unfinished = list_sqlite(url), unfinished_sqlite(url)  # an SQLite file: the standard library answers
    shown = url
    if items is None or unfinished is None:
        from ssltui.core.sweep.report import list_sweeps
        from ssltui.core.sweep.study import shown_url, unfinished_sweeps

        items, shown, unfinished = list_sweeps(url), shown_url(url), unfinished_sweeps(url)
    for name in unfinished:
        print(
            f"ssltui: warning: sweep {name!r} is being created, or was left half-made (its creation was "
            f"stopped): rerun its command, or `ssltui sweep rm {name}`",
            file=sys.stderr,
            flush=True,
        )
    if json_out:
        emit(items)
        return
    if not items:
        print(f"no sweeps in {shown}")
        return

    _console().print(sweeps_table(items))


@sweep_app.command("rm")
def rm(
    name: str = typer.Argument(..., help="sweep name (see `ssltui sweep list`)"),
    storage: Optional[str] = STORAGE_OPT,
    runs_dir: opt.RunsDir = None,
) -> None:
    """Remove a sweep (or one whose creation was stopped half-way) from its storage. Its trials'
    runs stay in the run store, grouped under its name."""
    from ssltui.core.sweep.listing import storage_url
    from ssltui.core.sweep.study import remove_sweep, shown_url

    try:
        check_name(name)
    except ConfigError as exc:
        raise ConfigError(exc.message.replace("--name ", "NAME ", 1)) from None
    url = storage_url(storage, _store(runs_dir).sweeps_dir())
    trials = remove_sweep(url, name)
    print(f"removed sweep {name} ({trials} trials) from {shown_url(url)}; its runs stay in the run store")
