"""The five two-view methods through the real CLI: SIGKILL mid-pretraining and resume is bit for
bit the uninterrupted run (target network, EMA step, queue and pointer included), and bad
settings are refused in one line with exit 2 and no run folder."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
import torch
from conftest import last_json
from reliability_tools import finish, read_events, spawn, wait_for

METHODS = ("byol", "simsiam", "moco", "barlow", "vicreg")
STEPS_PER_EPOCH = 7  # 70 pretraining images (7 a class), batches of 10
EPOCHS = 3


def _tiny(method: str) -> list[str]:
    heads = {
        "byol": ["byol.pred_hidden_dim=16"],
        "simsiam": ["simsiam.pred_hidden_dim=8"],
        "moco": ["moco.queue_size=20", "moco.bn_splits=2"],
    }.get(method, [])
    sets = [
        "data.synthetic_train_per_class=8",
        "data.synthetic_test_per_class=5",
        "pretrain.batch_size=10",
        f"pretrain.epochs={EPOCHS}",
        "pretrain.checkpoint_every=1",
        "pretrain.optimizer=lars",
        "pretrain.lr=0.3",
        "pretrain.lars_trust_coefficient=0.02",
        "pretrain.weight_decay=1e-4",
        "knn.every_epochs=0",
        "knn.k=5",
        f"{method}.proj_hidden_dim=32",
        f"{method}.proj_out_dim=32",
        *heads,
        "runtime.featuremaps=false",
        "runtime.log_seconds=0",
    ]
    return [
        "run",
        "--preset",
        "smoke",
        "--method",
        method,
        "--evaluation",
        "knn",
        "--data",
        "synthetic",
        "--device",
        "cpu",
        "--labels",
        "1.0",
        "--seeds",
        "0",
        "--json",
        "-q",
        *[a for s in sets for a in ("--set", s)],
    ]


def _final_pretrain_checkpoint(run: Path) -> dict:
    (path,) = [p for p in (run / "checkpoints").glob("*.pt") if "__pretrain__" in p.name]
    ck = torch.load(path, map_location="cpu", weights_only=True)
    assert ck["epoch"] == EPOCHS and ck["step_in_epoch"] == 0, "not the final checkpoint"
    return ck


@pytest.mark.slow
@pytest.mark.parametrize("method", METHODS)
def test_sigkill_mid_pretraining_then_resume_is_bit_identical(tmp_path: Path, data_dir: Path, method: str):
    args = _tiny(method)
    ref_runs, runs = tmp_path / "ref", tmp_path / "runs"
    rc, out, err = finish(spawn(ref_runs, data_dir, *args, "--run-id", "ref"))
    assert rc == 0, err
    assert last_json(out)["status"] == "completed"

    proc = spawn(runs, data_dir, *args, "--run-id", "killed")
    run = runs / "killed"
    # Inside the second epoch, after the first epoch's checkpoint.
    wait_for(
        run,
        proc,
        lambda e: (
            e.get("event") == "step"
            and e.get("kind", "pretrain") == "pretrain"
            and "/pretrain/" in e.get("phase", "")
            and e["step"] == STEPS_PER_EPOCH + 3
        ),
    )
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL
    rc, out, err = finish(spawn(runs, data_dir, "resume", "killed", "--json", "-q"))
    assert rc == 0, err
    resumed = [e for e in read_events(run) if e.get("event") == "resume"]
    assert resumed and resumed[0]["epoch"] >= 1

    a, b = _final_pretrain_checkpoint(run), _final_pretrain_checkpoint(ref_runs / "ref")
    state, want = a["modules"]["model"], b["modules"]["model"]
    assert state.keys() == want.keys()
    for k, t in want.items():  # online and target weights, EMA step, queue and its pointer
        assert torch.equal(state[k], t), f"{method}: {k} differs"
    for pid, st in b["optimizer"]["state"].items():
        for name, t in st.items():
            if isinstance(t, torch.Tensor):
                assert torch.equal(a["optimizer"]["state"][pid][name], t)
    assert torch.equal(a["generator"], b["generator"]) and torch.equal(a["torch_rng"], b["torch_rng"])
    s = json.loads((run / "summary.json").read_text())
    r = json.loads((ref_runs / "ref" / "summary.json").read_text())
    assert [x["test_acc"] for x in s["results"]] == [x["test_acc"] for x in r["results"]]


@pytest.mark.parametrize(
    "setting, named",
    [
        ("moco.queue_size=5000", "moco.queue_size: 5000 is larger than the data (70 pretraining images)"),
        ("byol.ema_rate=1.5", "byol.ema_rate"),
        ("moco.ema_rate=-0.1", "moco.ema_rate"),
        ("barlow.proj_out_dim=0", "barlow.proj_out_dim"),
        ("vicreg.proj_hidden_dim=0", "vicreg.proj_hidden_dim"),
    ],
)
def test_bad_settings_one_line_exit_2_no_run_folder(run_cli, runs_dir: Path, setting: str, named: str):
    method = setting.split(".")[0]
    args = _tiny(method)
    p = run_cli(*args, "--set", setting)
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and named in lines[0] and "Traceback" not in p.stderr, p.stderr
    assert not runs_dir.exists() or not any(runs_dir.iterdir())


def test_moco_queue_smaller_than_a_batch_and_unregistered_method_refused(run_cli, runs_dir: Path):
    p = run_cli(*_tiny("moco"), "--set", "moco.queue_size=5")
    assert p.returncode == 2 and "moco.queue_size: 5 is smaller than a batch" in p.stderr, p.stderr
    p = run_cli(*_tiny("byol"), "--method", "swav")
    assert p.returncode == 2 and "swav" in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr
    p = run_cli(*_tiny("byol"), "--evaluation", "supervised")
    assert p.returncode == 2 and "supervised" in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert not runs_dir.exists() or not any(runs_dir.iterdir())
