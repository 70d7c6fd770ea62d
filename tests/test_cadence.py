"""The phase cadence: log points by wall time, validation passes spread over the steps,
checkpoints by wall time; pure functions of (steps, seconds), and the loop follows them."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from reliability_tools import one_thread  # noqa: F401 (autouse fixture)
from torch import nn

from benchmarks.syncs import FakeClock, HostReads
from ssltui.core.config import TrainConfig
from ssltui.core.errors import RunFailed
from ssltui.core.events import Epoch, PhaseRef, Step
from ssltui.core.store import RunDir
from ssltui.trainer import loop as loop_mod
from ssltui.trainer.cadence import Cadence, simulate
from ssltui.trainer.device import DeviceSettings
from ssltui.trainer.loop import Phase, RunContext
from ssltui.trainer.optim import build_optimizer


def test_log_points_by_seconds_and_always_at_the_end():
    c = Cadence(total_steps=3000, steps_per_epoch=3, log_seconds=0.25)
    assert not c.log_due(3, 0.1) and not c.log_due(6, 0.2499)  # epoch ends alone do not log
    assert c.log_due(7, 0.25) and c.log_due(3000, 0.0)
    assert Cadence(10, 5, log_seconds=0.0).log_due(1, 0.0)  # 0: every step


def test_validation_passes_are_spread_over_the_steps_whatever_the_epoch_length():
    tiny = Cadence(total_steps=3000, steps_per_epoch=3, val_passes=20)  # 1% labels: 1,000 epochs
    due = [e for e in range(1, 1001) if tiny.validation_due(e)]
    assert len(due) == 20 and due[-1] == 1000 and due[0] == 50
    assert all(b - a == 50 for a, b in zip(due, due[1:]))
    long = Cadence(total_steps=351 * 100, steps_per_epoch=351, val_passes=20)  # RotNet: 100 epochs
    assert [e for e in range(1, 101) if long.validation_due(e)] == list(range(5, 101, 5))
    few = Cadence(total_steps=5 * 40, steps_per_epoch=40, val_passes=20)  # more passes than epochs
    assert [e for e in range(1, 6) if few.validation_due(e)] == [1, 2, 3, 4, 5]
    assert [e for e in range(1, 11) if Cadence(30, 3, val_passes=0).validation_due(e)] == [10]
    assert [e for e in range(1, 11) if Cadence(30, 3, val_every=4).validation_due(e)] == [4, 8, 10]


def test_checkpoints_by_seconds_or_every_n_epochs():
    c = Cadence(total_steps=600, steps_per_epoch=6, checkpoint_seconds=60.0)
    assert not c.checkpoint_due(6, 59.9) and c.checkpoint_due(7, 60.0)  # inside an epoch too
    assert not Cadence(600, 6, checkpoint_seconds=0.0).checkpoint_due(5, 1e9)  # 0: never by time
    every = Cadence(600, 6, checkpoint_seconds=0.0, checkpoint_every=2)
    assert [s for s in range(1, 37) if every.checkpoint_due(s, 0.0)] == [12, 24, 36]


def test_simulate_counts_a_phase_of_tiny_epochs():
    # Supervised at 1% labels: 3,000 steps of 3-step epochs at 5 ms a step = 15 s.
    counts = simulate(Cadence(3000, 3, log_seconds=0.25, val_passes=20, checkpoint_seconds=60.0), 0.005)
    assert counts.validations == 20 and counts.checkpoints == 1
    assert 59 <= counts.logs <= 61  # 4 a second, plus the last


N, BATCH = 12, 4  # 3 steps an epoch


def _phase(
    tmp: Path,
    clock: FakeClock,
    step_s: float,
    log_s: float,
    ck_s: float,
    epochs: int = 40,
    every: int = 0,
    passes: int = 5,
    nan_at: int | None = None,
) -> tuple[Phase, list, list, callable]:
    run = RunDir(tmp)
    run.path.mkdir(exist_ok=True)
    events: list = []
    ctx = RunContext(
        run,
        DeviceSettings(torch.device("cpu"), None, False, False, log_seconds=log_s, checkpoint_seconds=ck_s),
        events.append,
    )
    ctx.clock = clock
    info = PhaseRef(phase="toy/cadence", kind="supervised", method="supervised", seed=0)
    gen = ctx.generator(0, info.phase)
    model = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 2))
    cfg = TrainConfig(epochs=epochs, batch_size=BATCH, lr=0.05, checkpoint_every=every, val_passes=passes)
    xs = torch.randn(N, 3, generator=torch.Generator().manual_seed(1))
    ys = (xs[:, 0] > 0).long()
    validations: list[int] = []

    def step(idx: torch.Tensor) -> torch.Tensor:
        clock.tick()
        loss = nn.functional.cross_entropy(model(xs[idx]), ys[idx])
        return loss * float("nan") if round(clock.now / step_s) == nan_at else loss

    def epoch_end(epoch: int) -> dict:
        validations.append(epoch + 1)
        return {"val_acc": 0.5}

    phase = Phase(ctx, info, cfg, N, {"model": model}, build_optimizer(cfg, [model]), gen)
    return phase, events, validations, lambda: phase.run(step, model.train, epoch_end)


@pytest.mark.parametrize("step_s,log_s,ck_s", [(0.005, 0.25, 60.0), (0.1, 0.25, 1.0), (0.02, 0.0, 0.5)])
def test_the_loop_follows_the_cadence_functions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, step_s: float, log_s: float, ck_s: float
) -> None:
    saves = []
    real = loop_mod.save_checkpoint
    monkeypatch.setattr(loop_mod, "save_checkpoint", lambda path, payload: (saves.append(payload), real(path, payload)))
    phase, events, validations, go = _phase(tmp_path, FakeClock(step_s), step_s, log_s, ck_s)
    go()
    want = simulate(phase.cadence, step_s)
    steps = [e for e in events if isinstance(e, Step)]
    epochs = [e for e in events if isinstance(e, Epoch)]
    assert len(steps) == want.logs and len(validations) == want.validations and len(saves) == want.checkpoints
    assert [e.epoch for e in epochs] == list(range(1, 41))  # every epoch has its event, in order
    assert [e.epoch for e in epochs if e.val_acc is not None] == validations
    assert steps[-1].step == 120 and saves[-1]["epoch"] == 40


def test_a_time_checkpoint_inside_an_epoch_resumes_bit_for_bit(tmp_path: Path) -> None:
    ref, _, _, ref_go = _phase(tmp_path / "ref", FakeClock(0.3), 0.3, 0.25, 1.0, epochs=6)
    ref_out = ref_go()
    # 0.3 s a step and a checkpoint each second: the first after step 4, inside epoch 2.
    # Kill (raise) right after it.
    phase, events, _, go = _phase(tmp_path / "cut", FakeClock(0.3), 0.3, 0.25, 1.0, epochs=6)
    real_save = phase._save
    calls = []

    def save_then_die(epoch, step_in_epoch, perm):
        real_save(epoch, step_in_epoch, perm)
        calls.append((epoch, step_in_epoch))
        if step_in_epoch:
            raise KeyboardInterrupt  # a kill, right after a mid-epoch checkpoint

    phase._save = save_then_die
    with pytest.raises(KeyboardInterrupt):
        go()
    assert calls == [(1, 1)]
    again, _, _, again_go = _phase(tmp_path / "cut", FakeClock(0.3), 0.3, 0.25, 1.0, epochs=6)
    out = again_go()
    for k, t in ref.modules["model"].state_dict().items():
        assert torch.equal(again.modules["model"].state_dict()[k], t), k
    assert torch.equal(again.generator.get_state(), ref.generator.get_state())
    assert out["loss"] == ref_out["loss"]


def test_host_reads_come_at_log_points_not_every_step(tmp_path: Path) -> None:
    # 120 steps of 3-step epochs at 5 ms: 0.6 s, so 3 log points; 5 validation passes.
    phase, events, validations, go = _phase(tmp_path, FakeClock(0.005), 0.005, 0.25, 60.0)
    with HostReads() as reads:
        go()
    logs = sum(isinstance(e, Step) for e in events)
    assert logs == 3 and len(validations) == 5
    # One read a log point and one after each validation pass (its accuracy goes out at once);
    # the last pass's read, at the last step, leaves the phase's last log point nothing to read.
    assert reads.total == logs + len(validations) - 1, reads.counts
    assert reads.counts["tolist"] >= 1  # the counter sees the loop's reads


def test_host_reads_counter_sees_scalar_reads():
    with HostReads() as reads:
        t = torch.ones(3)
        float(t.sum()), bool(t.any()), t.tolist(), t.nonzero(), t.sum().item()
    assert reads.counts["_local_scalar_dense"] == 3 and reads.counts["tolist"] == 1
    assert reads.counts["nonzero"] == 1


def test_a_non_finite_loss_found_later_names_its_step_and_keeps_the_epochs_before(tmp_path: Path) -> None:
    # No log point for 10 s: the nan of step 8 (epoch 3) is found at the phase's end.
    _, events, _, go = _phase(tmp_path, FakeClock(0.01), 0.01, 10.0, 60.0, epochs=5, nan_at=8)
    with pytest.raises(RunFailed, match=r"loss became nan .* at epoch 3, step 8;"):
        go()
    assert [e.epoch for e in events if isinstance(e, Epoch)] == [1, 2]
    assert not list((tmp_path / "checkpoints").glob("*.pt"))  # nothing saved past it
