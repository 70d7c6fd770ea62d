"""One error path: a user's or the environment's mistake is one line on stderr, the documented
exit code (2 usage/config, 3 environment/data), nothing half-made on disk, and with `--json`
still one JSON object on stdout. Real subprocesses, real files."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
from conftest import cli_env


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("ssltui: error")]


def _one_line(proc: subprocess.CompletedProcess, code: int, fragment: str) -> None:
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr, proc.stderr
    (line,) = _error_lines(proc.stderr)
    assert fragment in line, line


def _error_json(proc: subprocess.CompletedProcess, code: int) -> dict:
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["status"] == "error" and out["exit_code"] == code and out["error"], out
    return out


@pytest.mark.parametrize("json_flag", [[], ["--json"]])
def test_a_negative_prune_startup_is_a_usage_error(run_cli, runs_dir, json_flag):
    proc = run_cli(
        "sweep",
        "--preset",
        "smoke",
        "--param",
        "supervised.lr=0.1,0.2",
        "--prune-startup",
        "-1",
        "--device",
        "cpu",
        "--data",
        "synthetic",
        *json_flag,
        timeout=120,
    )
    _one_line(proc, 2, "--prune-startup")
    if json_flag:
        assert "--prune-startup" in _error_json(proc, 2)["error"]
    assert not (runs_dir / "sweeps").exists()  # refused before the storage is made


@pytest.mark.parametrize("name", [".archive", ".", "cache", "sweeps"])
def test_show_refuses_a_name_that_is_not_a_run(run_cli, runs_dir, name):
    for folder in (".archive", "cache", "sweeps"):
        (runs_dir / folder).mkdir(parents=True, exist_ok=True)
    proc = run_cli("show", name, "--json")
    _one_line(proc, 2, name)
    assert _error_json(proc, 2)["error"].startswith(("no run", "'.'"))


def test_a_usage_error_with_json_still_prints_json(run_cli):
    proc = run_cli("run", "--preset", "nope", "--json")
    _one_line(proc, 2, "unknown preset")
    assert "unknown preset" in _error_json(proc, 2)["error"]
    proc = run_cli("runs", "--json", "--bogus")
    assert proc.returncode == 2 and _error_json(proc, 2)


def _read_only(runs: os.PathLike) -> list[str]:
    """A command prefix under which `runs` is read-only: a read-only bind mount in a private
    mount namespace for root (whom file modes do not stop), the folder's mode for anyone else."""
    if os.geteuid() != 0:
        os.chmod(runs, 0o555)
        return []
    if shutil.which("unshare") is None:
        pytest.skip("running as root without unshare: no way to make a folder read-only for root")
    return [
        "unshare",
        "-rm",
        "sh",
        "-c",
        'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" "$0" && shift && exec "$@"',
        str(runs),
        "--",
    ]


@pytest.mark.parametrize("json_flag", [[], ["--json"]])
def test_a_read_only_runs_dir_is_exit_3_before_the_data_loads(tmp_path, json_flag):
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "old-run").mkdir()
    # cifar10 with an empty download dir and no network would fail on the data (exit 3 naming
    # --data): the runs dir must be refused first, by name.
    cmd = _read_only(runs) + [
        sys.executable,
        "-m",
        "ssltui",
        "run",
        "--preset",
        "smoke",
        "--data",
        "cifar10",
        "--data-dir",
        str(tmp_path / "dl"),
        "--device",
        "cpu",
        *json_flag,
    ]
    proc = subprocess.run(
        cmd, capture_output=True, text=True, timeout=120, env=cli_env(runs, tmp_path / "dl"), stdin=subprocess.DEVNULL
    )
    _one_line(proc, 3, str(runs))
    assert "--runs-dir" in _error_lines(proc.stderr)[0]
    assert "cifar" not in proc.stderr.lower()
    assert sorted(p.name for p in runs.iterdir()) == ["old-run"]
    assert not (tmp_path / "dl").exists()  # the data was never touched
    if json_flag:
        assert str(runs) in _error_json(proc, 3)["error"]


@pytest.mark.parametrize(
    "setting",
    [
        "supervised.epochs=2e8",
        "supervised.epochs=1e12",
        "supervised.epochs=1e23",
        "supervised.min_steps=1e12",
        "pretrain.epochs=100001",
    ],
)
def test_an_epoch_count_no_run_could_finish_is_refused_before_the_run_folder(run_cli, runs_dir, setting):
    proc = run_cli("run", "--preset", "smoke", "--device", "cpu", "--set", setting, "--json", timeout=120)
    _one_line(proc, 2, setting.split("=")[0])
    line = _error_lines(proc.stderr)[0]
    assert "must be <=" in line or "exceeded maximum size" in line, line
    _error_json(proc, 2)
    assert not runs_dir.exists() or not [p for p in runs_dir.iterdir() if p.name not in ("cache", "sweeps")]


def test_a_sweep_whose_every_trial_failed_exits_non_zero(run_cli, runs_dir):
    # each trial fails once it starts: 0.1% of 10 images a class is no labelled image at all
    proc = run_cli(
        "sweep",
        "--preset",
        "smoke",
        "--param",
        "supervised.lr=0.1,0.2",
        "--labels",
        "0.001",
        "--set",
        "data.synthetic_train_per_class=10",
        "--set",
        "data.synthetic_test_per_class=10",
        "--set",
        "supervised.epochs=1",
        "--set",
        "runtime.featuremaps=false",
        "--device",
        "cpu",
        "--data",
        "synthetic",
        "--json",
        timeout=300,
    )
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert [w["state"] for w in out["worker"]] == ["failed", "failed"], out["worker"]
    assert proc.returncode == 1, proc.stderr
    assert out["status"] == "failed" and "every trial failed" in out["error"] and "0 images" in out["error"]
    (line,) = _error_lines(proc.stderr)
    assert "every trial failed" in line and "Traceback" not in proc.stderr


def test_every_command_line_in_one_process_gets_its_error_json(monkeypatch, runs_dir):
    """The entry point run twice in one process (as the TUI's tests and the fuzzer do): the second
    error still prints its JSON even though the first command printed one."""
    import contextlib
    import io

    from ssltui.cli.main import entry

    outputs = []
    for argv in (["ssltui", "runs", "--json"], ["ssltui", "show", "nope", "--json"]):
        monkeypatch.setattr(sys, "argv", argv)
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()), pytest.raises(SystemExit):
            entry()
        outputs.append(out.getvalue())
    assert json.loads(outputs[0]) == []
    assert json.loads(outputs[1])["status"] == "error" and "no run 'nope'" in json.loads(outputs[1])["error"]


def test_a_damaged_cached_encoder_says_how_to_clear_it(run_cli, runs_dir):
    tiny = [
        "--preset",
        "smoke",
        "--method",
        "rotnet",
        "--evaluation",
        "knn",
        "--device",
        "cpu",
        "--data",
        "synthetic",
        "--set",
        "data.synthetic_train_per_class=20",
        "--set",
        "data.synthetic_test_per_class=10",
        "--set",
        "pretrain.epochs=1",
        "--set",
        "pretrain.batch_size=64",
        "--set",
        "knn.every_epochs=0",
        "--set",
        "runtime.featuremaps=false",
        "-q",
    ]
    first = run_cli("run", *tiny, timeout=300)
    assert first.returncode == 0, first.stderr
    (cached,) = (runs_dir / "cache" / "encoders").glob("*.pt")
    cached.write_bytes(b"not a checkpoint")  # a torn write, a bad disk, a foreign file
    proc = run_cli("run", *tiny, "--json", timeout=300)
    _one_line(proc, 2, str(cached))
    line = _error_lines(proc.stderr)[0]
    assert "delete" in line and "--no-cache" in line, line
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["status"] == "failed" and "--no-cache" in out["error"], out
