"""How a phase runs its optimizer steps: eagerly, or replayed from one captured CUDA graph.

A step of ResNet-20 on a GPU is bound by the host launching a few hundred small kernels; a
CUDA graph replays all of them with one launch. What changes from step to step must then live
on the device: the batch positions (a static buffer copied before each replay), the step
counter (incremented inside the graph), the learning rate (looked up by that counter in the
phase's schedule, `optim.lr_table`), the random draws (the phase generator is registered with
the graph, so each replay draws what the same eager step would) and the loss (written to the
phase's loss buffer at the counter's position, read back only at log points).

`GraphedSteps` runs the first steps eagerly on a side stream (optimizer state, cuDNN's
algorithm choice and every lazily built buffer exist before capture), then captures one step
and checks it: from one saved state, two replays and two eager steps must agree (losses, and
every weight, statistic and optimizer buffer to within a small fraction of the steps' own
change). A capture that raises or a check that fails costs one log line and the phase goes on
with eager steps; it never fails the run. The backend is injectable, so the whole control
flow runs on the CPU in tests (`tests/test_cudagraph.py`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Protocol

import torch
from torch import nn

from ssltui.core.config import TrainConfig
from ssltui.core.errors import first_line
from ssltui.trainer.optim import lr_at, lr_table

StepFn = Callable[[torch.Tensor], torch.Tensor]


class GraphBackend(Protocol):
    """Capture and replay: CUDA graphs on a GPU, fakes in the CPU tests."""

    def side_stream(self) -> contextlib.AbstractContextManager: ...

    def capture(self, fn: Callable[[], None], generators: list[torch.Generator]) -> Callable[[], None]: ...

    def synchronize(self) -> None: ...


class CudaGraphs:
    """torch.cuda.CUDAGraph on one device."""

    def __init__(self, device: torch.device):
        self.device = device

    @contextlib.contextmanager
    def side_stream(self) -> Iterator[None]:
        ambient = torch.cuda.current_stream(self.device)
        side = torch.cuda.Stream(self.device)
        side.wait_stream(ambient)
        with torch.cuda.stream(side):
            yield
        ambient.wait_stream(side)

    def capture(self, fn: Callable[[], None], generators: list[torch.Generator]) -> Callable[[], None]:
        graph = torch.cuda.CUDAGraph()
        for gen in generators:
            if gen.device.type == "cuda":
                graph.register_generator_state(gen)
        # thread_local: CUDA calls of other threads of the process (a UI, a loader) cannot
        # invalidate this capture.
        with torch.cuda.graph(graph, capture_error_mode="thread_local"):
            fn()
        return graph.replay

    def synchronize(self) -> None:
        torch.cuda.synchronize(self.device)


class CallGraphs:
    """Keeps the step at 'capture' and calls it at each 'replay': the graph path's whole control
    flow without a GPU (the CPU tests and the GPU check's CPU rehearsal)."""

    def __init__(self) -> None:
        self.captures = self.replays = 0

    def side_stream(self) -> contextlib.AbstractContextManager:
        return contextlib.nullcontext()

    def capture(self, fn: Callable[[], None], generators: list[torch.Generator]) -> Callable[[], None]:
        self.captures += 1

        def replay() -> None:
            self.replays += 1
            fn()

        return replay

    def synchronize(self) -> None:
        pass


class EagerSteps:
    """One optimizer step a call, the learning rate set from `lr_at` as a Python float: the
    loop's steps as they have always run (bit for bit on the CPU)."""

    def __init__(
        self,
        cfg: TrainConfig,
        total_steps: int,
        optimizer: torch.optim.Optimizer,
        step_fn: StepFn,
        losses: torch.Tensor,
    ):
        self.cfg, self.total_steps = cfg, total_steps
        self.optimizer, self.step_fn, self.losses = optimizer, step_fn, losses

    def __call__(self, gstep: int, idx: torch.Tensor) -> None:
        lr = lr_at(self.cfg, gstep, self.total_steps)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.step_fn(idx)
        loss.backward()
        self.optimizer.step()
        self.losses[gstep] = loss.detach()


class GraphedSteps:
    """Eager warm-up, then one captured step replayed; eager steps if capture or its check fails."""

    WARMUP = 2  # eager steps before capture
    MIN_REPLAYS = 8  # fewer steps left after the warm-up: not worth a capture
    LOSS_RTOL = 2e-3  # the check's tolerances (eager and replayed steps differ by reduction order only)
    STATE_RTOL = 0.05  # of the change two steps make to each weight, statistic and buffer

    def __init__(
        self,
        cfg: TrainConfig,
        total_steps: int,
        optimizer: torch.optim.Optimizer,
        modules: dict[str, nn.Module],
        step_fn: StepFn,
        losses: torch.Tensor,
        generator: torch.Generator,
        batch_size: int,
        backend: GraphBackend,
        log: Callable[[str], None],
    ):
        self.eager = EagerSteps(cfg, total_steps, optimizer, step_fn, losses)
        self.total_steps, self.optimizer, self.modules = total_steps, optimizer, modules
        self.step_fn, self.losses, self.generator = step_fn, losses, generator
        self.backend, self.log = backend, log
        device = losses.device
        self.table = lr_table(cfg, total_steps, device)
        self.lr_buf = torch.zeros(1, device=device)
        self.step_t = torch.zeros(1, dtype=torch.long, device=device)
        self.idx = torch.zeros(batch_size, dtype=torch.long, device=device)
        self.replay: Callable[[], None] | None = None
        self.warm = 0
        self.mode = "warm-up"  # then "graph" or "eager"
        self.check: dict = {}  # what the self-check measured (the GPU check script reports it)

    def __call__(self, gstep: int, idx: torch.Tensor) -> None:
        if self.mode == "graph":
            self.idx.copy_(idx)
            self.replay()
        elif self.mode == "eager":
            self.eager(gstep, idx)
        elif self.warm == 0 and self.total_steps - gstep < self.WARMUP + self.MIN_REPLAYS:
            self.mode = "eager"
            self.eager(gstep, idx)
        else:
            self._prepare(gstep, idx)

    # ------------------------------------------------------------ the step on the device
    def _device_step(self) -> None:
        """What the graph holds: lr by the step counter, the step on `self.idx`, the loss kept."""
        torch.index_select(self.table, 0, self.step_t, out=self.lr_buf)
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.step_fn(self.idx)
        loss.backward()
        self.optimizer.step()
        self.losses.index_copy_(0, self.step_t, loss.detach().float().view(1))
        self.step_t.add_(1)

    def _use_device_lr(self) -> None:
        lr = self.lr_buf.view(())
        for group in self.optimizer.param_groups:
            group["lr"] = lr
            if "capturable" in group and lr.is_cuda:  # Adam(W): step counters on the device, capture allowed
                group["capturable"] = True

    # ------------------------------------------------------------ warm-up, capture and its check
    def _prepare(self, gstep: int, idx: torch.Tensor) -> None:
        """Step `gstep` as a warm-up step, or capture, check and replay it. Whatever raises on the
        way, the state goes back to where it was before this step, and the step runs eagerly."""
        self.step_t.fill_(gstep)
        self.idx.copy_(idx)
        state = self._state_tensors()
        before = self._snapshot(state)
        try:
            if self.warm < self.WARMUP:
                if self.warm == 0:
                    self._use_device_lr()
                with self.backend.side_stream():
                    self._device_step()
                self.warm += 1
                return
            why = self._capture(gstep, state, before)
        except Exception as exc:  # noqa: BLE001 - any failure here means eager steps, never a failed run
            self._restore_after_failure(state, before)
            why = (
                f"{'capture' if self.warm == self.WARMUP else 'a warm-up step'} failed "
                f"({type(exc).__name__}: {first_line(exc)[:160]})"
            )
        if why is not None:
            self._give_up(why)
            self.eager(gstep, idx)
            return
        self.mode = "graph"
        self(gstep, idx)

    def _capture(self, gstep: int, state: list[torch.Tensor], before: tuple) -> str | None:
        """Capture the step, then from the state `before`: two replays, two eager steps; the
        state is left as `before`. None if they agree, else why not."""
        replay = self.backend.capture(self._device_step, [self.generator])
        replay()
        replay()
        graphed = self._snapshot(state, gstep)
        self._restore(state, before)
        self._device_step()
        self._device_step()
        eager = self._snapshot(state, gstep)
        self._restore(state, before)
        self.check = _agreement(graphed, eager, before, self.STATE_RTOL)
        if self.check["loss_diff"] > self.LOSS_RTOL * max(1.0, self.check["loss"]) or self.check["worst"] > 1.0:
            return (
                "the replayed steps disagree with eager ones (losses "
                f"{self.check['loss_diff']:.3g} apart; a state tensor {self.check['state_diff']:.3g} "
                f"apart for a change of {self.check['state_change']:.3g})"
            )
        self.replay = replay
        return None

    def close(self) -> None:
        """Let the graph and its memory go at the phase's end (the gradients it wrote live in its
        memory pool); `mode` still says how the phase ran."""
        self.replay = None
        self.optimizer.zero_grad(set_to_none=True)

    def _give_up(self, why: str) -> None:
        self.log(f"CUDA graph: {why}; this phase runs eager steps")
        self.mode = "eager"

    def _restore_after_failure(self, state: list[torch.Tensor], before: tuple) -> None:
        try:
            self.backend.synchronize()
        except Exception:  # noqa: BLE001 - a failed capture can leave its error to the next sync
            pass
        self._restore(state, before)

    def _state_tensors(self) -> list[torch.Tensor]:
        """Every tensor a step changes: weights, buffers, optimizer state, the step counter."""
        seen: dict[int, torch.Tensor] = {}
        for module in self.modules.values():
            for t in (*module.parameters(), *module.buffers()):
                seen.setdefault(id(t), t)
        for st in self.optimizer.state.values():
            for t in st.values():
                if isinstance(t, torch.Tensor):
                    seen.setdefault(id(t), t)
        seen.setdefault(id(self.step_t), self.step_t)
        return list(seen.values())

    def _rng(self) -> list[torch.Tensor]:
        device = self.losses.device
        default = torch.cuda.get_rng_state(device) if device.type == "cuda" else torch.get_rng_state()
        return [self.generator.get_state(), default]

    def _snapshot(self, state: list[torch.Tensor], gstep: int | None = None) -> tuple:
        """Copies of the state tensors, the RNG states, which optimizer state exists and (after
        two steps from `gstep`) their losses."""
        with torch.no_grad():
            copies = [t.detach().clone() for t in state]
        losses = self.losses[gstep : gstep + 2].clone() if gstep is not None else None
        structure = {p: dict(st) for p, st in self.optimizer.state.items()}
        return copies, self._rng(), losses, structure

    def _restore(self, state: list[torch.Tensor], snapshot: tuple) -> None:
        copies, (gen_state, default_state), _, structure = snapshot
        # Optimizer state a failed step created (a momentum buffer not yet written) goes again.
        self.optimizer.state.clear()
        self.optimizer.state.update({p: dict(st) for p, st in structure.items()})
        with torch.no_grad():
            for t, c in zip(state, copies):
                t.copy_(c)
        self.generator.set_state(gen_state)
        if self.losses.device.type == "cuda":
            torch.cuda.set_rng_state(default_state, self.losses.device)
        else:
            torch.set_rng_state(default_state)


def _agreement(graphed: tuple, eager: tuple, before: tuple, state_rtol: float) -> dict:
    """How far two replays landed from two eager steps taken from the same state, tensor by
    tensor (one host read). A float tensor may differ by `state_rtol` of its own change over
    the two steps (plus 1e-6: reduction order); counters must be equal. `worst` is the largest
    difference over its allowance (over 1: the check fails)."""
    g, _, g_loss, _ = graphed
    e, _, e_loss, _ = eager
    diff = torch.stack([(x - y).abs().max().float() for x, y in zip(g, e)])
    change = torch.stack([(y - b).abs().max().float() for y, b in zip(e, before[0])])
    is_float = torch.tensor([t.is_floating_point() for t in e], device=diff.device)
    allowed = torch.where(is_float, state_rtol * change + 1e-6, 0.5)
    ratio = diff / allowed
    worst = ratio.argmax()
    values = torch.stack(
        [ratio[worst], diff[worst], change[worst], (g_loss - e_loss).abs().max(), e_loss.abs().max()]
    ).tolist()
    return dict(zip(("worst", "state_diff", "state_change", "loss_diff", "loss"), values))
