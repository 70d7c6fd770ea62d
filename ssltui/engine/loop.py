"""The run context and the one training loop every phase uses.

The loop owns what every phase needs and none should rewrite: the epoch permutation and
batching, the learning-rate schedule, metrics events, non-finite loss detection, periodic
checkpoints, resume from a checkpoint (bit for bit on CPU), and a clean stop on request.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from ssltui.engine.checkpoint import load_checkpoint, load_state, require_keys, save_checkpoint
from ssltui.engine.config import TrainConfig
from ssltui.engine.device import DeviceSettings
from ssltui.engine.events import Epoch, Event, Log, PhaseRef, PhaseStart, Resume, Step, stamp
from ssltui.engine.errors import ConfigError, RunFailed, RunInterrupted, first_line
from ssltui.engine.optim import lr_at
from ssltui.engine.store import RunDir

Listener = Callable[[Event], None]

# What a phase checkpoint must hold. There is no scheduler state (the learning rate is a pure
# function of the global step, `optim.lr_at`) and no GradScaler (bf16 autocast needs none).
PHASE_KEYS = ("phase", "epoch", "step_in_epoch", "total_steps", "modules", "optimizer", "generator",
              "torch_rng")


def derive_seed(seed: int, *names: object) -> int:
    """A stable 63-bit seed for (seed, names...): phases never depend on what ran before them."""
    h = hashlib.sha256(repr((seed, *names)).encode()).digest()
    return int.from_bytes(h[:8], "little") >> 1


class RunContext:
    """What a phase needs from the run: device, events, checkpoints, the stop flag."""

    def __init__(self, run: RunDir, dev: DeviceSettings, listener: Listener | None = None):
        self.run = run
        self.dev = dev
        self.listener = listener
        self.stop_requested = False
        self.stop_reason = ""

    @property
    def device(self) -> torch.device:
        return self.dev.device

    def emit(self, event: Event) -> None:
        """Append the event to metrics.jsonl, its line (if any) to run.log, and tell the listener."""
        self.run.append_event(event)
        line = event.line()
        if line is not None:
            self.run.append_log(stamp(line, event.t))
        if self.listener is not None:
            self.listener(event)

    def log(self, message: str, level: str = "info") -> None:
        self.emit(Log(level=level, message=message))

    def request_stop(self, reason: str = "interrupted") -> None:
        self.stop_requested = True
        self.stop_reason = reason

    def checkpoint_path(self, phase: str) -> Path:
        return self.run.checkpoints_dir / f"{phase.replace('/', '__')}.pt"

    def generator(self, seed: int, *names: object) -> torch.Generator:
        """Seed the global RNGs for a phase and return a device generator for its own draws."""
        s = derive_seed(seed, *names)
        torch.manual_seed(s)
        g = torch.Generator(device=self.device)
        g.manual_seed(s)
        return g


@dataclass
class Phase:
    """One optimisation phase over `n_items` training items, `cfg.batch_size` a step."""

    ctx: RunContext
    ref: PhaseRef
    cfg: TrainConfig
    n_items: int
    modules: dict[str, nn.Module]
    optimizer: torch.optim.Optimizer
    generator: torch.Generator
    images_per_item: int = 1
    # Called after every optimizer step (e.g. a weight average's update); what it keeps belongs
    # in `modules` so that checkpoints hold it.
    after_step: Callable[[], None] | None = None

    def __post_init__(self) -> None:
        if self.n_items < 1:
            raise ConfigError(f"{self.ref.phase}: no training images")
        self.batch_size = min(self.cfg.batch_size, self.n_items)
        self.steps_per_epoch = self.n_items // self.batch_size  # the last partial batch is dropped
        self.epochs = max(self.cfg.epochs, math.ceil(self.cfg.min_steps / self.steps_per_epoch))
        self.total_steps = self.epochs * self.steps_per_epoch
        self.log_every = max(1, self.steps_per_epoch // 8)
        # The last epoch event, kept in checkpoints: a phase resumed after its final epoch
        # (killed before its result was recorded) still reports the same validation accuracy.
        self._last_epoch: dict = {}

    # ------------------------------------------------------------ checkpoints
    def _save(self, epoch: int, step_in_epoch: int, perm: torch.Tensor | None, losses: torch.Tensor) -> None:
        payload = {
            "kind": "phase",
            "phase": self.ref.phase,
            "epoch": epoch,
            "step_in_epoch": step_in_epoch,
            "total_steps": self.total_steps,
            "perm": perm.cpu() if perm is not None else None,
            "losses": losses[:step_in_epoch].float().cpu(),
            "modules": {k: m.state_dict() for k, m in self.modules.items()},
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "device_type": self.ctx.device.type,
            "torch_rng": torch.get_rng_state(),
            # Methods may draw from the global CUDA generator too (dropout, torch.rand without
            # a generator): keep it with the checkpoint so a resume replays the same draws.
            "cuda_rng": (torch.cuda.get_rng_state(self.ctx.device)
                         if self.ctx.device.type == "cuda" else None),
            "last_epoch": self._last_epoch,
        }
        save_checkpoint(self.ctx.checkpoint_path(self.ref.phase), payload)

    def _restore(self) -> tuple[int, int, torch.Tensor | None, torch.Tensor | None]:
        path = self.ctx.checkpoint_path(self.ref.phase)
        if not path.exists():
            return 0, 0, None, None
        ck = load_checkpoint(path, kind="phase")
        require_keys(ck, PHASE_KEYS, path)
        if ck.get("phase") != self.ref.phase or ck.get("total_steps") != self.total_steps:
            raise ConfigError(f"{path}: checkpoint does not match phase {self.ref.phase}")
        epoch, step = ck["epoch"], ck["step_in_epoch"]
        if not (isinstance(epoch, int) and isinstance(step, int) and 0 <= epoch <= self.epochs
                and 0 <= step < self.steps_per_epoch):
            raise ConfigError(f"{path}: epoch/step {epoch!r}/{step!r} is outside this phase")
        if not isinstance(ck["modules"], dict):
            raise ConfigError(f"{path}: no model weights in it")
        for k, m in self.modules.items():
            load_state(m, ck["modules"].get(k), f"{path} [{k}]")
        try:
            self.optimizer.load_state_dict(ck["optimizer"])
            if ck.get("device_type") == self.ctx.device.type:
                self.generator.set_state(ck["generator"])
            torch.set_rng_state(ck["torch_rng"])
            if ck.get("cuda_rng") is not None and self.ctx.device.type == "cuda":
                torch.cuda.set_rng_state(ck["cuda_rng"], self.ctx.device)
        except (ValueError, KeyError, TypeError, RuntimeError, IndexError) as exc:
            first = first_line(exc)
            raise ConfigError(f"{path}: optimizer or RNG state does not fit this phase ({first[:120]})") from None
        self._last_epoch = ck.get("last_epoch") or {}
        perm = ck.get("perm")
        if perm is not None:
            perm = perm.to(self.ctx.device)
        self.ctx.emit(Resume(**self.ref.model_dump(), epoch=epoch, step_in_epoch=step))
        return epoch, step, perm, ck.get("losses")

    # ------------------------------------------------------------ the loop
    def run(self, step_fn: Callable[[torch.Tensor], torch.Tensor], train_mode: Callable[[], None],
            epoch_end: Callable[[int], dict] | None = None) -> dict:
        """Train. `step_fn(batch_positions)` gets indices into 0..n_items-1 and returns the loss;
        `epoch_end(epoch)` returns monitored accuracies for the epoch event."""
        start_epoch, start_step, perm, prev_losses = self._restore()
        self.ctx.emit(PhaseStart(**self.ref.model_dump(), epochs=self.epochs, steps_per_epoch=self.steps_per_epoch,
                                 batch_size=self.batch_size, start_epoch=start_epoch))
        phase_t0 = time.perf_counter()
        for epoch in range(start_epoch, self.epochs):
            train_mode()
            if perm is None or start_step == 0:
                perm = torch.randperm(self.n_items, device=self.ctx.device, generator=self.generator)
            losses = torch.zeros(self.steps_per_epoch, device=self.ctx.device)
            if prev_losses is not None and start_step > 0:
                losses[:start_step] = prev_losses.to(self.ctx.device)
            epoch_t0 = time.perf_counter()
            self._train_epoch(step_fn, epoch, start_step, perm, losses)
            start_step, prev_losses = 0, None
            self._end_epoch(epoch, losses, epoch_end, train_mode, time.perf_counter() - epoch_t0)
        out = {k: v for k, v in self._last_epoch.items() if k in ("loss", "val_acc", "knn_acc", "rot_acc")}
        return {"seconds": time.perf_counter() - phase_t0, **out}

    def _train_epoch(self, step_fn: Callable[[torch.Tensor], torch.Tensor], epoch: int, start_step: int,
                     perm: torch.Tensor, losses: torch.Tensor) -> None:
        """Steps `start_step`.. of one epoch, with log points and a clean stop on request."""
        t_mark, n_mark = time.perf_counter(), 0
        for step in range(start_step, self.steps_per_epoch):
            gstep = epoch * self.steps_per_epoch + step
            lr, losses[step] = self._optimizer_step(step_fn, perm[step * self.batch_size:(step + 1) * self.batch_size],
                                                    gstep)
            n_mark += 1
            if (step + 1) % self.log_every == 0 or step + 1 == self.steps_per_epoch:
                self._check_finite(losses, epoch, step + 1)
                now = time.perf_counter()
                ips = n_mark * self.batch_size * self.images_per_item / max(1e-9, now - t_mark)
                self.ctx.emit(Step(**self.ref.model_dump(), epoch=epoch, step=gstep + 1, loss=float(losses[step]),
                                   lr=lr, images_per_s=round(ips, 1)))
                t_mark, n_mark = now, 0
            if self.ctx.stop_requested:
                self._stop(epoch, step + 1, perm, losses)

    def _optimizer_step(self, step_fn: Callable[[torch.Tensor], torch.Tensor], idx: torch.Tensor,
                        gstep: int) -> tuple[float, torch.Tensor]:
        """One step at the schedule's learning rate; (lr, the loss as a detached device scalar)."""
        lr = lr_at(self.cfg, gstep, self.total_steps)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.zero_grad(set_to_none=True)
        loss = step_fn(idx)
        loss.backward()
        self.optimizer.step()
        if self.after_step is not None:
            self.after_step()
        return lr, loss.detach().float()

    def _stop(self, epoch: int, steps_done: int, perm: torch.Tensor, losses: torch.Tensor) -> None:
        """Save where we are and raise RunInterrupted (a user's Ctrl-C or a scheduler's SIGTERM)."""
        self._check_finite(losses, epoch, steps_done)
        if steps_done < self.steps_per_epoch:
            self._save(epoch, steps_done, perm, losses)
        else:
            self._save(epoch + 1, 0, None, losses)
        gstep = epoch * self.steps_per_epoch + steps_done
        raise RunInterrupted(f"{self.ctx.stop_reason} in {self.ref.phase} at epoch {epoch + 1}, "
                             f"step {gstep}; checkpoint saved")

    def _end_epoch(self, epoch: int, losses: torch.Tensor, epoch_end: Callable[[int], dict] | None,
                   train_mode: Callable[[], None], seconds: float) -> None:
        """The epoch event (loss, lr, monitored accuracies) and the periodic checkpoint."""
        self._check_finite(losses, epoch, self.steps_per_epoch)
        metrics = epoch_end(epoch) if epoch_end is not None else {}
        train_mode()
        steps = (epoch + 1) * self.steps_per_epoch
        event = Epoch(**self.ref.model_dump(), epoch=epoch + 1, epochs=self.epochs, step=steps,
                      loss=float(losses.mean()), lr=lr_at(self.cfg, steps - 1, self.total_steps),
                      images_per_s=round(self.steps_per_epoch * self.batch_size * self.images_per_item
                                         / max(1e-9, seconds), 1),
                      seconds=round(seconds, 3), **metrics)
        self.ctx.emit(event)
        self._last_epoch = event.model_dump(exclude={"t"}, exclude_none=True)
        every = self.cfg.checkpoint_every
        if (every and (epoch + 1) % every == 0) or epoch + 1 == self.epochs:
            self._save(epoch + 1, 0, None, losses)

    def _check_finite(self, losses: torch.Tensor, epoch: int, upto: int) -> None:
        bad = ~torch.isfinite(losses[:upto])
        if bool(bad.any()):
            first = int(bad.nonzero()[0])
            value = float(losses[first])
            raise RunFailed(
                f"loss became {value} in {self.ref.phase} at epoch {epoch + 1}, step "
                f"{epoch * self.steps_per_epoch + first + 1}; the last checkpoint before it is kept "
                f"(lower the learning rate?)"
            )
