"""What the live screen knows about one run, folded from its metrics.jsonl events.

Pure Python (no Textual, no torch) so it is tested on its own and shared by every screen.
Times come from the events' own "t" stamps, never from the clock, so the same events always
give the same picture (snapshot tests, a finished run reopened later).
"""

from __future__ import annotations

from dataclasses import dataclass, field

ACCURACY_KEYS = ("val_acc", "knn_acc", "rot_acc")
LOG_TAIL = 200


@dataclass
class PhaseState:
    """One phase: its size, where it is, its step and epoch curves."""

    name: str
    kind: str = ""
    method: str = ""
    labels: float | None = None
    epochs: int = 1
    steps_per_epoch: int = 1
    batch_size: int = 0
    start_epoch: int = 0
    step: int = 0  # global steps done
    epoch: int = 0  # epochs done
    loss: float | None = None
    lr: float | None = None
    images_per_s: float | None = None
    t_start: float | None = None  # first phase_start (or resume) of the current process
    step_start: int = 0  # steps done when t_start was taken
    t_last: float | None = None
    done: bool = False
    seconds: float | None = None
    steps: dict[int, tuple[float, float]] = field(default_factory=dict)  # step -> (loss, lr)
    epoch_records: dict[int, dict] = field(default_factory=dict)  # epoch -> epoch event (later wins)

    @property
    def total_steps(self) -> int:
        return max(1, self.epochs * self.steps_per_epoch)

    @property
    def fraction(self) -> float:
        return 1.0 if self.done else min(1.0, self.step / self.total_steps)

    def eta_seconds(self) -> float | None:
        """Remaining seconds at the rate seen since this process started the phase."""
        if self.done:
            return 0.0
        if self.t_start is None or self.t_last is None:
            return None
        done_here = self.step - self.step_start
        elapsed = self.t_last - self.t_start
        if done_here <= 0 or elapsed <= 0:
            return None
        return (self.total_steps - self.step) * elapsed / done_here

    def accuracy(self) -> dict[str, list[tuple[int, float]]]:
        """Monitored accuracy curves: key -> [(epoch, accuracy)]."""
        out: dict[str, list[tuple[int, float]]] = {}
        for ep in sorted(self.epoch_records):
            rec = self.epoch_records[ep]
            for k in ACCURACY_KEYS:
                if isinstance(rec.get(k), (int, float)):
                    out.setdefault(k, []).append((ep, float(rec[k])))
        return out


@dataclass
class RunState:
    """The fold of a run's events; `apply` them in file order."""

    run_id: str = ""
    preset: str = ""
    device: str = ""
    status: str = "created"
    error: str | None = None
    phases: dict[str, PhaseState] = field(default_factory=dict)
    results: list[dict] = field(default_factory=list)
    logs: list[str] = field(default_factory=list)
    events_seen: int = 0

    def reset(self) -> None:
        """Forget everything (the metrics file was truncated by a resume)."""
        self.__init__()  # type: ignore[misc]

    @property
    def current(self) -> PhaseState | None:
        """The phase that started last."""
        return next(reversed(self.phases.values()), None) if self.phases else None

    def phase(self, name: str) -> PhaseState:
        if name not in self.phases:
            self.phases[name] = PhaseState(name)
        return self.phases[name]

    def apply(self, e: dict) -> None:
        self.events_seen += 1
        kind = e.get("event")
        t = e.get("t")
        if kind == "run_start":
            self.run_id = e.get("run_id", self.run_id)
            self.preset = e.get("preset", self.preset)
            self.device = e.get("device", self.device)
            self.status = "running"
        elif kind == "phase_start":
            p = self.phase(e["phase"])
            p.kind, p.method, p.labels = e.get("kind", ""), e.get("method", ""), e.get("labels")
            p.epochs = int(e.get("epochs") or 1)
            p.steps_per_epoch = int(e.get("steps_per_epoch") or 1)
            p.batch_size = int(e.get("batch_size") or 0)
            p.start_epoch = int(e.get("start_epoch") or 0)
            p.epoch = p.start_epoch
            p.step = p.start_epoch * p.steps_per_epoch if p.step == 0 else p.step
            p.done = False
            p.t_start, p.step_start, p.t_last = t, p.step, t
            # A resumed phase restarts the epoch it stopped in: its later records replace these.
            for ep in [ep for ep in p.epoch_records if ep > p.start_epoch]:
                del p.epoch_records[ep]
        elif kind == "resume":
            p = self.phase(e["phase"])
            p.step = int(e.get("epoch", 0)) * p.steps_per_epoch + int(e.get("step_in_epoch", 0))
        elif kind in ("step", "epoch"):
            p = self.phase(e["phase"])
            p.step = int(e.get("step", p.step))
            p.loss, p.lr = e.get("loss"), e.get("lr")
            p.images_per_s = e.get("images_per_s", p.images_per_s)
            p.t_last = t if t is not None else p.t_last
            if p.t_start is None:
                p.t_start, p.step_start = t, p.step
            if kind == "step":
                p.steps[p.step] = (float(e["loss"]), float(e["lr"]))
            else:
                p.epoch = int(e.get("epoch", p.epoch))
                p.epochs = int(e.get("epochs", p.epochs))
                p.epoch_records[p.epoch] = e
        elif kind == "phase_end":
            p = self.phase(e["phase"])
            p.done, p.seconds = True, e.get("seconds")
            p.step = p.total_steps
            p.epoch = max(p.epoch, p.epochs)
        elif kind == "result":
            key = (e.get("method"), e.get("evaluation"), e.get("labels"), e.get("seed"))
            self.results = [r for r in self.results
                            if (r.get("method"), r.get("evaluation"), r.get("labels"), r.get("seed")) != key]
            self.results.append({k: v for k, v in e.items() if k not in ("event", "t")})
        elif kind == "log":
            self.logs.append(f"{e.get('level', 'info')}: {e.get('message', '')}")
            del self.logs[:-LOG_TAIL]
        elif kind == "run_end":
            self.status = e.get("status", self.status)
            self.error = e.get("error")
            if self.status == "completed":
                for p in self.phases.values():
                    p.done = True


def fmt_duration(seconds: float | None) -> str:
    """'1:02:03', '2:03' or '-'."""
    if seconds is None:
        return "-"
    s = int(round(seconds))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"
