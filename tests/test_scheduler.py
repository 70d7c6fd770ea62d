"""Independent phases side by side: the phase graph, worker processes whose
results are those of the sequential run bit for bit on the CPU, a killed worker, a SIGINT.

Every phase seeds itself from (seed, phase id), so the order and the process it runs in do not
change a number: the references below run in this process, one phase after the other."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import cli_env, last_json
from reliability_tools import finish, one_thread, read_events, spawn, wait_for  # noqa: F401 - one_thread: autouse
from test_reliability_input import cli

from ssltui.core.config import RunOptions
from ssltui.core.errors import ConfigError
from ssltui.core.graph import FEATUREMAPS, build_graph, count_phases, describe_phases
from ssltui.core.presets import resolve
from ssltui.core.store import RunDir
from ssltui.trainer.runner import Runner, worker_count

SMALL = ["data.synthetic_train_per_class=8", "data.synthetic_test_per_class=4", "runtime.eval_batch_size=64"]
# The paper study in miniature: two pretrainings, four evaluations that wait for them, one
# supervised phase, the feature-map step.
STUDY = dict(
    preset="paper-smoke",
    labels=[0.5],
    sets=SMALL
    + [
        "pretrain.epochs=1",
        "pretrain.batch_size=16",
        "supervised.epochs=3",
        "supervised.batch_size=8",
        "linear.epochs=3",
        "linear.batch_size=8",
        "semi.epochs=2",
        "semi.batch_size=8",
    ],
)
# Independent supervised phases long enough to be caught running (9 steps an epoch at 100%).
LONG = dict(
    preset="smoke",
    labels=[0.25, 0.5, 1.0],
    sets=SMALL + ["supervised.epochs=6", "supervised.batch_size=8", "runtime.featuremaps=false"],
)
TWO_LONG = {**LONG, "labels": [0.5, 1.0]}


def cli_args(spec: dict, *extra: str) -> list[str]:
    sets = [a for s in spec["sets"] for a in ("--set", s)]
    return [
        "run",
        "--preset",
        spec["preset"],
        "--data",
        "synthetic",
        "--device",
        "cpu",
        "--labels",
        ",".join(map(str, spec["labels"])),
        *sets,
        *extra,
    ]


def reference_results(spec: dict, runs: Path, data_dir: Path) -> dict:
    """The sequential run in this process (runtime.workers = 1): key -> (test_acc, val_acc)."""
    plan = resolve(spec["preset"], labels=spec["labels"], sets=spec["sets"] + ["runtime.workers=1"])
    run = RunDir(runs / "ref")
    run.path.mkdir(parents=True)
    summary = Runner(plan, run, RunOptions(data="synthetic", data_dir=data_dir, device="cpu")).execute()
    assert summary.status == "completed"
    return {r.key(): (r.test_acc, r.val_acc) for r in summary.results}


def results_of(run: Path) -> dict:
    s = json.loads((run / "summary.json").read_text())
    return {(r["method"], r["evaluation"], r["labels"], r["seed"]): (r["test_acc"], r["val_acc"]) for r in s["results"]}


def worker_pids(run: Path) -> dict[int, int]:
    """worker number -> pid, from the coordinator's log lines."""
    out = {}
    for e in read_events(run):
        m = re.match(r"worker (\d+) \(pid (\d+)", e.get("message", "")) if e.get("event") == "log" else None
        if m:
            out[int(m[1])] = int(m[2])
    return out


def running(run: Path) -> dict[str, dict]:
    """Phases started and not ended: phase -> its phase_start event."""
    out: dict[str, dict] = {}
    for e in read_events(run):
        if e.get("event") == "phase_start":
            out[e["phase"]] = e
        elif e.get("event") == "phase_end":
            out.pop(e["phase"], None)
    return out


# ---------------------------------------------------------------- the graph (no torch, no processes)


def test_paper_smoke_graph_one_pretraining_per_method_feeding_its_evaluations():
    plan = resolve("paper-smoke")
    graph = build_graph(plan)
    nodes = {n.name: n for n in graph.nodes}
    pre = {n.method: n for n in graph.nodes if n.kind == "pretrain"}
    assert sorted(pre) == ["rotnet", "simclr"]  # RotNet's linear and semi parts share one pretraining
    for n in graph.nodes:
        if n.kind in ("linear", "semi"):
            assert n.needs == (pre[n.method].name,)
        elif n.kind in ("supervised", "pretrain"):
            assert n.needs == ()
    assert sum(pre["rotnet"].name in n.needs for n in graph.nodes) == 5  # 2 linear, 2 semi, feature maps
    maps = nodes[FEATUREMAPS]
    assert [name for name, _ in maps.sources] == ["supervised", "simclr", "rotnet"]
    assert set(maps.needs) == {"p0-supervised/supervised/labels0.1/seed0", pre["simclr"].name, pre["rotnet"].name}
    # What can start at once: both pretrainings (the one that unblocks most first), both supervised.
    first = [n.name for n in graph.ready(set(), set())]
    assert first[:2] == [pre["rotnet"].name, pre["simclr"].name] and len(first) == 4
    done = {pre["simclr"].name}
    assert {n.name for n in graph.ready(done, set(first))} == {
        "p1-simclr/linear/labels0.01/seed0",
        "p1-simclr/linear/labels0.1/seed0",
    }
    assert count_phases(plan) == 10 and graph.width(graph.nodes) == 6
    assert describe_phases(plan)[2] == "simclr/pretrain/seed0 (1 epochs)"


def test_worker_count_auto_devices_and_what_can_run_at_once():
    study = build_graph(resolve("paper-smoke"))
    chain = build_graph(resolve("smoke", method="simclr", labels=[0.1]))  # pretraining -> one probe
    assert worker_count("auto", ["cpu"], study, study.nodes) == 1
    assert worker_count("auto", ["cuda:0", "cuda:1"], study, study.nodes) == 2
    assert worker_count(4, ["cuda:0"], study, study.nodes) == 4
    assert worker_count(8, ["cuda:0"], study, study.nodes) == 6  # never more than can run at once
    assert worker_count(2, ["cpu"], chain, chain.nodes) == 1


def test_dry_run_shows_what_waits_for_what_and_devices_are_checked_first(tmp_path: Path) -> None:
    code, out, err = cli("run", "--preset", "paper-smoke", "--data", "synthetic", "--dry-run")
    assert code == 0, err
    assert (
        "#   p3-rotnet/semi/labels0.1/seed0 (3 epochs x 1 steps = 3 steps, batch 64; decided by semi.epochs) "
        "after rotnet/pretrain/seed0\n"
    ) in out
    assert (
        "#   p0-supervised/supervised/labels0.1/seed0 (6 epochs x 1 steps = 6 steps, batch 64; decided by "
        "supervised.epochs)\n"
    ) in out
    code, out, _ = cli(
        "run", "--preset", "paper-smoke", "--data", "synthetic", "--devices", "cuda:0,cuda:1", "--dry-run", "--json"
    )
    graph = json.loads(out)["graph"]
    assert code == 0 and json.loads(out)["devices"] == ["cuda:0", "cuda:1"] and graph[-1]["node"] == FEATUREMAPS
    for args, words in [
        (["--devices", "cpu,gpu"], "--devices: 'gpu' is not one of"),
        (["--devices", "cpu", "--device", "cpu"], "--device and --devices"),
        (["--set", "runtime.workers=0"], "runtime.workers: 0 is not a whole number >= 1 or 'auto'"),
    ]:
        code, _, err = cli("run", "--preset", "smoke", "--data", "synthetic", *args, "--dry-run")
        assert code == 2 and words in err and len(err.strip().splitlines()) == 1, err
    # A missing device fails before any worker process starts.
    missing = "cuda:0" if not torch.cuda.is_available() else f"cuda:{torch.cuda.device_count()}"
    run = RunDir(tmp_path / "nodevice")
    run.path.mkdir()
    opts = RunOptions(data="synthetic", devices=["cpu", missing])
    with pytest.raises(ConfigError, match="CUDA device"):
        Runner(resolve("paper-smoke"), run, opts).execute()
    assert json.loads(run.summary_path.read_text())["status"] == "failed"


def test_progress_shows_concurrent_phases_with_their_worker():
    import io

    from ssltui.cli.progress import PlainProgress, RichProgress
    from ssltui.core.events import PhaseRef, PhaseStart, Step

    a, b = PhaseRef.evaluating(0, "supervised", "supervised", 0.5, 0), PhaseRef.pretraining("rotnet", 0, "ab" * 8)
    events = [
        PhaseStart(**a.model_dump(), epochs=2, steps_per_epoch=5, worker=1, device="cuda:0"),
        PhaseStart(**b.model_dump(), epochs=1, steps_per_epoch=9, worker=2, device="cuda:1"),
        Step(**a.model_dump(), epoch=0, step=3, loss=2.0, lr=0.1),
        Step(**b.model_dump(), epoch=0, step=7, loss=1.0, lr=0.1),
    ]
    rich = RichProgress(io.StringIO())
    for e in events:
        rich(e)
    rich.close()
    bars = {t.description: (t.completed, t.fields["status"].split()[0]) for t in rich.progress.tasks}
    # Both live, each its own bar, the worker leading its status (the label's end is cut at 80 columns).
    assert bars == {"supervised 50% s0": (3, "w1"), "rotnet pretrain s0": (7, "w2")}
    out = io.StringIO()
    plain = PlainProgress(out)
    for e in events:
        plain(e)
    assert "p0-supervised/supervised/labels0.5/seed0: 2 epochs x 5 steps on worker 1 (cuda:0)" in out.getvalue()
    assert "rotnet/pretrain/seed0/abababab: 1 epochs x 9 steps on worker 2 (cuda:1)" in out.getvalue()


# ---------------------------------------------------------------- worker processes


def test_two_workers_give_the_sequential_results_bit_for_bit(tmp_path: Path, data_dir: Path) -> None:
    want = reference_results(STUDY, tmp_path / "ref", data_dir)
    runs = tmp_path / "runs"
    rc, out, err = finish(
        spawn(runs, data_dir, *cli_args(STUDY, "--set", "runtime.workers=2", "--json", "--run-id", "two"))
    )
    assert rc == 0, err
    run = runs / "two"
    assert results_of(run) == want and len(want) == 4
    # In the plan's order, whichever finished first.
    assert [(r["method"], r["evaluation"]) for r in last_json(out)["results"]] == [
        ("supervised", "supervised"),
        ("simclr", "linear"),
        ("rotnet", "linear"),
        ("rotnet", "semi"),
    ]
    events = read_events(run)
    starts = [e for e in events if e.get("event") == "phase_start"]
    assert {e["worker"] for e in starts} == {1, 2} and all(e["device"] == "cpu" for e in starts)
    assert [e["phases"] for e in events if e.get("event") == "run_start"] == [6]
    # Side by side: some phase started while another was between its start and its end.
    open_phases, overlapped = set(), False
    for e in events:
        if e.get("event") == "phase_start":
            overlapped |= bool(open_phases)
            open_phases.add(e["phase"])
        elif e.get("event") == "phase_end":
            open_phases.discard(e["phase"])
    assert overlapped
    # Plain progress names the worker of each phase and the phase of each epoch line.
    assert "on worker 1 (cpu)" in err and "on worker 2 (cpu)" in err
    assert re.search(r"p3-rotnet/semi/labels0\.5/seed0: epoch 2/2 ", err)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["device"] == "cpu (1 threads), 2 workers" and summary["memory"]["workers_peak_rss_mb"] > 0
    assert json.loads((run / "featuremaps.json").read_text())["models"][0]["name"] == "supervised"


@pytest.mark.slow
def test_killed_worker_fails_its_phase_and_resume_finishes_only_the_rest(tmp_path: Path, data_dir: Path) -> None:
    want = reference_results(LONG, tmp_path / "ref", data_dir)
    runs, run = tmp_path / "runs", tmp_path / "runs" / "kill"
    proc = spawn(runs, data_dir, *cli_args(LONG, "--set", "runtime.workers=2", "--json", "-q", "--run-id", "kill"))
    # The 100% phase starts once the first of the others is done; kill its worker in its 3rd epoch.
    hit = wait_for(run, proc, lambda e: e.get("event") == "epoch" and e.get("labels") == 1.0 and e["epoch"] == 2)
    victim = running(run)[hit["phase"]]["worker"]
    os.kill(worker_pids(run)[victim], signal.SIGKILL)
    rc, out, err = finish(proc)
    assert rc == 1, err
    assert len(err.strip().splitlines()) == 1 and "died (killed by SIGKILL)" in err and hit["phase"] in err, err
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["phases"][hit["phase"]]["status"] == "failed"
    finished = {p for p, rec in summary["phases"].items() if rec["status"] == "done"}
    assert finished  # the first phase ended before the kill
    n_events = len(read_events(run))

    rc, out, err = finish(spawn(runs, data_dir, "resume", "kill", "--json", "-q"))
    assert rc == 0, err
    assert results_of(run) == want
    later = read_events(run)[n_events:]
    restarted = {e["phase"] for e in later if e.get("event") == "phase_start"}
    assert restarted and not restarted & finished
    resumed = {e["phase"]: e["epoch"] for e in later if e.get("event") == "resume"}
    assert resumed.get(hit["phase"], 0) >= 1  # from its last epoch checkpoint, not from scratch


def test_sigint_stops_both_workers_at_a_checkpoint_exit_130(tmp_path: Path, data_dir: Path) -> None:
    runs, run = tmp_path / "runs", tmp_path / "runs" / "int"
    proc = spawn(runs, data_dir, *cli_args(TWO_LONG, "--set", "runtime.workers=2", "--json", "-q", "--run-id", "int"))
    stepping: set[str] = set()

    def both_stepping(e: dict) -> bool:
        if e.get("event") == "step":
            stepping.add(e["phase"])
        return len(stepping) == 2

    wait_for(run, proc, both_stepping)
    proc.send_signal(signal.SIGINT)  # the coordinator only: it passes the stop on
    rc, out, err = finish(proc)
    assert rc == 130, err
    assert "Traceback" not in err and last_json(out)["status"] == "interrupted"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "interrupted" and "2 running phase(s) saved a checkpoint" in summary["error"]
    assert {p for p, rec in summary["phases"].items() if rec["status"] == "interrupted"} == stepping
    for phase in stepping:
        ck = torch.load(run / "checkpoints" / (phase.replace("/", "__") + ".pt"), weights_only=True)
        assert (ck["epoch"], ck["step_in_epoch"]) > (0, 0) and ck["epoch"] < 6
    assert not any(e.get("event") == "result" for e in read_events(run))


def test_workers_change_nothing_but_time_at_default_threads(tmp_path: Path, data_dir: Path) -> None:
    """Not pinned to one thread: the run's thread count (here two, a 2-core machine's default) is
    what every worker uses, so the sums run in the sequential run's order."""
    runs = tmp_path / "runs"
    env = {"OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2"}
    # Batches large enough for two threads to split the sums: one thread gives other accuracies.
    spec = {
        **TWO_LONG,
        "sets": [
            "data.synthetic_train_per_class=20",
            "data.synthetic_test_per_class=10",
            "supervised.epochs=2",
            "supervised.batch_size=32",
            "runtime.featuremaps=false",
        ],
    }
    for name, workers in (("seq", 1), ("two", 2)):
        rc, _, err = finish(
            spawn(
                runs, data_dir, *cli_args(spec, "--set", f"runtime.workers={workers}", "-q", "--run-id", name), env=env
            ),
            timeout=480,
        )
        assert rc == 0, err
    want = results_of(runs / "seq")
    assert len(want) == 2 and results_of(runs / "two") == want
    for name in ("seq", "two"):
        assert json.loads((runs / name / "summary.json").read_text())["device"].startswith("cpu (2 threads)")


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def test_ctrl_c_while_workers_start_is_one_clean_stop(tmp_path: Path, data_dir: Path) -> None:
    """Ctrl-C reaches the whole process group, workers still importing torch included."""
    runs = tmp_path / "runs"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ssltui",
            *cli_args(TWO_LONG, "--set", "runtime.workers=2", "--json", "-q", "--run-id", "start"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env=cli_env(runs, data_dir, OMP_NUM_THREADS="1"),
        stdin=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while not [c for c in _children(proc.pid) if "spawn_main" in _cmdline(c)]:
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.02)
    time.sleep(0.3)  # the workers are importing torch
    os.killpg(proc.pid, signal.SIGINT)
    rc, out, err = finish(proc, timeout=120)
    assert rc == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert last_json(out)["status"] == "interrupted"


def test_one_sigterm_stops_a_study_whose_worker_is_sigstopped(tmp_path: Path, data_dir: Path) -> None:
    """A worker that does not answer (SIGSTOP) is killed once the stop limit has passed; the
    run ends interrupted, the other worker's phase saved at a checkpoint."""
    runs, run = tmp_path / "runs", tmp_path / "runs" / "frozen"
    proc = spawn(
        runs,
        data_dir,
        *cli_args(TWO_LONG, "--set", "runtime.workers=2", "--json", "-q", "--run-id", "frozen"),
        env={"SSLTUI_WORKER_STOP_SECONDS": "3"},
    )
    stepping: dict[str, int] = {}

    def both_stepping(e: dict) -> bool:
        if e.get("event") == "step":
            stepping[e["phase"]] = e
        return len(stepping) == 2

    wait_for(run, proc, both_stepping)
    pids = worker_pids(run)
    frozen = pids[1]
    os.kill(frozen, signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        rc, out, err = finish(proc, timeout=60)
        took = time.monotonic() - t0
    finally:
        for pid in (*pids.values(), proc.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    assert rc == 130, err
    assert took < 30, took
    assert "Traceback" not in err and last_json(out)["status"] == "interrupted"
    assert f"worker 1 (pid {frozen}, cpu) did not stop within 3 s and was killed" in err, err
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "interrupted"
    assert {p for p, rec in summary["phases"].items() if rec["status"] == "interrupted"} == set(stepping)
    assert not Path(f"/proc/{frozen}").exists() or "Z" in Path(f"/proc/{frozen}/stat").read_text().split()[2]
