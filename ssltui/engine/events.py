"""Human-readable one-line forms of run events (for run.log and plain progress output)."""

from __future__ import annotations

import time


def _pct(v: object) -> str:
    return f"{100 * v:.2f}%" if isinstance(v, (int, float)) else "-"


def format_event(e: dict) -> str | None:
    """One line for the events a person wants to read; None for high-rate step events."""
    kind = e.get("event")
    if kind == "run_start":
        return f"run {e['run_id']} ({e.get('preset')}) on {e.get('device')}"
    if kind == "data":
        how = "cache" if e.get("from_cache") else "decoded"
        return (f"data {e['source']}: {e['train']} train / {e['val']} val / {e['test']} test, "
                f"{len(e.get('classes', []))} classes ({how} in {e.get('load_seconds', 0):.2f} s)")
    if kind == "phase_start":
        return (f"{e['phase']}: {e.get('epochs')} epochs x {e.get('steps_per_epoch')} steps"
                + (f" (resuming at epoch {e['start_epoch'] + 1})" if e.get("start_epoch") else ""))
    if kind == "epoch":
        extras = " ".join(f"{k}={_pct(e[k])}" for k in ("val_acc", "knn_acc", "rot_acc") if k in e)
        return (f"{e['phase']}: epoch {e['epoch']}/{e['epochs']} loss={e['loss']:.4f} lr={e['lr']:.4g} "
                f"{e.get('images_per_s', 0):.0f} img/s {extras}".rstrip())
    if kind == "resume":
        return f"{e['phase']}: resumed from checkpoint at epoch {e['epoch'] + 1}, step {e['step_in_epoch']}"
    if kind == "phase_end":
        return f"{e['phase']}: done in {e.get('seconds', 0):.1f} s"
    if kind == "result":
        return (f"result {e['method']}/{e['evaluation']} labels={e['labels']:g} seed={e['seed']}: "
                f"test {_pct(e['test_acc'])} (val {_pct(e.get('val_acc'))})")
    if kind == "log":
        return f"{e.get('level', 'info')}: {e['message']}"
    if kind == "run_end":
        return f"run {e['status']}" + (f": {e['error']}" if e.get("error") else "")
    return None


def stamp(line: str, t: float | None = None) -> str:
    return time.strftime("%H:%M:%S", time.localtime(t or time.time())) + " " + line
