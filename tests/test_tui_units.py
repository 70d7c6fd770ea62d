"""The TUI's pure parts: event folding, file tailing, thumbnails, the comparison table, launch checks."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import pytest
from rich.console import Console

from ssltui.core.errors import ConfigError
from ssltui.core.events import parse_event
from ssltui.core.store import RunInfo
from ssltui.core.table import build_table
from ssltui.tui.launch import (
    LaunchRequest,
    PresetDefaults,
    hyperparameters,
    parse_fractions,
    preset_defaults,
    presets_for,
)
from ssltui.tui.runstate import RunState
from ssltui.tui.watch import FileTail
from ssltui.view.featuremaps import (
    SHADES,
    MapsUnavailable,
    color_available,
    load_featuremaps,
    plan_layout,
    pool,
    render_maps,
)
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
    s.apply(
        parse_event(
            {
                "t": 10,
                "event": "epoch",
                **ph,
                "epoch": 1,
                "epochs": 4,
                "step": 10,
                "loss": 2.0,
                "lr": 0.1,
                "knn_acc": 0.30,
            }
        )
    )
    s.apply(
        parse_event(
            {
                "t": 20,
                "event": "epoch",
                **ph,
                "epoch": 2,
                "epochs": 4,
                "step": 20,
                "loss": 1.5,
                "lr": 0.1,
                "knn_acc": 0.35,
            }
        )
    )
    p = s.phases["p"]
    assert p.fraction == 0.5 and p.eta_seconds() == pytest.approx(20.0)  # 20 steps in 20 s, 20 to go
    # crash after epoch 2, resume from the epoch-1 checkpoint: epoch 2 is recomputed and replaces the old one
    s.apply(parse_event({"t": 100, "event": "resume", **ph, "epoch": 1, "step_in_epoch": 0}))
    s.apply(parse_event({"t": 100, "event": "phase_start", **ph, "epochs": 4, "steps_per_epoch": 10, "start_epoch": 1}))
    assert p.step == 10
    s.apply(
        parse_event(
            {
                "t": 105,
                "event": "epoch",
                **ph,
                "epoch": 2,
                "epochs": 4,
                "step": 20,
                "loss": 1.4,
                "lr": 0.1,
                "knn_acc": 0.40,
            }
        )
    )
    assert p.accuracy() == {"knn_acc": [(1, 0.30), (2, 0.40)]}
    assert p.eta_seconds() == pytest.approx(10.0)  # 10 steps in 5 s since the resume, 20 to go
    s.apply(
        parse_event(
            {
                "t": 106,
                "event": "result",
                "method": "simclr",
                "evaluation": "linear",
                "labels": 0.1,
                "seed": 0,
                "test_acc": 0.5,
            }
        )
    )
    s.apply(parse_event({"t": 107, "event": "run_end", "status": "interrupted", "error": "stopped"}))
    assert s.status == "interrupted" and len(s.results) == 1


def test_filetail_waits_for_a_torn_line_and_notices_truncation(tmp_path):
    f = tmp_path / "m.jsonl"
    f.write_bytes(b'{"a":1}\n{"b":')
    tail = FileTail(f)
    lines, truncated = tail.read()
    assert lines == [b'{"a":1}'] and not truncated
    with open(f, "ab") as fh:
        fh.write(b"2}\n")
    assert tail.read() == ([b'{"b":2}'], False)
    f.write_bytes(b'{"c":3}\n')  # rewritten shorter
    assert tail.read() == ([b'{"c":3}'], True)


def test_pool_averages_blocks():
    grid = [[float(r * 4 + c) for c in range(4)] for r in range(4)]
    assert pool(grid, 2) == [[2.5, 4.5], [10.5, 12.5]]


def test_thumbnails_halfblocks_with_colour_and_ascii_without(tmp_path):
    doc = json.loads((make_fixture_runs(tmp_path / "runs") / STUDY_ID / "featuremaps.json").read_text())
    colour = render_maps(doc, 0, color=True, width=118, height=35, compact=True)
    assert "▀" in colour.plain and any(span.style and " on " in str(span.style) for span in colour.spans)
    ascii_ = _plain(render_maps(doc, 0, color=False, width=118, height=35, compact=True))
    assert "▀" not in ascii_
    lines = ascii_.splitlines()
    # the input at its own 32x32 pixels: 32 columns, 16 lines, beside the models
    assert lines[0].startswith("airplane" + " " * 24 + "│supervised · seed 0")
    assert all(set(line[:32]) <= set(SHADES) for line in lines[1:17])
    # 120x40, every model at once (z): two side by side at 8x8 px, the third under them; four channels
    assert "│simclr · seed 0" in lines[0] and "rotnet · seed 0" in ascii_
    stage1 = lines[1].split("│")[1]
    assert stage1.startswith("s1 ") and [len(t) for t in stage1[3:].split("|")] == [8, 8, 8, 8]
    assert lines[-3] == "image 1/4: airplane (test image #0)"
    assert lines[-2] == "rows s1-s3: end of stages 1-3, 4 most active channels, 8x8 px"


@pytest.mark.parametrize(
    "size,thumb,models", [((78, 19), 8, [0]), ((118, 35), 16, [0]), ((198, 55), 32, [0]), ((238, 70), 32, [0, 1])]
)
def test_feature_maps_grow_with_the_terminal(size, thumb, models):
    """The largest thumbnails a model fits at, a page of the models that fit: 8x8 at 80x24,
    16x16 at 120x40, 32x32 (stage 1; its own resolution) from 200x60."""
    layout = plan_layout(size[0], size[1] - 2, n_models=3, n_channels=4)
    assert (layout.thumb, layout.models, layout.channels) == (thumb, models, 4)
    assert layout.input_px == 32
    assert layout.block_width * layout.per_row + layout.per_row - 1 + 33 <= size[0]
    page = plan_layout(size[0], size[1] - 2, n_models=3, n_channels=4, view=1)  # `v`: the next page
    assert page.thumb == layout.thumb and page.models and page.models[0] == models[-1] + 1
    every = plan_layout(size[0], size[1] - 2, n_models=3, n_channels=4, compact=True)  # `z`
    assert every.thumb <= layout.thumb


def test_damaged_feature_maps_say_what_is_wrong(tmp_path):
    """A cut featuremaps.json is damaged, not 'absent'."""
    path = tmp_path / "featuremaps.json"
    with pytest.raises(MapsUnavailable, match="writes featuremaps.json when it completes"):
        load_featuremaps(path)
    path.write_text('{"images": [{"index": 0, "rgb": [[[1, 2, 3]]]}], "models": [{"na')
    with pytest.raises(MapsUnavailable, match=r"damaged: not valid JSON \(cut short"):
        load_featuremaps(path)
    path.write_text('{"images": [], "models": []}')
    with pytest.raises(MapsUnavailable, match="damaged: no images"):
        load_featuremaps(path)


def test_color_available_follows_no_color_and_dumb_terminals():
    assert color_available({"TERM": "xterm-256color"})
    assert not color_available({"TERM": "xterm-256color", "NO_COLOR": ""})
    assert not color_available({"TERM": "dumb"})


def _info(run_id: str, started: float, results: list[dict]) -> RunInfo:
    return RunInfo(run_id, REPO / run_id, "completed", results=results, started=started)


def _res(method, evaluation, labels, seed, acc):
    return {"method": method, "evaluation": evaluation, "labels": labels, "seed": seed, "test_acc": acc}


def test_compared_runs_get_a_row_each_and_the_best_cell_per_column_is_highlighted():
    r1 = _info(
        "r1",
        1.0,
        [
            _res("supervised", "supervised", 0.1, 0, 0.80),
            _res("rotnet", "semi", 0.1, 0, 0.84),
            _res("rotnet", "semi", 0.1, 1, 0.82),
        ],
    )
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
    req = LaunchRequest(
        preset="smoke",
        method="supervised",
        labels="10%",
        seeds="0",
        device="cpu",
        data="synthetic",
        sets={"supervised.lr": "-1"},
    )
    with pytest.raises(ConfigError, match=r"supervised.lr: -1.0 is out of range \(must be > 0.0\)"):
        req.validate()
    req.sets = {"supervised.epochs": "2", "supervised.milestones": "5"}
    with pytest.raises(ConfigError, match="milestones"):
        req.validate()
    req.sets = {"supervised.epochs": "2"}
    plan = req.resolved()
    assert plan.parts[0].labels == [0.1] and plan.parts[0].supervised.epochs == 2
    assert parse_fractions("1%, 0.1") == [0.01, 0.1]
    with pytest.raises(ConfigError):
        parse_fractions("150%")


def test_maps_cli_ascii_without_colour_and_without_torch(tmp_path, data_dir):
    runs = make_fixture_runs(tmp_path / "runs")
    code = (
        "import sys, runpy; sys.argv = ['ssltui', 'maps', 'paper-a1b2c3', '--image', '1'];"
        "from ssltui.cli.main import entry\n"
        "try:\n    entry()\nexcept SystemExit as e:\n    rc = e.code\n"
        "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH', rc)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env=cli_env(runs, data_dir, NO_COLOR="1"),
        cwd=REPO,
    )
    assert out.stdout.strip().endswith("NO-TORCH 0"), out.stderr
    assert "automobi" in out.stdout and "rotnet · seed 0" in out.stdout and "▀" not in out.stdout
    assert "\x1b[" not in out.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "ssltui", "maps", "nope"],
        capture_output=True,
        text=True,
        timeout=60,
        env=cli_env(runs, data_dir),
    )
    assert bad.returncode == 2 and bad.stderr.startswith("ssltui: error: no run")


def _events(*dicts):
    return [parse_event(d) for d in dicts]


PH = {
    "phase": "p1-simclr/linear/labels0.1/seed0",
    "kind": "linear",
    "method": "simclr",
    "seed": 0,
    "labels": 0.1,
    "evaluation": "linear",
}


def test_images_per_second_of_a_phase_is_its_mean_over_epochs_not_the_last_jump():
    """A linear probe's epochs last milliseconds; their own rates jump 30x."""
    s = RunState()
    for e in _events(
        {"t": 0, "event": "phase_start", **PH, "epochs": 3, "steps_per_epoch": 1},
        {
            "t": 1,
            "event": "epoch",
            **PH,
            "epoch": 1,
            "epochs": 3,
            "step": 1,
            "loss": 2,
            "lr": 0.1,
            "images_per_s": 100_000.0,
            "seconds": 0.001,
        },
        {
            "t": 2,
            "event": "epoch",
            **PH,
            "epoch": 2,
            "epochs": 3,
            "step": 2,
            "loss": 2,
            "lr": 0.1,
            "images_per_s": 4_000.0,
            "seconds": 0.025,
        },
    ):
        s.apply(e)
    p = s.phases[PH["phase"]]
    assert p.images_per_s == pytest.approx((100 + 100) / 0.026)  # all images over all seconds
    assert p.current_epoch == 3 and p.epoch == 2  # the bar names the epoch in progress, as a stop message does


def test_epoch_shown_while_stopped_matches_the_stop_message():
    """Stopped in the first epoch reads 'ep 1/2' (and 'at epoch 1'), not 'ep 0/2'."""
    from ssltui.tui.screens.live import phase_stats

    s = RunState()
    for e in _events(
        {"t": 0, "event": "phase_start", **PH, "epochs": 2, "steps_per_epoch": 4},
        {"t": 1, "event": "step", **PH, "epoch": 0, "step": 2, "loss": 2.5, "lr": 0.1, "images_per_s": 50.0},
        {
            "t": 2,
            "event": "run_end",
            "status": "interrupted",
            "error": f"stopped by SIGINT in {PH['phase']} at epoch 1, step 2; checkpoint saved",
        },
    ):
        s.apply(e)
    p = s.phases[PH["phase"]]
    assert phase_stats(p, running=False) == "ep 1/2 stopped 50 img/s loss 2.500"


def test_a_resume_starts_a_fresh_log_and_forgets_the_old_stop():
    """'stopped by SIGINT' of the first attempt is gone after a resume."""
    s = RunState()
    for e in _events(
        {"t": 0, "event": "run_start", "run_id": "r", "phases": 10},
        {"t": 1, "event": "run_end", "status": "interrupted", "error": "stopped by SIGINT"},
    ):
        s.apply(e)
    assert s.status == "interrupted" and any("stopped by SIGINT" in line for line in s.logs)
    s.apply(parse_event({"t": 5, "event": "run_start", "run_id": "r", "phases": 10}))
    assert s.status == "running" and s.error is None and s.attempts == 2
    assert not any("SIGINT" in line for line in s.logs) and s.total_phases == 10


def test_activity_says_what_happens_before_the_first_step():
    s = RunState()
    s.apply(parse_event({"t": 0, "event": "run_start", "run_id": "r", "phases": 3}))
    assert s.activity() == "loading data…"
    s.apply(parse_event({"t": 1, "event": "log", "message": "decoding images from /x.tar.gz"}))
    assert s.activity() == "loading data: decoding images from /x.tar.gz"
    s.apply(parse_event({"t": 2, "event": "data", "source": "synthetic", "train": 9, "val": 1, "test": 5}))
    assert "preparing the first phase" in s.activity()
    s.apply(parse_event({"t": 3, "event": "phase_start", **PH, "epochs": 2, "steps_per_epoch": 4}))
    assert s.activity() == "simclr linear 10% s0: waiting for the first step…"
    s.apply(parse_event({"t": 4, "event": "step", **PH, "epoch": 0, "step": 1, "loss": 2.5, "lr": 0.1}))
    assert s.activity() is None


def test_event_lines_fit_80_columns_with_their_values():
    """The live log names a phase by its label, so 'lr 0.0482' is not cut at 80 columns."""
    s = RunState()
    s.apply(
        parse_event(
            {
                "t": 0,
                "event": "epoch",
                **PH
                | {
                    "phase": "p0-supervised/supervised/labels0.1/seed0",
                    "kind": "supervised",
                    "method": "supervised",
                    "evaluation": "supervised",
                },
                "epoch": 4,
                "epochs": 60,
                "step": 8,
                "loss": 2.754,
                "lr": 0.04821,
                "val_acc": 0.452,
            }
        )
    )
    line = s.logs[-1]
    assert line.endswith("supervised 10% s0 epoch 4/60 loss 2.7540 lr 0.0482 validation 45.2%") and len(line) <= 78


def test_study_presets_and_their_hyperparameters():
    assert {p.name for p in presets_for("study")} >= {"paper", "paper-tuned", "paper-smoke"}
    params = {p.key: p for p in hyperparameters("paper", "study")}
    assert "evaluation" not in params  # each part keeps its own evaluations
    # supervised, SimCLR and RotNet pretrain differently: the parts disagree, and the row says so
    assert params["pretrain.optimizer"].value == "varies: lars | sgd"
    assert params["supervised.epochs"].value and "simclr.temperature" in params and "semi.frozen_stages" in params
    req = LaunchRequest(
        preset="paper", method="study", labels="0.01,0.1", seeds="0", data="synthetic", sets={"linear.epochs": "5"}
    )
    plan = req.resolved()
    assert plan.preset == "paper" and len(plan.parts) > 1
    assert all(p.linear.epochs == 5 for p in plan.parts if "linear" in p.evaluation)


def test_a_preset_names_its_data_and_the_smoke_presets_name_synthetic():
    """Smoke and paper-smoke default to synthetic data; the others to CIFAR-10."""
    from ssltui.core.presets import resolve

    assert preset_defaults("smoke", "rotnet").data == "synthetic"
    assert preset_defaults("paper-smoke", "study") == PresetDefaults("0.01,0.1", "0", "synthetic")
    assert preset_defaults("simclr-linear", "simclr").data == "cifar10"
    assert resolve("paper-smoke").data == "synthetic" and resolve("paper").data is None
    with pytest.raises(ConfigError, match="data.source"):  # a run option, not a hyperparameter to --set
        resolve("smoke", sets=["data.source=synthetic"])


def test_archive_and_delete_move_runs_out_of_the_list(tmp_path):
    from ssltui.core.store import RunStore
    from ssltui.tui.manage import archive_run, delete_run
    from tests.tui_fixtures import FAILED_ID, SMOKE_ID

    store = RunStore(make_fixture_runs(tmp_path / "runs"))
    dest = archive_run(store, SMOKE_ID)
    assert dest == store.root / ".archive" / SMOKE_ID and (dest / "summary.json").exists()
    delete_run(store, FAILED_ID)
    assert [i.id for i in store.list()] == [STUDY_ID]
    assert sorted(p.name for p in store.root.iterdir()) == [".archive", STUDY_ID]
    with store.get(STUDY_ID).lock():  # a run being trained stays
        with pytest.raises(ConfigError, match="is training"):
            delete_run(store, STUDY_ID)


def test_choices_are_remembered_in_the_state_dir(tmp_path, monkeypatch):
    from ssltui.tui.choices import load_choices, save_choices

    monkeypatch.setenv("SSLTUI_STATE_DIR", str(tmp_path / "state"))
    assert load_choices() == {}
    assert save_choices({"method": "study", "preset": "paper-smoke", "data": "synthetic", "other": "x"}) is None
    assert load_choices() == {"method": "study", "preset": "paper-smoke", "data": "synthetic"}
    (tmp_path / "state" / "launch.json").write_text("[1, 2")
    assert load_choices() == {}


def test_the_loss_chart_draws_each_weighted_part_of_a_loss_beside_the_total():
    """VICReg's loss is three weighted parts: the live loss chart draws each part's epoch mean
    (at the epoch's last step) beside the total's steps, and names them in its legend."""
    from ssltui.tui.widgets.charts import PhaseChart

    pre = {**PH, "phase": "vicreg/pretrain/seed0", "kind": "pretrain", "method": "vicreg"}
    terms = [
        {"invariance": 0.5, "variance": 1.0, "covariance": 0.25},
        {"invariance": 0.4, "variance": 0.5, "covariance": 0.1},
    ]
    events = [{"t": 0, "event": "phase_start", **pre, "epochs": 2, "steps_per_epoch": 2}]
    for step in range(1, 5):
        events.append(
            {"t": step, "event": "step", **pre, "epoch": (step - 1) // 2, "step": step, "loss": 2.0, "lr": 0.1}
        )
        if step % 2 == 0:
            parts = terms[step // 2 - 1]
            events.append(
                {
                    "t": step,
                    "event": "epoch",
                    **pre,
                    "epoch": step // 2,
                    "epochs": 2,
                    "step": step,
                    "loss": sum(parts.values()),
                    "lr": 0.1,
                    "loss_terms": parts,
                }  # fmt: skip
            )
    s = RunState()
    for e in _events(*events):
        s.apply(e)
    chart = PhaseChart("loss")
    chart.show(s.phases[pre["phase"]])
    monitor = chart.plt.monitor
    assert monitor.label == ["loss", "invariance", "variance", "covariance"]
    assert [list(xs) for xs in monitor.x[1:]] == [[2, 4]] * 3
    assert [list(ys) for ys in monitor.y[1:]] == [[0.5, 0.4], [1.0, 0.5], [0.25, 0.1]]
    # A loss of one part draws one unnamed curve, as before.
    s = RunState()
    for e in _events(*(e for e in events if e["event"] != "epoch")):
        s.apply(e)
    chart.show(s.phases[pre["phase"]])
    assert len(chart.plt.monitor.x) == 1
