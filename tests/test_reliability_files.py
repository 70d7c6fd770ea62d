"""Files from elsewhere: safe loading, torn metrics, damaged summaries, concurrent runs."""

from __future__ import annotations

import builtins
import io
import json
import pickle
import re
from pathlib import Path

import pytest
import torch
from conftest import REPO, last_json
from reliability_tools import PHASE, TINY, finish, spawn

from ssltui.core.errors import ConfigError
from ssltui.core.events import Epoch
from ssltui.core.store import RunDir, RunStore, read_jsonl
from ssltui.trainer.checkpoint import load_checkpoint, save_checkpoint

# ---------------------------------------------------------------- torch.load is always safe


def test_every_torch_load_uses_weights_only() -> None:
    calls = []
    for path in (REPO / "ssltui").rglob("*.py"):
        text = path.read_text()
        for m in re.finditer(r"torch\.load\(", text):
            depth, i = 1, m.end()
            while depth:  # the whole call, across lines
                depth += {"(": 1, ")": -1}.get(text[i], 0)
                i += 1
            calls.append((path, text[m.start() : i]))
        assert not re.search(r"\bpickle\.loads?\(|allow_pickle\s*=\s*True", text), path
    assert calls, "no torch.load found: the check looks in the wrong place"
    for path, call in calls:
        assert "weights_only=True" in call, f"{path}: {call}"


class _Payload:
    """Unpickling this calls open(marker, 'w'): code from a file, if a loader runs it."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return builtins.open, (str(self.marker), "w")


def _bad_files(tmp: Path, marker: Path) -> dict[str, Path]:
    files = {}
    files["pickle-with-code"] = tmp / "raw.pt"
    files["pickle-with-code"].write_bytes(pickle.dumps({"format": "ssltui-checkpoint", "x": _Payload(marker)}))
    files["torch-save-with-code"] = tmp / "zip.pt"
    torch.save(
        {"format": "ssltui-checkpoint", "version": 1, "kind": "phase", "x": _Payload(marker)},
        files["torch-save-with-code"],
    )
    files["foreign-state-dict"] = tmp / "foreign.pt"
    torch.save(torch.nn.Linear(3, 2).state_dict(), files["foreign-state-dict"])
    files["not-torch"] = tmp / "text.pt"
    files["not-torch"].write_text("hello\n")
    files["truncated"] = tmp / "half.pt"
    buf = io.BytesIO()
    torch.save({"format": "ssltui-checkpoint", "version": 1, "w": torch.zeros(1000)}, buf)
    files["truncated"].write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    return files


def test_foreign_or_malicious_files_are_refused_in_one_line(tmp_path: Path) -> None:
    marker = tmp_path / "PWNED"
    for name, path in _bad_files(tmp_path, marker).items():
        with pytest.raises(ConfigError) as exc:
            load_checkpoint(path, kind="phase")
        assert str(path) in exc.value.message and "\n" not in exc.value.message, name
    assert not marker.exists(), "a pickle in a checkpoint ran code"
    # Our own format round-trips (so the refusals above are not refusing everything).
    ok = tmp_path / "ok.pt"
    save_checkpoint(ok, {"kind": "phase", "w": torch.arange(3)})
    assert torch.equal(load_checkpoint(ok, kind="phase")["w"], torch.arange(3))


def _hand_made_run(runs: Path, name: str) -> Path:
    """A failed run's folder as `ssltui run` leaves it, without spending time training."""
    from ssltui.core.config import RunOptions
    from ssltui.core.plan import plan_to_toml
    from ssltui.core.presets import resolve

    run = runs / name
    (run / "checkpoints").mkdir(parents=True)
    i = TINY.index("--set")
    sets = [TINY[j + 1] for j in range(i, len(TINY), 2)]
    plan = resolve("smoke", labels=[1.0], seeds=[0], sets=sets)
    (run / "config.toml").write_text(plan_to_toml(plan, RunOptions(data="synthetic", device="cpu")))
    (run / "summary.json").write_text(json.dumps({"status": "failed", "results": [], "phases": {}}))
    return run


def _plant(ck: Path, kind: str, marker: Path) -> str:
    """Put a checkpoint that is not ours where a phase's checkpoint goes; return the refusal's words."""
    if kind == "pickle-with-code":
        torch.save({"format": "ssltui-checkpoint", "version": 1, "kind": "phase", "x": _Payload(marker)}, ck)
        return "not a loadable ssltui checkpoint"
    if kind == "wrong-keys":
        save_checkpoint(ck, {"kind": "phase", "phase": PHASE, "weights": {}})
        return "missing"
    # the right keys, but a model that is not ResNet-20 with a 10-way head
    save_checkpoint(
        ck,
        {
            "kind": "phase",
            "phase": PHASE,
            "epoch": 1,
            "step_in_epoch": 0,
            "total_steps": 42,
            "modules": {"model": torch.nn.Linear(4, 2).state_dict()},
            "optimizer": {},
            "generator": torch.zeros(1),
            "torch_rng": torch.zeros(1),
        },
    )
    return "weights do not fit this model"


def test_resume_refuses_a_planted_pickle_with_one_line_exit_2(tmp_path: Path, data_dir: Path) -> None:
    runs = tmp_path / "runs"
    run = _hand_made_run(runs, "planted")
    marker = tmp_path / "PWNED"
    ck = run / "checkpoints" / (PHASE.replace("/", "__") + ".pt")
    expect = _plant(ck, "pickle-with-code", marker)
    rc, out, err = finish(spawn(runs, data_dir, "resume", "planted", "--json", "-q"))
    assert rc == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and str(ck) in lines[0] and expect in lines[0], err
    assert not marker.exists()
    assert json.loads((run / "summary.json").read_text())["status"] == "failed"


@pytest.mark.parametrize("kind", ["wrong-keys", "other-architecture"])
def test_resume_refuses_a_foreign_checkpoint(tmp_path: Path, data_dir: Path, kind: str) -> None:
    from ssltui.core.plan import plan_from_toml
    from ssltui.trainer.runner import Runner

    run = RunDir(_hand_made_run(tmp_path / "runs", "planted"))
    ck = run.checkpoints_dir / (PHASE.replace("/", "__") + ".pt")
    expect = _plant(ck, kind, tmp_path / "PWNED")
    plan, opts = plan_from_toml(run)
    opts.data_dir = data_dir
    with pytest.raises(ConfigError) as exc:
        Runner(plan, run, opts).execute(resume=True)
    assert str(ck) in exc.value.message and expect in exc.value.message
    assert run.info().status == "failed"


# ---------------------------------------------------------------- torn and damaged files


def test_truncated_metrics_still_read_and_are_tidied_before_appending(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "r")
    run.path.mkdir()

    def epoch(n: int) -> Epoch:
        return Epoch(phase="p", kind="supervised", method="supervised", epoch=n, epochs=3, step=n, loss=1.0, lr=0.1)

    run.append_event(epoch(1))
    run.append_event(epoch(2))
    with open(run.metrics_path, "ab") as fh:
        fh.write(b'{"event": "epoch", "epo')  # killed mid-write
    assert [e.epoch for e in run.read_events()] == [1, 2]
    run.tidy_after_crash()
    run.append_event(epoch(3))
    assert [e["epoch"] for e in read_jsonl(run.metrics_path)] == [1, 2, 3]


def _summary(**over) -> dict:
    base = {
        "run_id": "x",
        "preset": "smoke",
        "status": "completed",
        "methods": ["supervised"],
        "evaluations": ["supervised"],
        "labels": [0.1],
        "seeds": [0],
        "started": 1.0,
        "ended": 2.0,
        "error": None,
        "results": [
            {
                "method": "supervised",
                "evaluation": "supervised",
                "labels": 0.1,
                "seed": 0,
                "test_acc": 0.5,
                "val_acc": 0.4,
            }
        ],
    }
    return {**base, **over}


def test_damaged_summaries_are_listed_as_damaged(run_cli, runs_dir: Path) -> None:
    damaged = {
        "cut": json.dumps(_summary())[:40],
        "binary": "\x00\xff garbage",
        "list": "[1, 2]",
        "types": json.dumps(_summary(status=5)),
        "results": json.dumps(_summary(results=["not a result"])),
        "started": json.dumps(_summary(started="yesterday")),
        "acc": json.dumps(
            _summary(results=[{"method": "m", "evaluation": "e", "labels": 0.1, "seed": 0, "test_acc": "high"}])
        ),
    }
    for name, text in {**damaged, "good": json.dumps(_summary())}.items():
        (runs_dir / name).mkdir(parents=True)
        (runs_dir / name / "summary.json").write_text(text, errors="surrogateescape")
    # A torn metrics file in the good run must not disturb `show` either.
    (runs_dir / "good" / "metrics.jsonl").write_text(
        '{"event":"epoch","phase":"p","kind":"supervised","method":"supervised","epoch":1,"epochs":2,'
        '"step":3,"loss":1.0,"lr":0.1}\n{"event":"epoch","loss":"?"}\n{"ev'
    )

    r = run_cli("runs", "--json")
    assert r.returncode == 0, r.stderr
    status = {i["run_id"]: i["status"] for i in json.loads(r.stdout)}
    assert status == {**{k: "damaged" for k in damaged}, "good": "completed"}
    r = run_cli("runs")
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert r.stdout.count("damaged") == len(damaged)
    r = run_cli("show", "good", "--json")
    # The whole epoch event is read; the damaged one and the torn last line are skipped.
    assert r.returncode == 0 and len(json.loads(r.stdout)["epochs"]) == 1, r.stderr
    r = run_cli("show", "good")
    assert r.returncode == 0 and "loss" in r.stdout and not r.stderr, r.stderr
    r = run_cli("show", "types")
    assert r.returncode == 0 and "damaged" in r.stdout, r.stderr


# ---------------------------------------------------------------- concurrent processes

QUICK = [a if a != "supervised.epochs=6" else "supervised.epochs=1" for a in TINY]


def test_two_runs_at_once_never_share_an_id_or_files(tmp_path: Path, data_dir: Path) -> None:
    runs = tmp_path / "runs"
    procs = [spawn(runs, data_dir, *QUICK) for _ in range(2)]
    outs = [finish(p) for p in procs]
    assert all(rc == 0 for rc, _, _ in outs), [e for _, _, e in outs]
    ids = [last_json(out)["run_id"] for _, out, _ in outs]
    assert len(set(ids)) == 2
    for rid in ids:
        run = runs / rid
        assert json.loads((run / "summary.json").read_text())["run_id"] == rid
        starts = [e for e in read_jsonl(run / "metrics.jsonl") if e.get("event") == "run_start"]
        assert [e["run_id"] for e in starts] == [rid]


def test_two_runs_with_one_run_id_one_is_refused(tmp_path: Path, data_dir: Path) -> None:
    runs = tmp_path / "runs"
    procs = [spawn(runs, data_dir, *QUICK, "--run-id", "same") for _ in range(2)]
    outs = sorted(finish(p) for p in procs)
    assert [rc for rc, _, _ in outs] == [0, 2], outs
    err = outs[1][2].strip().splitlines()
    assert len(err) == 1 and "same" in err[0] and ("already" in err[0]), err
    starts = [e for e in read_jsonl(runs / "same" / "metrics.jsonl") if e.get("event") == "run_start"]
    assert len(starts) == 1
    assert json.loads((runs / "same" / "summary.json").read_text())["status"] == "completed"


def test_store_create_gives_distinct_ids(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    ids = {store.create("smoke").id for _ in range(200)}
    assert len(ids) == 200
