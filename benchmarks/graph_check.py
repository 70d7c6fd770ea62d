"""The CUDA-graph checks, sized for one device call (`benchmarks/gpu_check.sh` runs it).

    python -m benchmarks.graph_check --device cuda --data folder:.data/cifar10-jpeg.tar.gz --out $OUT
    python -m benchmarks.graph_check --cpu-rehearsal --out /tmp/rehearsal   # all of it but the GPU

1. timings: the engine's real steps (SimCLR, RotNet, the supervised baseline) at 512 and 2,048
   views, eager (`EagerSteps`, as with runtime.cuda_graphs=off) against graphed
   (`GraphedSteps`, as with auto): milliseconds a step, of which the host's share (the time to
   enqueue the steps), and views a second.
2. agreement: a few hundred steps from one seed, graphed and eager, beside eager from another
   seed (the seed noise); the phase generator's state after them must be the same byte for
   byte (a graph that did not advance it would repeat its random draws).
3. fallback: a step that reads a value back (`.item()`) cannot be captured; it must cost one
   log line and eager steps, and training goes on.
4. resume: a graphed phase stopped half-way and resumed (a fresh capture) ends as near the
   uninterrupted one as another seed does.

With --cpu-rehearsal every section runs on the CPU at toy sizes, with a backend that keeps the
step at 'capture' and calls it at 'replay' (`cudagraph.CallGraphs`), and a failing one for
section 3: every line of this script runs, only the device is missing. Writes
graph_check.json to --out and prints a summary table last.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.common import load_data, sync
from benchmarks.engine_step import engine_step

METHODS = ("simclr", "rotnet", "supervised")
VIEWS_PER_ITEM = {"simclr": 2, "rotnet": 4, "supervised": 1}


class FailingCapture:
    """The rehearsal's stand-in for a step CUDA cannot capture."""

    def side_stream(self):
        import contextlib

        return contextlib.nullcontext()

    def capture(self, fn, generators):
        raise RuntimeError("CUDA error: operation not permitted when stream is capturing (rehearsal)")

    def synchronize(self) -> None:
        pass


def settings(args: argparse.Namespace):
    """The device settings a run gets (`pick_device`); in the rehearsal, the CPU with CallGraphs."""
    from ssltui.core.config import RuntimeConfig
    from ssltui.trainer.cudagraph import CallGraphs
    from ssltui.trainer.device import pick_device

    dev = pick_device(args.device, RuntimeConfig())
    if args.cpu_rehearsal:
        dev.graphs = CallGraphs()
    if dev.graphs is None:
        raise SystemExit(f"no graph backend on {args.device}: use --device cuda or --cpu-rehearsal")
    return dev


def stepper(method: str, data, dev, views: int, seed: int, graphed: bool, total: int, backend=None, log=print):
    """The engine's step of `method` at `views` network inputs, run by the loop's own step runner."""
    batch = views // VIEWS_PER_ITEM[method]
    es = engine_step(method, data.bundle, dev, batch, seed)
    run = es.runner(total, batch, graphs=graphed, backend=backend, log=log)
    return es, run, run.losses


def positions(n_items: int, batch: int, count: int, seed: int, device: torch.device) -> list[torch.Tensor]:
    gen = torch.Generator(device=device).manual_seed(seed)
    out: list[torch.Tensor] = []
    while len(out) < count:
        perm = torch.randperm(n_items, device=device, generator=gen)
        out += [perm[i * batch : (i + 1) * batch] for i in range(n_items // batch)]
    return out[:count]


# ---------------------------------------------------------------- 1. timings


def time_method(method: str, data, dev, views: int, steps: int, reps: int) -> dict:
    out = {}
    warm = 3 + 2  # the graphed runner's warm-up and capture fall inside these untimed steps
    total = warm + steps * reps
    for graphed in (False, True):
        es, run, _ = stepper(method, data, dev, views, 0, graphed, total)
        es.model.train()
        pos = positions(es.n_items, views // VIEWS_PER_ITEM[method], total, 1, dev.device)
        for g in range(warm):
            run(g, pos[g])
        sync(dev.device)
        per_step, host = [], []
        for r in range(reps):
            t0 = time.perf_counter()
            for g in range(warm + r * steps, warm + (r + 1) * steps):
                run(g, pos[g])
            t1 = time.perf_counter()
            sync(dev.device)
            t2 = time.perf_counter()
            per_step.append((t2 - t0) / steps)
            host.append((t1 - t0) / steps)
        ms = 1000 * statistics.median(per_step)
        out["graphed" if graphed else "eager"] = {
            "ms_per_step": round(ms, 3),
            "host_ms_per_step": round(1000 * statistics.median(host), 3),
            "views_per_s": round(views / (ms / 1000), 1),
            "mode": getattr(run, "mode", "eager"),
            "check": getattr(run, "check", None),
        }
        del es, run
    out["speedup"] = round(out["eager"]["ms_per_step"] / out["graphed"]["ms_per_step"], 2)
    return out


# ---------------------------------------------------------------- 2. agreement


def train_curve(method: str, data, dev, views: int, steps: int, seed: int, graphed: bool) -> dict:
    es, run, losses = stepper(method, data, dev, views, seed, graphed, steps)
    es.model.train()
    pos = positions(es.n_items, views // VIEWS_PER_ITEM[method], steps, 100 + seed, dev.device)
    for g in range(steps):
        run(g, pos[g])
    sync(dev.device)
    weights = torch.cat([p.detach().float().flatten() for p in es.model.parameters()])
    return {
        "losses": losses.tolist(),
        "generator": es.generator.get_state(),
        "weights": weights,
        "mode": getattr(run, "mode", "eager"),
    }


def agreement(method: str, data, dev, views: int, steps: int) -> dict:
    graphed = train_curve(method, data, dev, views, steps, 0, True)
    eager = train_curve(method, data, dev, views, steps, 0, False)
    other = train_curve(method, data, dev, views, steps, 1, False)
    tail = max(1, steps // 6)

    def late(c: dict) -> float:
        return statistics.fmean(c["losses"][-tail:])

    def apart(a: dict, b: dict) -> float:
        return float((a["weights"] - b["weights"]).norm() / b["weights"].norm())

    first_apart = next(
        (i for i, (g, e) in enumerate(zip(graphed["losses"], eager["losses"])) if abs(g - e) > 1e-3 * max(1.0, abs(e))),
        None,
    )
    noise = abs(late(other) - late(eager))
    return {
        "steps": steps,
        "views": views,
        "mode": graphed["mode"],
        "late_loss": {
            "graphed": round(late(graphed), 5),
            "eager": round(late(eager), 5),
            "eager_other_seed": round(late(other), 5),
        },
        "first_step_losses_apart": first_apart,
        "weights_apart": {
            "graphed_vs_eager": round(apart(graphed, eager), 6),
            "other_seed_vs_eager": round(apart(other, eager), 6),
        },
        "generator_state_equal": bool(torch.equal(graphed["generator"], eager["generator"])),
        "ok": bool(
            graphed["mode"] == "graph"
            and abs(late(graphed) - late(eager)) <= max(noise, 1e-3)
            and torch.equal(graphed["generator"], eager["generator"])
        ),
    }


# ---------------------------------------------------------------- 3. fallback


def fallback(data, dev, views: int, steps: int, rehearsal: bool) -> dict:
    lines: list[str] = []
    es, run, losses = stepper(
        "supervised",
        data,
        dev,
        views,
        0,
        True,
        steps,
        backend=FailingCapture() if rehearsal else None,
        log=lines.append,
    )
    # The runner holds the step function: give it one that reads the loss back each step.
    run.step_fn = run.eager.step_fn = lambda pos: _read_back(es.loss(pos))
    es.model.train()
    pos = positions(es.n_items, views, steps, 2, dev.device)
    for g in range(steps):
        run(g, pos[g])
    values = losses.tolist()
    return {
        "mode": run.mode,
        "log_lines": lines,
        "steps": steps,
        "losses_finite": all(v == v and abs(v) != float("inf") for v in values),
        "ok": run.mode == "eager" and len(lines) == 1 and all(abs(v) < 1e6 for v in values),
    }


def _read_back(loss: torch.Tensor) -> torch.Tensor:
    if loss.item() != loss.item():  # a host read: not allowed while a CUDA graph is captured
        raise FloatingPointError("nan loss")
    return loss


# ---------------------------------------------------------------- 4. resume


def resume(data, dev, epochs: int, batch: int, n_items: int) -> dict:
    from ssltui.core.errors import RunInterrupted

    with tempfile.TemporaryDirectory() as tmp:
        whole = ScratchPhase(Path(tmp) / "whole", data, dev, epochs, batch, n_items, 0).run()
        other = ScratchPhase(Path(tmp) / "other", data, dev, epochs, batch, n_items, 1).run()
        half = epochs * (n_items // batch) // 2
        cut = ScratchPhase(Path(tmp) / "cut", data, dev, epochs, batch, n_items, 0, stop_after=half)
        try:
            cut.run()
            stopped = False
        except RunInterrupted:
            stopped = True
        again = ScratchPhase(Path(tmp) / "cut", data, dev, epochs, batch, n_items, 0)
        resumed = again.run()
    noise = abs(other["loss"] - whole["loss"])
    return {
        "epochs": epochs,
        "stopped_at_step": half,
        "stopped": stopped,
        "mode_after_resume": again.mode,
        "last_epoch_loss": {
            "uninterrupted": round(whole["loss"], 5),
            "resumed": round(resumed["loss"], 5),
            "other_seed": round(other["loss"], 5),
        },
        "ok": bool(stopped and again.mode == "graph" and abs(resumed["loss"] - whole["loss"]) <= max(noise, 1e-3)),
    }


class ScratchPhase:
    """A supervised phase through the engine's loop (`loop.Phase`) in a scratch run folder."""

    def __init__(
        self, folder: Path, data, dev, epochs: int, batch: int, n_items: int, seed: int, stop_after: int | None = None
    ):
        from ssltui.core.config import ClassifierConfig
        from ssltui.core.events import PhaseRef
        from ssltui.core.store import RunDir
        from ssltui.trainer.loop import Phase, RunContext
        from ssltui.trainer.losses import classifier_loss
        from ssltui.trainer.models.resnet import Classifier, ResNet20
        from ssltui.trainer.optim import build_optimizer

        folder.mkdir(parents=True, exist_ok=True)
        ctx = RunContext(RunDir(folder), dev)
        ref = PhaseRef(phase=f"check/resume/seed{seed}", kind="supervised", method="supervised", seed=seed)
        gen = ctx.generator(seed, ref.phase)
        bundle = data.bundle
        self.model = dev.prepare(Classifier(ResNet20(), bundle.num_classes))
        cfg = ClassifierConfig(epochs=epochs, batch_size=batch, lr=0.1, nesterov=True, schedule="cosine")
        idx = bundle.train_idx[:n_items]
        xs, ys = bundle.train_x[idx], bundle.train_y[idx]
        loss = classifier_loss(self.model, xs, bundle, dev, gen, lambda pos: ys[pos], True)
        calls = {"n": 0}

        def step(pos: torch.Tensor) -> torch.Tensor:
            calls["n"] += 1  # calls, not steps: the capture's check calls it too (no matter here)
            if stop_after is not None and calls["n"] == stop_after:
                ctx.request_stop("check")
            return loss(pos)

        self.phase = Phase(ctx, ref, cfg, n_items, {"model": self.model}, build_optimizer(cfg, [self.model]), gen)
        self.step = step

    def run(self) -> dict:
        return self.phase.run(self.step, self.model.train)

    @property
    def mode(self) -> str:
        return getattr(self.phase.steps, "mode", "eager")


# ---------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--data", default="cifar10", help="synthetic | cifar10 | folder:PATH")
    p.add_argument("--out", type=Path, default=Path("gpu-out"))
    p.add_argument("--views", default="512,2048", help="network inputs per step to time")
    p.add_argument("--steps", type=int, default=40, help="timed steps per repetition")
    p.add_argument("--reps", type=int, default=3, help="repetitions (the median is reported)")
    p.add_argument("--agree-steps", type=int, default=300, help="steps of the agreement runs")
    p.add_argument("--cpu-rehearsal", action="store_true", help="everything on the CPU at toy sizes")
    args = p.parse_args(argv)
    if args.cpu_rehearsal:
        args.device, args.data, args.views, args.steps, args.reps, args.agree_steps = (
            "cpu",
            "synthetic",
            "8,16",
            3,
            2,
            12,
        )
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    dev = settings(args)
    data = load_data(args.data, dev.device)
    small = args.cpu_rehearsal
    report: dict = {
        "device": dev.describe(),
        "torch": torch.__version__,
        "data": data.source,
        "rehearsal": small,
        "timings": {},
        "agreement": {},
    }
    t0 = time.perf_counter()
    for method in METHODS:
        for views in (int(v) for v in args.views.split(",")):
            report["timings"][f"{method}@{views}"] = time_method(method, data, dev, views, args.steps, args.reps)
            _save(args.out, report)
    for method in ("simclr", "rotnet"):
        report["agreement"][method] = agreement(method, data, dev, 16 if small else 512, args.agree_steps)
        _save(args.out, report)
    report["fallback"] = fallback(data, dev, 8 if small else 256, 12 if small else 30, small)
    report["resume"] = resume(data, dev, 4, 8 if small else 128, 48 if small else 5000)
    report["seconds"] = round(time.perf_counter() - t0, 1)
    _save(args.out, report)
    print_summary(report)
    return (
        0
        if all(report[k]["ok"] for k in ("fallback", "resume")) and all(a["ok"] for a in report["agreement"].values())
        else 1
    )


def _save(out: Path, report: dict) -> None:
    (out / "graph_check.json").write_text(json.dumps(report, indent=1))


def print_summary(report: dict) -> None:
    print(
        f"graph check on {report['device']}, torch {report['torch']}, {report['data']}"
        f"{' (CPU REHEARSAL: no figure here is a GPU measurement)' if report['rehearsal'] else ''}"
    )
    print(
        f"  {'step':16s} {'eager ms':>9s} {'(host)':>8s} {'graphed ms':>11s} {'(host)':>8s} {'x':>6s} "
        f"{'views/s graphed':>16s}"
    )
    for name, t in report["timings"].items():
        e, g = t["eager"], t["graphed"]
        print(
            f"  {name:16s} {e['ms_per_step']:9.3f} {e['host_ms_per_step']:8.3f} {g['ms_per_step']:11.3f} "
            f"{g['host_ms_per_step']:8.3f} {t['speedup']:6.2f} {g['views_per_s']:16.0f}  {g['mode']}"
        )
    for method, a in report["agreement"].items():
        print(
            f"  agreement {method}: {a['steps']} steps, late loss graphed {a['late_loss']['graphed']} eager "
            f"{a['late_loss']['eager']} other seed {a['late_loss']['eager_other_seed']}; weights apart "
            f"{a['weights_apart']}; generator equal {a['generator_state_equal']}; ok {a['ok']}"
        )
    f = report["fallback"]
    print(f"  fallback: mode {f['mode']}, {len(f['log_lines'])} log line(s) {f['log_lines']}; ok {f['ok']}")
    r = report["resume"]
    print(
        f"  resume: stopped {r['stopped']} at call {r['stopped_at_step']}, mode after {r['mode_after_resume']}, "
        f"last-epoch loss {r['last_epoch_loss']}; ok {r['ok']}"
    )
    print(f"  {report['seconds']} s")


if __name__ == "__main__":
    sys.exit(main())
