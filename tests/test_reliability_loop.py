"""The loop's checkpoints in isolation (fast, in-process): the interval, what a checkpoint holds,
and a stop at any step resumed to the same weights, optimizer and generator state."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from reliability_tools import one_thread, toy_phase  # noqa: F401 (autouse fixture)
from torch import nn

from ssltui.core.errors import RunInterrupted
from ssltui.trainer import loop as loop_mod
from ssltui.trainer.loop import PHASE_KEYS, Phase

EPOCHS = 5  # of 6 steps (reliability_tools.toy_phase)


def _phase(tmp: Path, every: int = 1, stop_at: int | None = None) -> tuple[Phase, nn.Module, callable]:
    phase, model, _, go = toy_phase(tmp, stop_at, checkpoint_every=every)
    return phase, model, go


def test_checkpoint_interval_and_contents(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    saved = []
    real = loop_mod.save_checkpoint
    monkeypatch.setattr(loop_mod, "save_checkpoint", lambda path, payload: (saved.append(payload), real(path, payload)))
    phase, model, go = _phase(tmp_path, every=2)
    go()
    assert [p["epoch"] for p in saved] == [2, 4, 5]  # every 2 epochs, and always the last
    ck = saved[-1]
    assert set(PHASE_KEYS) | {"perm", "losses", "cuda_rng", "last_epoch"} <= set(ck)
    assert set(ck["modules"]["model"]) == set(model.state_dict())  # BN running stats included
    assert ck["optimizer"]["state"], "momentum buffers missing"
    assert ck["last_epoch"]["val_acc"] == EPOCHS - 1


@pytest.mark.parametrize("stop_at", [1, 6, 7, 15, 29])  # first step, epoch ends, mid-epoch, last step
def test_stop_at_any_step_resumes_to_identical_state(tmp_path: Path, stop_at: int) -> None:
    ref_phase, ref_model, ref_go = _phase(tmp_path / "ref")
    ref_out = ref_go()

    phase, _, go = _phase(tmp_path / "stopped", stop_at=stop_at)
    with pytest.raises(RunInterrupted):
        go()
    phase2, model2, go2 = _phase(tmp_path / "stopped")  # a fresh process: new modules, new generator
    out = go2()
    for k, t in ref_model.state_dict().items():
        assert torch.equal(model2.state_dict()[k], t), k
    assert torch.equal(phase2.generator.get_state(), ref_phase.generator.get_state())
    assert out["loss"] == ref_out["loss"] and out["val_acc"] == ref_out["val_acc"]


def test_resume_after_the_last_epoch_reports_the_same_metrics(tmp_path: Path) -> None:
    _, _, go = _phase(tmp_path)
    first = go()
    _, _, again = _phase(tmp_path)  # killed after the final checkpoint, before the result
    second = again()
    assert second["val_acc"] == first["val_acc"] and second["loss"] == first["loss"]
