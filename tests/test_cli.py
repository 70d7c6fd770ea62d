"""The headless CLI as a user runs it: real subprocesses, JSON on stdout, exit codes, the run store."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import REPO, cli_env, last_json


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """One real supervised smoke run shared by the tests below."""
    runs = tmp_path_factory.mktemp("runs")
    data = tmp_path_factory.mktemp("data")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "ssltui",
            "run",
            "--preset",
            "smoke",
            "--data",
            "synthetic",
            "--device",
            "cpu",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=cli_env(runs, data),
        stdin=subprocess.DEVNULL,
    )
    return proc, runs, data


def test_run_json_and_accuracy_far_above_chance(smoke_run):
    proc, runs, _ = smoke_run
    assert proc.returncode == 0, proc.stderr
    out = last_json(proc.stdout)
    assert out["status"] == "completed"
    (res,) = out["results"]
    assert res["method"] == "supervised" and res["evaluation"] == "supervised"
    assert res["labels"] == 0.1 and res["seed"] == 0
    assert 0.0 <= res["test_acc"] <= 1.0
    assert res["test_acc"] > 0.5, res  # chance is 0.1
    assert "Traceback" not in proc.stderr
    run = runs / out["run_id"]
    for name in (
        "config.toml",
        "metrics.jsonl",
        "summary.json",
        "run.log",
        "labels/labels0.1-seed0.json",
        "featuremaps.json",
    ):
        assert (run / name).is_file(), name
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["versions"]["torch"]
    assert summary["timings"]["supervised"] > 0
    labels = json.loads((run / "labels/labels0.1-seed0.json").read_text())
    assert labels["count"] == 300 and len(labels["indices"]) == 300  # 10% of 300 a class = 30, x 10 classes
    epochs = [
        json.loads(line)
        for line in (run / "metrics.jsonl").read_text().splitlines()
        if json.loads(line)["event"] == "epoch"
    ]
    assert [e["epoch"] for e in epochs] == list(range(1, 11))
    assert {"loss", "lr", "images_per_s", "phase", "step"} <= set(epochs[0])


def test_runs_lists_the_finished_run(smoke_run):
    proc, runs, data = smoke_run
    run_id = last_json(proc.stdout)["run_id"]
    listing = subprocess.run(
        [sys.executable, "-m", "ssltui", "runs", "--json"],
        capture_output=True,
        text=True,
        env=cli_env(runs, data),
        timeout=60,
    )
    assert listing.returncode == 0
    (item,) = json.loads(listing.stdout)
    assert item["run_id"] == run_id and item["status"] == "completed"
    assert item["methods"] == ["supervised"] and item["results"][0]["test_acc"] > 0.5
    table = subprocess.run(
        [sys.executable, "-m", "ssltui", "runs"], capture_output=True, text=True, env=cli_env(runs, data), timeout=60
    )
    assert run_id[:15] in table.stdout and "completed" in table.stdout


def test_show_prints_config_results_and_curves(smoke_run):
    proc, runs, data = smoke_run
    run_id = last_json(proc.stdout)["run_id"]
    show = subprocess.run(
        [sys.executable, "-m", "ssltui", "show", run_id[-6:]],
        capture_output=True,
        text=True,
        env=cli_env(runs, data),
        timeout=60,
    )
    assert show.returncode == 0, show.stderr
    assert "supervised" in show.stdout and "loss" in show.stdout
    config = subprocess.run(
        [sys.executable, "-m", "ssltui", "show", run_id[-6:], "--config"],
        capture_output=True,
        text=True,
        env=cli_env(runs, data),
        timeout=60,
    )
    assert "[[parts]]" in config.stdout
    js = subprocess.run(
        [sys.executable, "-m", "ssltui", "show", run_id, "--json"],
        capture_output=True,
        text=True,
        env=cli_env(runs, data),
        timeout=60,
    )
    assert len(json.loads(js.stdout)["epochs"]) == 10


@pytest.mark.parametrize(
    "args, code, fragment",
    [
        (["run", "--preset", "nope"], 2, "unknown preset 'nope'"),
        (["run", "--preset", "smoke", "--set", "supervised.lr=-0.1"], 2, "supervised.lr"),
        (["run", "--preset", "smoke", "--set", "supervised.batch_size=x"], 2, "expected an integer"),
        (["run", "--preset", "smoke", "--labels", "2"], 2, "outside (0, 1]"),
        (["run", "--preset", "smoke", "--evaluation", "linear"], 2, "does not apply"),
        (["run", "--preset", "smoke", "--device", "tpu"], 2, "--device"),
        (["run", "--preset", "smoke", "--data", "imagenet"], 2, "--data"),
        (["run", "--bogus"], 2, "No such option"),
        (["show", "nope"], 2, "no run 'nope'"),
        (["run", "--preset", "smoke", "--data", "folder:/does/not/exist", "--device", "cpu"], 3, "/does/not/exist"),
    ],
)
def test_bad_input_is_one_line_and_an_exit_code(run_cli, args, code, fragment):
    proc = run_cli(*args, timeout=120)
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    assert fragment in proc.stderr
    assert "Traceback" not in proc.stderr
    assert len([line for line in proc.stderr.splitlines() if line.startswith("ssltui: error")]) == 1


def test_cifar10_offline_exits_3_naming_the_fix(run_cli, runs_dir, tmp_path):
    """The cifar10 source with no way to download it: every proxy variable points at a closed
    port, so torchvision's download fails here whether or not the machine is online; the user is
    told to use --data folder:PATH, and no run folder is left behind."""
    closed = "http://127.0.0.1:9"  # the discard port: nothing listens there
    proc = run_cli(
        "run",
        "--preset",
        "smoke",
        "--data",
        "cifar10",
        "--device",
        "cpu",
        "--data-dir",
        str(tmp_path / "dl"),
        timeout=240,
        HTTP_PROXY=closed,
        HTTPS_PROXY=closed,
        http_proxy=closed,
        https_proxy=closed,
        ALL_PROXY=closed,
        all_proxy=closed,
        NO_PROXY="",
        no_proxy="",
    )
    assert proc.returncode == 3, (proc.returncode, proc.stderr)
    assert "could not download CIFAR-10" in proc.stderr, proc.stderr
    assert "--data folder:PATH" in proc.stderr and "Traceback" not in proc.stderr
    assert not runs_dir.exists() or not [p for p in runs_dir.iterdir() if p.name not in ("cache", "sweeps")]


def test_fast_commands_do_not_import_torch(runs_dir):
    code = (
        "import sys\nfrom ssltui.cli.main import entry\n"
        "for argv in (['ssltui','--help'], ['ssltui','presets','--json'], ['ssltui','runs','--json'],\n"
        "             ['ssltui','sweep','--help']):\n"
        "    sys.argv = argv\n"
        "    try:\n        entry()\n    except SystemExit as e:\n        assert e.code == 0, (argv, e.code)\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
        "assert 'optuna' not in sys.modules, 'optuna imported'\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env=cli_env(runs_dir, runs_dir),
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr


def test_presets_json_lists_methods(run_cli):
    proc = run_cli("presets", "--json")
    items = {p["name"]: p for p in json.loads(proc.stdout)}
    assert items["supervised"]["method"] == "supervised" and items["smoke"]["description"]


SHARED_OPTIONS = (
    "preset",
    "method",
    "evaluation",
    "labels",
    "seeds",
    "device",
    "data",
    "data_dir",
    "sets",
    "runs_dir",
    "no_cache",
    "json_out",
    "quiet",
)


def test_run_and_sweep_declare_their_common_options_once():
    """`run` and `sweep` take the same 13 options from one declaration: the same flags, help and
    type in both (neither has a default preset in the signature: each falls back to DEFAULT_PRESET, so
    `run --config FILE` can tell a --preset given beside it)."""
    import inspect
    import typing

    import typer.main

    from ssltui.cli import main, sweep

    cli = typer.main.get_command(main.app)
    run_params = {p.name: p for p in cli.commands["run"].params}
    sweep_params = {p.name: p for p in cli.commands["sweep"].params}
    for name in SHARED_OPTIONS:
        a, b = run_params[name], sweep_params[name]
        assert (a.opts, a.secondary_opts, a.help, a.multiple, a.is_flag) == (
            b.opts,
            b.secondary_opts,
            b.help,
            b.multiple,
            b.is_flag,
        ), name
        # declared once: both signatures name the same Annotated alias
        run_hint = typing.get_type_hints(main.run, include_extras=True)[name]
        sweep_hint = typing.get_type_hints(sweep.sweep, include_extras=True)[name]
        assert typing.get_origin(run_hint) is typing.Annotated and run_hint == sweep_hint, name
    assert "--preset" in run_params["preset"].opts and "-p" in run_params["preset"].opts
    assert run_params["preset"].default is None and sweep_params["preset"].default is None
    assert inspect.signature(main.run).parameters["device"].default == "auto"
