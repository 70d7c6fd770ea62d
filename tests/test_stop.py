"""The one stop token: first reason kept, a user's interrupt replaces a prune, a trial's token
stops with its sweep worker's, and the scheduler does not import the runner."""

from __future__ import annotations

import ast
from pathlib import Path

from ssltui.core.stop import StopToken

REPO = Path(__file__).resolve().parents[1]


def test_first_reason_stays_and_an_interrupt_replaces_a_prune() -> None:
    t = StopToken()
    assert not t.requested and t.reason is None and t.poll() is None
    t.request("pruned (median rule)", status="pruned")
    assert (t.reason, t.status) == ("pruned (median rule)", "pruned")
    t.request("stopped by SIGINT")
    assert (t.reason, t.status) == ("stopped by SIGINT", "interrupted")
    t.request("the run is ending")
    assert t.reason == "stopped by SIGINT"


def test_a_child_stops_with_its_parent_not_the_other_way() -> None:
    sweep = StopToken()
    trial = StopToken(parent=sweep)
    trial.request("pruned", status="pruned")
    assert trial.status == "pruned" and not sweep.requested
    sweep.request("stopped by SIGTERM")
    assert (trial.reason, trial.status) == ("stopped by SIGTERM", "interrupted")
    assert StopToken(parent=sweep).requested


def test_scheduler_does_not_import_the_runner() -> None:
    tree = ast.parse((REPO / "ssltui" / "trainer" / "scheduler.py").read_text(encoding="utf-8"))
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert "ssltui.trainer.runner" not in imported
