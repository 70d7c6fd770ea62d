"""Fixed, well-formed run folders for the TUI's snapshot and tmux tests.

Everything is generated from formulas with fixed timestamps (no randomness, no clock), so
a screen drawn from these runs is the same on every machine (with TZ=UTC).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

T0 = 1767268800.0  # 2026-01-01 12:00:00 UTC

STUDY_ID = "20260101-120000-paper-a1b2c3"
SMOKE_ID = "20260102-090000-smoke-d4e5f6"
FAILED_ID = "20260102-100000-supervised-0a0b0c"

# (method, evaluation, labels, seed) -> test accuracy
STUDY_RESULTS = {
    ("supervised", "supervised", 0.01, 0): 0.4712,
    ("supervised", "supervised", 0.01, 1): 0.4655,
    ("supervised", "supervised", 0.1, 0): 0.7930,
    ("supervised", "supervised", 0.1, 1): 0.8012,
    ("simclr", "linear", 0.01, 0): 0.6021,
    ("simclr", "linear", 0.01, 1): 0.5988,
    ("simclr", "linear", 0.1, 0): 0.6802,
    ("simclr", "linear", 0.1, 1): 0.6790,
    ("rotnet", "linear", 0.01, 0): 0.4420,
    ("rotnet", "linear", 0.01, 1): 0.4501,
    ("rotnet", "linear", 0.1, 0): 0.5411,
    ("rotnet", "linear", 0.1, 1): 0.5370,
    ("rotnet", "semi", 0.01, 0): 0.6655,
    ("rotnet", "semi", 0.01, 1): 0.6702,
    ("rotnet", "semi", 0.1, 0): 0.8230,
    ("rotnet", "semi", 0.1, 1): 0.8194,
}


def _write(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=2) + "\n")


def _jsonl(path: Path, events: list[dict]) -> None:
    path.write_text("".join(json.dumps(e, separators=(",", ":")) + "\n" for e in events))


def _phase_events(
    t: float,
    phase: str,
    kind: str,
    method: str,
    seed: int,
    epochs: int,
    spe: int,
    acc_key: str | None,
    labels: float | None = None,
    stop_after: int | None = None,
    lr0: float = 0.1,
    scale: float = 1.0,
) -> tuple[list[dict], float]:
    """A phase's events; `scale` sets its loss and accuracy curves apart from the others'."""
    fields = {"phase": phase, "kind": kind, "method": method, "seed": seed}
    if labels is not None:
        fields |= {"labels": labels, "evaluation": kind}
    ev = [
        {
            "t": t,
            "event": "phase_start",
            **fields,
            "epochs": epochs,
            "steps_per_epoch": spe,
            "batch_size": 256,
            "start_epoch": 0,
        }
    ]
    total = epochs * spe
    for step in range(1, total + 1):
        if stop_after is not None and step > stop_after:
            return ev, t
        t += 2.0
        lr = lr0 * 0.5 * (1 + math.cos(math.pi * step / total))
        loss = scale * 2.3 * math.exp(-2.0 * step / total) + 0.05 * math.sin(step)
        ev.append(
            {
                "t": round(t, 3),
                "event": "step",
                **fields,
                "epoch": (step - 1) // spe,
                "step": step,
                "loss": round(loss, 5),
                "lr": round(lr, 6),
                "images_per_s": 1200.0 + 10 * (step % 7),
            }
        )
        if step % spe == 0:
            epoch = step // spe
            rec = {
                "t": round(t, 3),
                "event": "epoch",
                **fields,
                "epoch": epoch,
                "epochs": epochs,
                "step": step,
                "loss": round(loss, 5),
                "lr": round(lr, 6),
                "images_per_s": 1250.0,
                "seconds": 2.0 * spe,
            }
            if acc_key:
                rec[acc_key] = round(0.1 + 0.7 / scale * (1 - math.exp(-3 * epoch / epochs)), 4)
            ev.append(rec)
    t += 1.0
    ev.append({"t": round(t, 3), "event": "phase_end", **fields, "seconds": round(2.0 * total + 1, 3)})
    return ev, t


def _featuremaps(models: list[tuple[str, str]]) -> dict:
    images = []
    for k in range(4):
        rgb = [
            [
                [
                    int(127 + 120 * math.sin((r + 3 * k) / 5)),
                    int(127 + 120 * math.cos((c - k) / 6)),
                    int(40 * k + 2 * (r + c)) % 256,
                ]
                for c in range(32)
            ]
            for r in range(32)
        ]
        images.append({"index": 10 * k, "class": ["airplane", "automobile", "bird", "cat"][k], "rgb": rgb})
    entries = []
    for mi, (name, method) in enumerate(models):
        per_image = []
        for k in range(4):
            stages = []
            for s, size in enumerate((32, 16, 8)):
                values = [
                    [
                        [
                            int(255 * (0.5 + 0.5 * math.sin((r * (ch + 1) + c * (mi + 1) + k) / (2 + s))))
                            for c in range(size)
                        ]
                        for r in range(size)
                    ]
                    for ch in range(4)
                ]
                stages.append({"stage": s + 1, "channels": [ch * (s + 1) for ch in range(4)], "values": values})
            per_image.append(stages)
        entries.append({"name": name, "method": method, "seed": 0, "maps": per_image})
    return {"images": images, "models": entries}


def _summary(
    run_id: str,
    preset: str,
    status: str,
    methods,
    evaluations,
    labels,
    seeds,
    results,
    started: float,
    ended: float | None,
    error: str | None = None,
) -> dict:
    return {
        "run_id": run_id,
        "preset": preset,
        "description": f"{preset} (fixture)",
        "group": run_id,
        "status": status,
        "methods": methods,
        "evaluations": evaluations,
        "labels": labels,
        "seeds": seeds,
        "data": "synthetic",
        "results": results,
        "phases": {},
        "timings": {"data": 1.0},
        "started": started,
        "ended": ended,
        "error": error,
        "pid": None,
        "device": "cuda (fixture GPU)",
    }


def make_fixture_runs(root: Path) -> Path:
    """Write three runs (a completed study, an interrupted smoke run, a failed run) under `root`."""
    root.mkdir(parents=True, exist_ok=True)

    # 1. a completed study: every method, two seeds, 1% and 10% labels
    run = root / STUDY_ID
    run.mkdir()
    t = T0
    events = [
        {
            "t": t,
            "event": "run_start",
            "run_id": STUDY_ID,
            "preset": "paper",
            "device": "cuda (fixture GPU)",
            "parts": 3,
        },
        {
            "t": t + 1,
            "event": "data",
            "source": "synthetic",
            "train": 45000,
            "val": 5000,
            "test": 10000,
            "classes": [f"c{i}" for i in range(10)],
            "decode_seconds": 0.0,
            "load_seconds": 1.0,
            "from_cache": True,
        },
    ]
    t += 1
    log = ["12:00:00 run 20260101-120000-paper-a1b2c3 (paper) on cuda (fixture GPU)"]
    results = []
    for method, acc_key, scale in (("simclr", "knn_acc", 1.0), ("rotnet", "rot_acc", 1.3)):
        ev, t = _phase_events(
            t, f"{method}/pretrain/seed0/abcd1234", "pretrain", method, 0, 10, 4, acc_key, lr0=0.5, scale=scale
        )
        events += ev
    for (method, evaluation, labels, seed), acc in STUDY_RESULTS.items():
        phase = f"p0-{method}/{evaluation}/labels{labels:g}/seed{seed}"
        ev, t = _phase_events(
            t,
            phase,
            evaluation,
            method,
            seed,
            4,
            2,
            "val_acc" if evaluation != "linear" else None,
            labels=labels,
            scale=1 + 0.1 * seed + (0.2 if labels < 0.1 else 0),
        )
        events += ev
        r = {
            "method": method,
            "evaluation": evaluation,
            "labels": labels,
            "seed": seed,
            "test_acc": acc,
            "val_acc": round(acc - 0.01, 4),
            "label_count": int(45000 * labels),
            "seconds": 9.0,
            "part": 0,
        }
        results.append(r)
        events.append({"t": round(t, 3), "event": "result", **r})
        log.append(f"result {method}/{evaluation} labels={labels:g} seed={seed}: test {100 * acc:.2f}%")
    events.append({"t": round(t + 1, 3), "event": "run_end", "status": "completed", "error": None})
    log.append("run completed")
    _jsonl(run / "metrics.jsonl", events)
    (run / "run.log").write_text("\n".join(log) + "\n")
    (run / "config.toml").write_text('preset = "paper"\n')
    _write(
        run / "summary.json",
        _summary(
            STUDY_ID,
            "paper",
            "completed",
            ["supervised", "simclr", "rotnet"],
            ["linear", "semi", "supervised"],
            [0.01, 0.1],
            [0, 1],
            results,
            T0,
            t + 1,
        ),
    )
    _write(
        run / "featuremaps.json",
        _featuremaps([("supervised", "supervised"), ("simclr", "simclr"), ("rotnet", "rotnet")]),
    )

    # 2. an interrupted smoke run (stopped mid-phase)
    run = root / SMOKE_ID
    run.mkdir()
    t = T0 + 75600
    events = [
        {"t": t, "event": "run_start", "run_id": SMOKE_ID, "preset": "smoke", "device": "cpu (2 threads)", "parts": 1}
    ]
    ev, t = _phase_events(
        t,
        "p0-supervised/supervised/labels0.1/seed0",
        "supervised",
        "supervised",
        0,
        8,
        4,
        "val_acc",
        labels=0.1,
        stop_after=14,
        lr0=0.05,
    )
    events += ev
    events.append(
        {
            "t": round(t + 1, 3),
            "event": "run_end",
            "status": "interrupted",
            "error": "stopped by SIGINT in p0-supervised/supervised/labels0.1/seed0 at epoch 4, step 14",
        }
    )
    _jsonl(run / "metrics.jsonl", events)
    (run / "config.toml").write_text('preset = "smoke"\n')
    (run / "run.log").write_text(
        "09:00:00 run 20260102-090000-smoke-d4e5f6 (smoke) on cpu (2 threads)\nrun interrupted: stopped by SIGINT\n"
    )
    _write(
        run / "summary.json",
        _summary(
            SMOKE_ID,
            "smoke",
            "interrupted",
            ["supervised"],
            ["supervised"],
            [0.1],
            [0],
            [],
            T0 + 75600,
            t + 1,
            "stopped by SIGINT",
        ),
    )

    # 3. a failed run
    run = root / FAILED_ID
    run.mkdir()
    _jsonl(
        run / "metrics.jsonl",
        [
            {
                "t": T0 + 79200,
                "event": "run_start",
                "run_id": FAILED_ID,
                "preset": "supervised",
                "device": "cpu",
                "parts": 1,
            },
            {"t": T0 + 79201, "event": "run_end", "status": "failed", "error": "--data folder:/nope: no such file"},
        ],
    )
    (run / "run.log").write_text("10:00:00 run failed: --data folder:/nope: no such file\n")
    _write(
        run / "summary.json",
        _summary(
            FAILED_ID,
            "supervised",
            "failed",
            ["supervised"],
            ["supervised"],
            [0.01, 0.1],
            [0],
            [],
            T0 + 79200,
            T0 + 79201,
            "--data folder:/nope: no such file",
        ),
    )
    return root


if __name__ == "__main__":  # python tests/tui_fixtures.py DIR: a store to look at by hand
    import sys

    print(make_fixture_runs(Path(sys.argv[1])))


def live_drawn(screen) -> bool:
    """The live screen shows every event it has read: a bar row per recent phase at its progress,
    and the header with the run's status (what a person sees, not internal counters)."""
    state = screen.state
    if not state.events_seen or screen.status == "created" or screen.app.screen is not screen:
        return False
    text = screen_text(screen.app)
    for p in list(state.phases.values())[-4:]:
        if f"{p.ref.label()[:10]}" not in text or f"{100 * p.fraction:.0f}% ep {p.current_epoch}/" not in text:
            return False
    return f"· {screen.current_status()}" in text.splitlines()[1]


async def wait_until(pilot, condition, timeout: float = 20.0, what: str = "the screen") -> None:
    """Pause the pilot until `condition()` holds."""
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.05)


async def shows(pilot, *texts: str, timeout: float = 10.0) -> str:
    """The screen's text once every one of `texts` is on it (whitespace runs read as one space):
    a widget whose height follows its content takes a frame to grow."""
    app = pilot.app
    await wait_until(
        pilot, lambda: all(t in " ".join(screen_text(app).split()) for t in texts), timeout, f"{texts!r} on screen"
    )
    return screen_text(app)


def screen_text(app) -> str:
    """What the terminal shows, as plain text (one line per row, trailing blanks cut), as a
    person reads it: what is cut off the screen is not in it."""
    strips = app.screen._compositor.render_strips()
    return "\n".join(strip.text.rstrip() for strip in strips[: app.size.height])


@pytest.fixture
def isolated_state(tmp_path, monkeypatch):
    """No launch choices remembered from the user's own state dir (the launch form reads them)."""
    monkeypatch.setenv("SSLTUI_STATE_DIR", str(tmp_path / "state"))
    return tmp_path / "state"


@pytest.fixture
def tui_store(tmp_path, monkeypatch):
    """The fixture runs, UTC dates, no launch choices remembered from the user's state dir."""
    import time

    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    monkeypatch.setenv("SSLTUI_STATE_DIR", str(tmp_path / "state"))
    yield make_fixture_runs(tmp_path / "runs")
    monkeypatch.undo()
    time.tzset()


def run_app(runs, size, scenario):
    """Run `scenario(app, pilot)` on the app over `runs` at `size` once the runs list is up; the
    processes the app started are killed after it, and the app must not have crashed."""
    import asyncio

    from ssltui.tui.app import SsltuiApp

    async def main():
        app = SsltuiApp(runs, reattach=False)
        async with app.run_test(size=size) as pilot:
            await wait_until(pilot, lambda: getattr(app.screen, "loaded", False), 20, "the runs list")
            try:
                await scenario(app, pilot)
            finally:
                for launched in app.processes.values():
                    launched.proc.kill()
                    launched.proc.wait()
        assert app.return_code in (None, 0), "the app crashed"
        return app

    return asyncio.run(main())


async def open_results(app, pilot, run_ids, tab: str | None = None):
    """The results screen of `run_ids`, its files read, on `tab` ('t', 'c' or 'm')."""
    from ssltui.tui.screens.results import ResultsScreen

    screen = ResultsScreen(run_ids)
    await app.push_screen(screen)
    await wait_until(pilot, lambda: screen.curves is not None, 20, "the results' files")
    if tab:
        await pilot.press(tab)
    await pilot.pause()
    return screen


async def open_launch(app, pilot, **fields):
    """The launch form from the runs list (`n`), with `fields` (widget id -> value) chosen in order."""
    from ssltui.tui.screens.launch import LaunchScreen

    await pilot.press("n")
    await wait_until(pilot, lambda: isinstance(app.screen, LaunchScreen) and app.screen.params, 20, "the form")
    form = app.screen
    for field, value in fields.items():
        form.query_one(f"#{field}").value = value
        await pilot.pause()
    return form
