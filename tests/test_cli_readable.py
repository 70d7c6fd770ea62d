"""The CLI read by a person: readable at 80 columns, no escape codes
in a pipe, the run id from the start, a cancel that is no error and says how to resume."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import sys
import time
import tomllib

import pytest

from ssltui.core.events import parse_event
from tests.tui_fixtures import FAILED_ID, SMOKE_ID, STUDY_ID, make_fixture_runs

ANSI = re.compile(r"\x1b\[")
ANSI_CODE = re.compile(r"\x1b\[[0-9;]*m")


@pytest.fixture
def fixture_runs(runs_dir):
    make_fixture_runs(runs_dir)
    return runs_dir


def test_show_with_a_binary_config_shows_the_rest(run_cli, fixture_runs):
    (fixture_runs / STUDY_ID / "config.toml").write_bytes(bytes(range(256)))
    out = run_cli("show", STUDY_ID, COLUMNS="100")
    assert out.returncode == 2  # a damaged file is still reported as one: one line on stderr
    assert out.stderr.splitlines() == [
        f"ssltui: error: {fixture_runs / STUDY_ID / 'config.toml'}: not UTF-8 text (damaged)"
    ]
    shown = " ".join(out.stdout.split())
    assert f"config: {fixture_runs / STUDY_ID / 'config.toml'}: not UTF-8 text (damaged)" in shown
    assert "82.30" in out.stdout and "loss per epoch" in out.stdout  # the results and curves are still there
    js = json.loads(run_cli("show", STUDY_ID, "--json").stdout)
    assert js["config"] is None and "not UTF-8" in js["config_error"]


def test_smoke_runs_on_synthetic_data_without_a_data_option(run_cli):
    out = run_cli("run", "--preset", "paper-smoke", "--dry-run", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["data"] == "synthetic"
    out = run_cli("run", "--preset", "smoke", "--method", "rotnet", "--data", "cifar10", "--dry-run", "--json")
    assert json.loads(out.stdout)["data"] == "cifar10"  # --data still wins


@pytest.mark.parametrize("columns", [80, 120])
def test_runs_fits_the_terminal_with_whole_ids_and_numbers(run_cli, fixture_runs, columns):
    # TTY_COMPATIBLE: rich writes as to a terminal (a pipe gets plain lines, below)
    out = run_cli("runs", COLUMNS=str(columns), TTY_COMPATIBLE="1")
    assert out.returncode == 0, out.stderr
    lines = ANSI_CODE.sub("", out.stdout).splitlines()
    assert all(len(line) <= columns for line in lines)
    assert lines[0].split()[0] == "status" and "…" not in lines[0]  # headers whole, never 's…'
    for rid in (STUDY_ID, SMOKE_ID, FAILED_ID):
        assert sum(rid in line for line in lines) == 1
    study = next(i for i, line in enumerate(lines) if STUDY_ID in line)
    if columns >= 120:
        assert "1% 66.8 10% 82.1 (+3)" in lines[study] and "01-01 12:00" in lines[study]  # one line a run
    else:  # one label fraction a line, under each other
        assert "1% 66.8" in lines[study] and "10% 82.1" in lines[study + 1] and "01-01 12:00" in lines[study]


LONG_ID = "20260103-120000-simclr-linear-with-a-long-preset-name-a1b2c3"


@pytest.mark.parametrize("columns", [60, 80])
def test_runs_at_80_columns_keeps_status_accuracy_date_and_an_ellipsised_id(run_cli, fixture_runs, columns):
    """A run id too long for the terminal is cut from the left with an ellipsis, keeping its end (a
    unique suffix that `ssltui show` accepts); status, accuracy and start date always stay."""
    shutil.copytree(fixture_runs / STUDY_ID, fixture_runs / LONG_ID)
    out = run_cli("runs", COLUMNS=str(columns), TTY_COMPATIBLE="1")
    assert out.returncode == 0, out.stderr
    lines = ANSI_CODE.sub("", out.stdout).splitlines()
    assert all(len(line) <= columns for line in lines), lines
    header = lines[0].split()
    assert header[0] == "status" and "test" in header and "started" in header and "id" in header
    for line in lines[2:]:
        if not line.split() or not line.split()[0][0].isalpha():
            continue  # the second line of a run's accuracy
        assert line.split()[0] in ("completed", "failed", "interrupted"), line  # whole, never 'interrupt…'
    long_line = next(
        line
        for line in lines
        if line.split() and line.split()[-1].startswith("…") and LONG_ID.endswith(line.split()[-1][1:])
    )
    shown = long_line.split()[-1]
    assert len(shown) > 12
    assert "1% 66.8" in long_line and "01-01 12:00" in long_line  # the copy keeps the study's start
    show = run_cli("show", shown[1:], "--json")
    assert json.loads(show.stdout)["run"]["run_id"] == LONG_ID  # the suffix shown finds the run
    for rid in (STUDY_ID, SMOKE_ID, FAILED_ID):  # at 80 columns the usual ids stay whole, at 60 their end
        assert (
            sum(
                rid in line if columns >= 80 else rid.endswith(line.split()[-1][1:])
                for line in lines
                if line.split() and line.split()[-1] != "id"
            )
            == 1
        ), rid


def test_runs_in_a_pipe_is_one_plain_line_a_run(run_cli, fixture_runs):
    out = run_cli("runs", COLUMNS="80")
    assert out.returncode == 0, out.stderr
    assert not ANSI.search(out.stdout)
    lines = out.stdout.splitlines()
    assert lines[0].split()[:2] == ["status", "method"] and len(lines) == 4
    for rid in (STUDY_ID, SMOKE_ID, FAILED_ID):  # whole ids for grep, one line each
        assert sum(line.endswith(rid) for line in lines) == 1


def _phase(kind="pretrain", method="simclr", **kw):
    return {"phase": f"{method}/{kind}/seed0", "kind": kind, "method": method, "seed": 0, **kw}


def test_the_progress_line_reads_at_80_columns():
    from ssltui.cli.progress import RichProgress

    stream = io.StringIO()
    progress = RichProgress(stream, width=80)
    ph = _phase()
    for e in (
        {"t": 0, "event": "phase_start", **ph, "epochs": 100, "steps_per_epoch": 40},
        {"t": 1, "event": "step", **ph, "epoch": 11, "step": 460, "loss": 5.4821, "lr": 0.3, "images_per_s": 1234.5},
        {
            "t": 2,
            "event": "epoch",
            **ph,
            "epoch": 12,
            "epochs": 100,
            "step": 480,
            "loss": 5.4821,
            "lr": 0.3,
            "images_per_s": 1234.5,
            "knn_acc": 0.31,
        },
    ):
        progress(parse_event(e))
    progress.close()
    line = [ln for ln in stream.getvalue().splitlines() if ln.strip()][-1]
    assert len(line) <= 80
    assert line.startswith("simclr pretrain s0 ") and "12%" in line
    assert "ep 12/100 loss 5.482 kNN 31.0% 1.2k" in line


@pytest.mark.parametrize("seconds_a_step", [0.5, 10.0, 400.0])
def test_the_progress_line_never_cuts_the_eta(seconds_a_step):
    from ssltui.cli.progress import RichProgress
    from ssltui.view.format import duration

    stream = io.StringIO()
    progress = RichProgress(stream, width=80)
    clock = [0.0]
    progress.progress.get_time = lambda: clock[0]
    ph = _phase()
    progress(parse_event({"t": 0, "event": "phase_start", **ph, "epochs": 100, "steps_per_epoch": 100}))
    for step in range(1, 6):
        clock[0] += seconds_a_step
        progress(
            parse_event(
                {
                    "t": clock[0],
                    "event": "step",
                    **ph,
                    "epoch": 0,
                    "step": step,
                    "loss": 5.4821,
                    "lr": 0.3,
                    "images_per_s": 1234.5,
                }
            )
        )
    remaining = progress.progress.tasks[0].time_remaining
    progress.close()
    line = [ln for ln in stream.getvalue().splitlines() if ln.strip()][-1]
    assert len(line) <= 80
    assert f"eta {duration(remaining)} " in line, line  # whole, e.g. 'eta 111:06:40', never 'eta 1:0…'
    assert "ep 1/100" in line


def test_show_in_a_pipe_has_no_escape_codes_and_whole_legends(run_cli, fixture_runs):
    out = run_cli("show", STUDY_ID, COLUMNS="80")
    assert out.returncode == 0, out.stderr
    assert not ANSI.search(out.stdout)
    assert all(len(line) <= 80 for line in out.stdout.splitlines())
    # every phase's name whole in a legend under its chart (plotext's own legend cut them)
    for label in ("simclr pretrain s0", "rotnet semi 10% s1", "supervised 1% s0 (validation)"):
        assert label in out.stdout
    assert "•• " in out.stdout and "xx " in out.stdout  # markers tell the curves apart without colour


def test_show_leads_with_the_results_and_prints_the_configuration_on_request(run_cli, fixture_runs):
    config = fixture_runs / STUDY_ID / "config.toml"
    # a line longer than any terminal: printed through rich, it would wrap into invalid TOML
    config.write_text(config.read_text() + f'\n[notes]\ntext = "{"a long note " * 20}"\n')
    out = run_cli("show", STUDY_ID, COLUMNS="80")
    assert out.returncode == 0, out.stderr
    assert "[[parts]]" not in out.stdout and "[notes]" not in out.stdout
    lines = out.stdout.splitlines()
    results = next(i for i, line in enumerate(lines) if "test acc" in line)
    assert results < 8 and "82.30" in out.stdout  # the results come right after the header
    assert f"ssltui show {STUDY_ID} --config" in out.stdout  # how to see the rest
    toml = run_cli("show", STUDY_ID, "--config", COLUMNS="80")
    assert toml.returncode == 0, toml.stderr
    assert toml.stdout == config.read_text()  # byte for byte: valid TOML, never wrapped
    tomllib.loads(toml.stdout)
    js = json.loads(run_cli("show", STUDY_ID, "--json").stdout)
    assert js["config"] == config.read_text()  # --json keeps the configuration


def test_show_config_of_a_damaged_config_is_one_line(run_cli, fixture_runs):
    (fixture_runs / STUDY_ID / "config.toml").write_bytes(bytes(range(256)))
    out = run_cli("show", STUDY_ID, "--config")
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.splitlines() == [
        f"ssltui: error: {fixture_runs / STUDY_ID / 'config.toml'}: not UTF-8 text (damaged)"
    ]


def test_a_cancel_is_no_error_and_says_how_to_resume(tmp_path, runs_dir):
    """Ctrl-C (or the app's x) of a headless run: 'interrupted', the id from the start, the resume command."""
    from tests.conftest import cli_env

    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ssltui",
            "run",
            "--preset",
            "smoke",
            "--device",
            "cpu",
            "--run-id",
            "stopme",
            "--set",
            "supervised.epochs=500",
            "--set",
            "data.synthetic_train_per_class=20",
            "--set",
            "supervised.batch_size=8",
        ],
        env=cli_env(runs_dir, tmp_path / "data"),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    metrics = runs_dir / "stopme" / "metrics.jsonl"
    deadline = time.monotonic() + 120
    while not (metrics.exists() and '"step"' in metrics.read_text()):
        assert proc.poll() is None and time.monotonic() < deadline, "the run did not start"
        time.sleep(0.2)
    proc.send_signal(2)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    lines = err.splitlines()
    assert " run stopme (smoke) on cpu" in next(ln for ln in lines if "stopme" in ln)  # the first event
    assert not [ln for ln in lines if ln.startswith("ssltui: error")]
    assert any(ln.startswith("ssltui: interrupted: stopped by SIGINT in") for ln in lines)
    assert lines[-1] == "ssltui: continue with: ssltui resume stopme"


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("terminal", [True, False])
def test_a_terminal_sees_the_run_id_before_torch_loads(runs_dir, monkeypatch, terminal):
    """On a terminal the id comes first (progress bars follow); a pipe reads it in the first event's
    line, and its stderr holds nothing else before an error or the resume hint."""
    from contextlib import redirect_stderr

    import ssltui.cli.main as cli_main
    from ssltui.core.errors import RunInterrupted
    from ssltui.core.stop import StopToken
    from ssltui.trainer import runner as runner_mod

    def stopped(self, resume=False):
        raise RunInterrupted("stopped by SIGINT in epoch 1")

    monkeypatch.setattr(runner_mod.Runner, "execute", stopped)
    monkeypatch.setattr(cli_main, "_stop_on_signals", StopToken)  # no handlers installed in the test process
    monkeypatch.setattr(cli_main, "_load_data", lambda *args, **kwargs: None)
    monkeypatch.setattr(cli_main, "make_progress", lambda quiet: None)  # no bars on the test's stderr
    err = _Terminal() if terminal else io.StringIO()
    monkeypatch.setattr(
        sys,
        "argv",
        ["ssltui", "run", "--preset", "smoke", "--device", "cpu", "--run-id", "tty", "--runs-dir", str(runs_dir)],
    )
    with redirect_stderr(err), pytest.raises(SystemExit) as exit_:
        cli_main.entry()
    assert exit_.value.code == 130
    lines = err.getvalue().splitlines()
    first = [f"ssltui: run tty in {runs_dir / 'tty'}"] if terminal else []
    assert lines == first + [
        "ssltui: interrupted: stopped by SIGINT in epoch 1",
        "ssltui: continue with: ssltui resume tty",
    ]
