"""The TUI's pure parts: event folding, file tailing, thumbnails, the comparison table, launch checks."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import pytest
from rich.console import Console

from ssltui.engine.errors import ConfigError
from ssltui.tui.launch import LaunchRequest, hyperparameters, parse_fractions, presets_for
from ssltui.engine.events import parse_event
from ssltui.tui.runstate import RunState
from ssltui.tui.watch import FileTail
from ssltui.engine.store import RunInfo
from ssltui.engine.table import build_table
from ssltui.view.featuremaps import SHADES, color_available, pool, render_maps
from ssltui.view.tables import table1

from tests.conftest import REPO, cli_env
from tests.tui_fixtures import STUDY_ID, make_fixture_runs


def _plain(renderable, width: int = 200) -> str:
    console = Console(width=width, color_system=None, record=True, file=io.StringIO())
    console.print(renderable, crop=False)
    return console.export_text()


def test_runstate_resume_later_epoch_wins_and_eta_from_event_times():
    s = RunState()
    ph = {"phase": "p", "kind": "pretrain", "method": "simclr", "seed": 0}
    s.apply(parse_event({"t": 0, "event": "phase_start", **ph, "epochs": 4, "steps_per_epoch": 10, "start_epoch": 0}))
    s.apply(parse_event({"t": 10, "event": "step", **ph, "epoch": 0, "step": 10, "loss": 2.0, "lr": 0.1}))
    s.apply(parse_event({"t": 10, "event": "epoch", **ph, "epoch": 1, "epochs": 4, "step": 10, "loss": 2.0, "lr": 0.1,
             "knn_acc": 0.30}))
    s.apply(parse_event({"t": 20, "event": "epoch", **ph, "epoch": 2, "epochs": 4, "step": 20, "loss": 1.5, "lr": 0.1,
             "knn_acc": 0.35}))
    p = s.phases["p"]
    assert p.fraction == 0.5 and p.eta_seconds() == pytest.approx(20.0)  # 20 steps in 20 s, 20 to go
    # crash after epoch 2, resume from the epoch-1 checkpoint: epoch 2 is recomputed and replaces the old one
    s.apply(parse_event({"t": 100, "event": "resume", **ph, "epoch": 1, "step_in_epoch": 0}))
    s.apply(parse_event({"t": 100, "event": "phase_start", **ph, "epochs": 4, "steps_per_epoch": 10, "start_epoch": 1}))
    assert p.step == 10
    s.apply(parse_event({"t": 105, "event": "epoch", **ph, "epoch": 2, "epochs": 4, "step": 20, "loss": 1.4, "lr": 0.1,
             "knn_acc": 0.40}))
    assert p.accuracy() == {"knn_acc": [(1, 0.30), (2, 0.40)]}
    assert p.eta_seconds() == pytest.approx(10.0)  # 10 steps in 5 s since the resume, 20 to go
    s.apply(parse_event({"t": 106, "event": "result", "method": "simclr", "evaluation": "linear", "labels": 0.1, "seed": 0,
             "test_acc": 0.5}))
    s.apply(parse_event({"t": 107, "event": "run_end", "status": "interrupted", "error": "stopped"}))
    assert s.status == "interrupted" and len(s.results) == 1


def test_filetail_waits_for_a_torn_line_and_notices_truncation(tmp_path):
    f = tmp_path / "m.jsonl"
    f.write_bytes(b'{"a":1}\n{"b":')
    tail = FileTail(f)
    lines, truncated = tail.read()
    assert lines == [b'{"a":1}'] and not truncated
    with open(f, "ab") as fh:
        fh.write(b'2}\n')
    assert tail.read() == ([b'{"b":2}'], False)
    f.write_bytes(b'{"c":3}\n')  # rewritten shorter
    assert tail.read() == ([b'{"c":3}'], True)


def test_pool_averages_blocks():
    grid = [[float(r * 4 + c) for c in range(4)] for r in range(4)]
    assert pool(grid, 2) == [[2.5, 4.5], [10.5, 12.5]]


def test_thumbnails_halfblocks_with_colour_and_ascii_without(tmp_path):
    doc = json.loads((make_fixture_runs(tmp_path / "runs") / STUDY_ID / "featuremaps.json").read_text())
    colour = render_maps(doc, 0, color=True)
    assert "▀" in colour.plain and any(span.style and " on " in str(span.style) for span in colour.spans)
    ascii_ = _plain(render_maps(doc, 0, color=False))
    assert "▀" not in ascii_ and set(ascii_) - set(SHADES) - set("\n") <= set(
        "│inputsupervisedsimclrrotnet·seed0123456789airplane#/;rowsendofstages,(4mostactivechannelseach)image ")
    lines = ascii_.splitlines()
    # one header line, 3 stages x 4 lines with a blank between them, one caption
    assert len(lines) == 1 + 3 * 4 + 2 + 1
    assert lines[0].split("│")[1].startswith("supervised · seed 0")
    assert all(len(line) == len(lines[0]) for line in lines[:-1])


def test_color_available_follows_no_color_and_dumb_terminals():
    assert color_available({"TERM": "xterm-256color"})
    assert not color_available({"TERM": "xterm-256color", "NO_COLOR": ""})
    assert not color_available({"TERM": "dumb"})


def _info(run_id: str, started: float, results: list[dict]) -> RunInfo:
    return RunInfo(run_id, REPO / run_id, "completed", results=results, started=started)


def _res(method, evaluation, labels, seed, acc):
    return {"method": method, "evaluation": evaluation, "labels": labels, "seed": seed, "test_acc": acc}


def test_compared_runs_get_a_row_each_and_the_best_cell_per_column_is_highlighted():
    r1 = _info("r1", 1.0, [_res("supervised", "supervised", 0.1, 0, 0.80), _res("rotnet", "semi", 0.1, 0, 0.84),
                           _res("rotnet", "semi", 0.1, 1, 0.82)])
    r2 = _info("r2", 2.0, [_res("rotnet", "semi", 0.1, 0, 0.70)])
    t = build_table([r2, r1], [], per_run=True)
    assert t.per_run and t.runs == ["r1", "r2"]
    semi = [r for r in t.rows if (r.method, r.evaluation) == ("rotnet", "semi")]
    assert [r.run_id for r in semi] == ["r1", "r2"]  # a row per run, in start order
    assert semi[0].cells[1].mean == pytest.approx(83.0) and semi[0].cells[1].best
    assert not semi[1].cells[1].best and semi[1].cells[1].diff == pytest.approx(70.0 - 83.64)
    unmeasured = next(r for r in t.rows if (r.method, r.evaluation) == ("simclr", "linear"))
    assert unmeasured.run_id is None and not unmeasured.measured and unmeasured.cells[0].paper == 64.15

    table = table1(t)
    ours = next(c for c in table.columns if c.header == "10% ours")
    assert [c.plain for c in ours._cells if "bold green" in str(c.style)] == ["83.00 ± 1.41"]
    text = _plain(table)
    assert "83.64" in text and "64.15" in text and "-13.64" in text  # paper beside ours, and Δ
    assert "1 = r1, 2 = r2" in text  # the legend of the run column

    pooled = build_table([r1, r2], [], per_run=False)  # `ssltui table`: r2's seed 0 replaces r1's
    cell = next(r for r in pooled.rows if r.evaluation == "semi").cells[1]
    assert cell.seeds == [0, 1] and cell.ours == pytest.approx([70.0, 82.0])


def test_presets_for_method_and_hyperparameters():
    names = {p.name for p in presets_for("supervised")}
    assert {"supervised", "smoke"} <= names
    assert "supervised" not in {p.name for p in presets_for("simclr")}
    keys = [p.key for p in hyperparameters("smoke", "simclr")]
    assert "pretrain.lr" in keys and "simclr.temperature" in keys and "supervised.lr" not in keys


def test_launch_request_refuses_bad_values_with_the_reason():
    req = LaunchRequest(preset="smoke", method="supervised", labels="10%", seeds="0", device="cpu",
                        data="synthetic", sets={"supervised.lr": "-1"})
    with pytest.raises(ConfigError, match=r"supervised.lr: -1.0 is out of range \(must be > 0.0\)"):
        req.validate()
    req.sets = {"supervised.epochs": "2", "supervised.milestones": "5"}
    with pytest.raises(ConfigError, match="milestones"):
        req.validate()
    req.sets = {"supervised.epochs": "2"}
    req.validate()
    argv = req.argv("RID", REPO / "runs")
    assert argv[1:4] == ["-m", "ssltui", "run"] and "--quiet" in argv
    assert argv[argv.index("--labels") + 1] == "0.1" and "supervised.epochs=2" in argv
    assert parse_fractions("1%, 0.1") == [0.01, 0.1]
    with pytest.raises(ConfigError):
        parse_fractions("150%")


def test_maps_cli_ascii_without_colour_and_without_torch(tmp_path, data_dir):
    runs = make_fixture_runs(tmp_path / "runs")
    code = ("import sys, runpy; sys.argv = ['ssltui', 'maps', 'paper-a1b2c3', '--image', '1'];"
            "from ssltui.cli.main import entry\n"
            "try:\n    entry()\nexcept SystemExit as e:\n    rc = e.code\n"
            "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH', rc)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env=cli_env(runs, data_dir, NO_COLOR="1"), cwd=REPO)
    assert out.stdout.strip().endswith("NO-TORCH 0"), out.stderr
    assert "automobi" in out.stdout and "rotnet · seed 0" in out.stdout and "▀" not in out.stdout
    assert "\x1b[" not in out.stdout
    bad = subprocess.run([sys.executable, "-m", "ssltui", "maps", "nope"], capture_output=True, text=True,
                         timeout=60, env=cli_env(runs, data_dir))
    assert bad.returncode == 2 and bad.stderr.startswith("ssltui: error: no run")
