"""When a phase logs, validates and saves: pure functions of steps and seconds (no torch).

A log point reads the losses back from the device (a host sync), so log points come by wall
time, a few a second at most, not every so many steps: an epoch of 3 steps must not cost a sync
a step. Validation passes are spread evenly over the phase's steps, so a phase of 1,000 tiny
epochs validates as often as one of 20 long ones. Checkpoints come by wall time (and at phase
ends and stops, which the loop handles), with the older every-N-epochs rule kept as an option.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Cadence:
    """The cadence of one phase of `total_steps` steps, `steps_per_epoch` an epoch.

    `log_seconds`: the least time between log points (0: every step). `val_every`: validate
    every N epochs (0: `val_passes` passes spread over the steps; both 0: only at the end).
    `checkpoint_seconds`: the least time between checkpoints inside the phase (0: none by
    time); `checkpoint_every`: also every N epochs (0: not by epochs).
    """

    total_steps: int
    steps_per_epoch: int
    log_seconds: float = 0.25
    val_every: int = 0
    val_passes: int = 20
    checkpoint_seconds: float = 60.0
    checkpoint_every: int = 0

    @property
    def epochs(self) -> int:
        return self.total_steps // self.steps_per_epoch

    def log_due(self, steps_done: int, seconds_since_log: float) -> bool:
        """A log point after `steps_done` steps of the phase: when `log_seconds` have passed
        since the last one, and always after the last step."""
        return steps_done >= self.total_steps or seconds_since_log >= self.log_seconds

    def validation_due(self, epochs_done: int) -> bool:
        """Validate at the end of epoch `epochs_done` (1-based)? Always after the last epoch;
        otherwise every `val_every` epochs, or at the first epoch end at or past each of
        `val_passes` evenly spaced steps."""
        if epochs_done >= self.epochs:
            return True
        if self.val_every:
            return epochs_done % self.val_every == 0
        return self._passes(epochs_done * self.steps_per_epoch) > self._passes((epochs_done - 1) * self.steps_per_epoch)

    def _passes(self, steps: int) -> int:
        """Validation targets (at steps total * i / passes, i = 1..passes) reached by `steps`."""
        return steps * self.val_passes // self.total_steps

    def checkpoint_due(self, steps_done: int, seconds_since_checkpoint: float) -> bool:
        """A checkpoint inside the phase after `steps_done` steps: every `checkpoint_every`
        epochs, or when `checkpoint_seconds` have passed since the last one. (The loop saves
        at the phase's end and on a stop whatever this says.)"""
        if (
            self.checkpoint_every
            and steps_done % self.steps_per_epoch == 0
            and (steps_done // self.steps_per_epoch) % self.checkpoint_every == 0
        ):
            return True
        return self.checkpoint_seconds > 0 and seconds_since_checkpoint >= self.checkpoint_seconds


@dataclass
class CadenceCounts:
    """How many log points, validation passes and checkpoints a phase makes."""

    steps: int
    logs: int = 0
    validations: int = 0
    checkpoints: int = 0


def simulate(cadence: Cadence, step_seconds: float, validation_seconds: float = 0.0) -> CadenceCounts:
    """The counts `Phase` makes under `cadence` when every step takes `step_seconds` and every
    validation pass `validation_seconds` (a fake clock: the loop asks these same functions)."""
    counts = CadenceCounts(cadence.total_steps)
    now = last_log = last_ck = 0.0
    for done in range(1, cadence.total_steps + 1):
        now += step_seconds
        if done % cadence.steps_per_epoch == 0 and cadence.validation_due(done // cadence.steps_per_epoch):
            counts.validations += 1
            now += validation_seconds
        if done == cadence.total_steps:
            counts.logs += 1
            counts.checkpoints += 1  # the phase's final checkpoint
            break
        if cadence.log_due(done, now - last_log):
            counts.logs += 1
            last_log = now
        if cadence.checkpoint_due(done, now - last_ck):
            counts.checkpoints += 1
            last_ck = now
    return counts
