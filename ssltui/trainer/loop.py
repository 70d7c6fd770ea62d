"""The run context and the one training loop every phase uses.

The loop owns what every phase needs and none should rewrite: the epoch permutation and
batching, the learning-rate schedule, metrics events, non-finite loss detection, checkpoints,
resume from a checkpoint (bit for bit on CPU), and a clean stop on request.

The steps themselves never read the device: each step's loss is written to a phase-long loss
buffer on the device, and only a log point (`cadence.Cadence`: by wall time, a few a second at
most), a validation pass, a checkpoint or the phase's end reads it back, checks it is finite
and emits the epoch events that finished since. On CUDA the steps are replayed from a captured
graph (`cudagraph.GraphedSteps`), on the CPU they run eagerly, as they always have.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ssltui.core.config import TrainConfig
from ssltui.core.errors import ConfigError, RunFailed, RunInterrupted, first_line
from ssltui.core.events import Epoch, Event, Log, PhaseRef, PhaseStart, Resume, Step, stamp
from ssltui.core.schedule import phase_length
from ssltui.core.stop import StopToken
from ssltui.core.store import RunDir
from ssltui.trainer.cadence import Cadence
from ssltui.trainer.checkpoint import load_checkpoint, load_state, require_keys, save_checkpoint
from ssltui.trainer.cudagraph import EagerSteps, GraphedSteps
from ssltui.trainer.device import DeviceSettings
from ssltui.trainer.optim import lr_at

Listener = Callable[[Event], None]

# What a phase checkpoint must hold. There is no scheduler state (the learning rate is a pure
# function of the global step, `optim.lr_at`) and no GradScaler (bf16 autocast needs none).
PHASE_KEYS = ("phase", "epoch", "step_in_epoch", "total_steps", "modules", "optimizer", "generator", "torch_rng")


def derive_seed(seed: int, *names: object) -> int:
    """A stable 63-bit seed for (seed, names...): phases never depend on what ran before them."""
    h = hashlib.sha256(repr((seed, *names)).encode()).digest()
    return int.from_bytes(h[:8], "little") >> 1


class RunContext:
    """What a phase needs from the run: device, events, checkpoints, the run's stop token."""

    def __init__(
        self, run: RunDir, dev: DeviceSettings, listener: Listener | None = None, stop: StopToken | None = None
    ):
        self.run = run
        self.dev = dev
        self.listener = listener
        self.stop = stop if stop is not None else StopToken()
        self.clock: Callable[[], float] = time.perf_counter  # the cadence's clock (tests fake it)

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
        self.stop.request(reason)

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
    """One optimisation phase over `n_items` training items, `cfg.batch_size` a step.

    `val_every`: call `epoch_end` every N epochs (None: the config's `eval_every`, if any, else
    `cfg.val_passes` passes spread over the phase's steps)."""

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
    val_every: int | None = None

    def __post_init__(self) -> None:
        if self.n_items < 1:
            raise ConfigError(f"{self.ref.phase}: no training images")
        length = phase_length(self.cfg, self.n_items)
        self.batch_size, self.steps_per_epoch, self.epochs = length.batch_size, length.steps_per_epoch, length.epochs
        self.total_steps = length.steps
        if length.decided_by == "min_steps":
            self.ctx.log(
                f"{self.ref.phase}: min_steps={self.cfg.min_steps} stretches {self.cfg.epochs} epochs of "
                f"{self.steps_per_epoch} steps to {self.epochs} epochs ({self.total_steps} steps)"
            )
        dev = self.ctx.dev
        val_every = getattr(self.cfg, "eval_every", 0) if self.val_every is None else self.val_every
        self.cadence = Cadence(
            self.total_steps,
            self.steps_per_epoch,
            dev.log_seconds,
            val_every,
            self.cfg.val_passes,
            dev.checkpoint_seconds,
            self.cfg.checkpoint_every,
        )
        # The last epoch event, kept in checkpoints: a phase resumed after its final epoch
        # (killed before its result was recorded) still reports the same validation accuracy.
        self._last_epoch: dict = {}
        self.steps: EagerSteps | GraphedSteps | None = None

    # ------------------------------------------------------------ checkpoints
    def _save(self, epoch: int, step_in_epoch: int, perm: torch.Tensor | None) -> None:
        first = epoch * self.steps_per_epoch
        optimizer = self.optimizer.state_dict()
        for group in optimizer["param_groups"]:  # a graphed phase's rate is a device tensor
            group["lr"] = float(group["lr"])
            if group.get("capturable"):
                group["capturable"] = False
        payload = {
            "kind": "phase",
            "phase": self.ref.phase,
            "epoch": epoch,
            "step_in_epoch": step_in_epoch,
            "total_steps": self.total_steps,
            "perm": perm.cpu() if perm is not None else None,
            "losses": torch.tensor(self._values[first : first + step_in_epoch], dtype=torch.float32),
            "modules": {k: m.state_dict() for k, m in self.modules.items()},
            "optimizer": optimizer,
            "generator": self.generator.get_state(),
            "device_type": self.ctx.device.type,
            "torch_rng": torch.get_rng_state(),
            # Methods may draw from the global CUDA generator too (dropout, torch.rand without
            # a generator): keep it with the checkpoint so a resume replays the same draws.
            "cuda_rng": (torch.cuda.get_rng_state(self.ctx.device) if self.ctx.device.type == "cuda" else None),
            "last_epoch": self._last_epoch,
        }
        save_checkpoint(self.ctx.checkpoint_path(self.ref.phase), payload)
        self._checkpoint_t = self.ctx.clock()

    def _restore(self) -> tuple[int, int, torch.Tensor | None, torch.Tensor | None]:
        path = self.ctx.checkpoint_path(self.ref.phase)
        if not path.exists():
            return 0, 0, None, None
        ck = load_checkpoint(path, kind="phase")
        require_keys(ck, PHASE_KEYS, path)
        if ck.get("phase") != self.ref.phase or ck.get("total_steps") != self.total_steps:
            raise ConfigError(f"{path}: checkpoint does not match phase {self.ref.phase}")
        epoch, step = ck["epoch"], ck["step_in_epoch"]
        if not (
            isinstance(epoch, int)
            and isinstance(step, int)
            and 0 <= epoch <= self.epochs
            and 0 <= step < self.steps_per_epoch
        ):
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
    def run(
        self,
        step_fn: Callable[[torch.Tensor], torch.Tensor],
        train_mode: Callable[[], None],
        epoch_end: Callable[[int], dict] | None = None,
    ) -> dict:
        """Train. `step_fn(batch_positions)` gets indices into 0..n_items-1 and returns the loss;
        `epoch_end(epoch)` returns monitored accuracies, called when the cadence says."""
        start_epoch, start_step, perm, prev_losses = self._restore()
        self.ctx.emit(
            PhaseStart(
                **self.ref.model_dump(),
                epochs=self.epochs,
                steps_per_epoch=self.steps_per_epoch,
                batch_size=self.batch_size,
                start_epoch=start_epoch,
            )
        )
        clock = self.ctx.clock
        phase_t0 = clock()
        done = start_epoch * self.steps_per_epoch + start_step
        self._start_losses(done, prev_losses if start_step > 0 else None)
        self.steps = self._make_steps(step_fn)
        try:
            self._train(start_epoch, start_step, perm, done, train_mode, epoch_end)
        finally:
            if isinstance(self.steps, GraphedSteps):
                self.steps.close()
        out = {k: v for k, v in self._last_epoch.items() if k in ("loss", "val_acc", "knn_acc", "rot_acc")}
        return {"seconds": clock() - phase_t0, **out}

    def _train(
        self,
        start_epoch: int,
        start_step: int,
        perm: torch.Tensor | None,
        done: int,
        train_mode: Callable[[], None],
        epoch_end: Callable[[int], dict] | None,
    ) -> None:
        """The epochs from `start_epoch`, step `start_step` (`done` steps of the phase are done)."""
        clock = self.ctx.clock
        first = done
        self._pending: list[tuple[int, float, dict]] = []  # finished epochs whose events wait for a read
        self._log_t = self._checkpoint_t = clock()
        self._log_done = done
        for epoch in range(start_epoch, self.epochs):
            train_mode()
            if perm is None or start_step == 0:
                perm = torch.randperm(self.n_items, device=self.ctx.device, generator=self.generator)
            epoch_t0 = clock()
            for step in range(start_step, self.steps_per_epoch):
                self.steps(done, perm[step * self.batch_size : (step + 1) * self.batch_size])
                if self.after_step is not None:  # outside a graph: eager after each replay too
                    self.after_step()
                done += 1
                if step + 1 == self.steps_per_epoch:
                    self._end_epoch(epoch, epoch_end, train_mode, clock() - epoch_t0)
                if done == self.total_steps:
                    break
                if self.cadence.log_due(done, clock() - self._log_t):
                    self._log_point(done)
                if self.cadence.checkpoint_due(done, clock() - self._checkpoint_t):
                    self._checkpoint(done, perm)
                if self.ctx.stop.requested:
                    self._stop(done, perm)
            start_step = 0
        if done > first:  # steps ran: the last log point and the final checkpoint
            self._log_point(done)
            self._save(self.epochs, 0, None)

    def _make_steps(self, step_fn: Callable[[torch.Tensor], torch.Tensor]) -> EagerSteps | GraphedSteps:
        backend = self.ctx.dev.graphs
        if backend is None:
            return EagerSteps(self.cfg, self.total_steps, self.optimizer, step_fn, self.losses)
        return GraphedSteps(
            self.cfg,
            self.total_steps,
            self.optimizer,
            self.modules,
            step_fn,
            self.losses,
            self.generator,
            self.batch_size,
            backend,
            lambda msg: self.ctx.log(f"{self.ref.phase}: {msg}", "warning"),
        )

    def _start_losses(self, done: int, prev: torch.Tensor | None) -> None:
        """The phase's loss buffer on the device and its host copy up to `done` steps (a
        resume mid-epoch brings the epoch's earlier losses from the checkpoint)."""
        self.losses = torch.zeros(self.total_steps, device=self.ctx.device)
        self._values = [0.0] * self.total_steps
        if prev is not None:
            first = done - len(prev)
            self._values[first:done] = prev.tolist()
            self.losses[first:done] = prev.to(self.ctx.device)
        self._read = done  # steps whose losses are on the host, checked finite

    def _read_losses(self, done: int) -> None:
        """Bring the losses of steps up to `done` to the host (one device read), fail on the
        first non-finite one, and emit the epoch events that were waiting for them."""
        bad = None
        if done > self._read:
            values = self.losses[self._read : done].tolist()
            bad = next((i for i, v in enumerate(values) if not math.isfinite(v)), None)
            self._values[self._read : done] = values
            self._read = done if bad is None else self._read + bad
        # Epochs whose losses are all read (and finite) get their events, also before a failure.
        ready = [p for p in self._pending if (p[0] + 1) * self.steps_per_epoch <= self._read]
        for epoch, seconds, metrics in ready:
            self._emit_epoch(epoch, seconds, metrics)
        self._pending = self._pending[len(ready) :]
        if bad is not None:
            self._fail(self._read, values[bad])

    def _fail(self, gstep: int, value: float) -> None:
        epoch = gstep // self.steps_per_epoch
        raise RunFailed(
            f"loss became {value} in {self.ref.phase} at epoch {epoch + 1}, step {gstep + 1}; "
            f"the last checkpoint before it is kept (lower the learning rate?)"
        )

    def _log_point(self, done: int) -> None:
        self._read_losses(done)
        now = self.ctx.clock()
        items = (done - self._log_done) * self.batch_size * self.images_per_item
        self.ctx.emit(
            Step(
                **self.ref.model_dump(),
                epoch=(done - 1) // self.steps_per_epoch,
                step=done,
                loss=self._values[done - 1],
                lr=lr_at(self.cfg, done - 1, self.total_steps),
                images_per_s=round(items / max(1e-9, now - self._log_t), 1),
            )
        )
        self._log_t, self._log_done = now, done

    def _checkpoint(self, done: int, perm: torch.Tensor) -> None:
        """Save after `done` steps (never past a non-finite loss)."""
        self._read_losses(done)
        epoch, step = divmod(done, self.steps_per_epoch)
        self._save(epoch, step, perm if step else None)

    def _stop(self, done: int, perm: torch.Tensor) -> None:
        """Save where we are and raise RunInterrupted (a user's Ctrl-C or a scheduler's SIGTERM)."""
        self._checkpoint(done, perm)
        raise RunInterrupted(
            f"{self.ctx.stop.reason} in {self.ref.phase} at epoch "
            f"{(done - 1) // self.steps_per_epoch + 1}, step {done}; checkpoint saved"
        )

    def _end_epoch(
        self, epoch: int, epoch_end: Callable[[int], dict] | None, train_mode: Callable[[], None], seconds: float
    ) -> None:
        """Validate if the cadence says so. The epoch event waits for the next read of the
        losses, except after a validation pass: it has waited for the device already, and its
        accuracy goes out at once (a sweep's pruner stops the phase at the epoch it measured)."""
        metrics = {}
        if epoch_end is not None and self.cadence.validation_due(epoch + 1):
            metrics = epoch_end(epoch)
            train_mode()
        self._pending.append((epoch, seconds, metrics))
        if metrics:
            self._read_losses((epoch + 1) * self.steps_per_epoch)

    def _emit_epoch(self, epoch: int, seconds: float, metrics: dict) -> None:
        steps = (epoch + 1) * self.steps_per_epoch
        epoch_losses = self._values[steps - self.steps_per_epoch : steps]
        event = Epoch(
            **self.ref.model_dump(),
            epoch=epoch + 1,
            epochs=self.epochs,
            step=steps,
            loss=math.fsum(epoch_losses) / len(epoch_losses),
            lr=lr_at(self.cfg, steps - 1, self.total_steps),
            images_per_s=round(self.steps_per_epoch * self.batch_size * self.images_per_item / max(1e-9, seconds), 1),
            seconds=round(seconds, 3),
            **metrics,
        )
        self.ctx.emit(event)
        self._last_epoch = event.model_dump(exclude={"t"}, exclude_none=True)
