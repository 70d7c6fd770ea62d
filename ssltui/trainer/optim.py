"""Optimizers (SGD, AdamW, LARS) and learning-rate schedules as a function of training progress."""

from __future__ import annotations

import itertools
import math

import torch
from torch import nn

from ssltui.core.config import TrainConfig


class LARS(torch.optim.Optimizer):
    """Layer-wise adaptive rate scaling (You et al. 2017) as SimCLR implements it.

    For each parameter tensor w with gradient g (SimCLR's `lars_optimizer.py`, classic momentum):
    g <- g + wd * w; trust <- eta * ||w|| / ||g|| (1 where either norm is 0);
    v <- m * v + lr * trust * g; w <- w - v. The learning rate enters the momentum buffer, so
    a schedule changes the size of new steps only, as in SimCLR. Groups with
    `lars_exclude=True` (biases and BatchNorm parameters) skip both the weight decay and the
    adaptation (trust = 1). The learning rate may be a float or a 0-d tensor on the device.

    A step is a fixed handful of operations whatever the number of tensors: multi-tensor ops
    (torch._foreach_*) on lists that agree tensor by tensor (which CUDA runs as one kernel),
    and the per-tensor scaling of the adapted group as one product over all its gradients
    laid end to end (per-tensor 0-d factors would make CUDA fall back to a kernel a tensor).
    """

    def __init__(
        self, params, lr: float, momentum: float = 0.9, weight_decay: float = 0.0, trust_coefficient: float = 0.001
    ):
        defaults = dict(
            lr=lr, momentum=momentum, weight_decay=weight_decay, trust_coefficient=trust_coefficient, lars_exclude=False
        )
        super().__init__(params, defaults)
        self._buffers: dict[tuple, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            grads = [p.grad for p in params]
            if group["lars_exclude"]:
                updates = torch._foreach_mul(grads, group["lr"])
            else:
                updates = self._adapted(group, params, grads)
            bufs = []
            for p in params:
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(p)
                bufs.append(state["momentum_buffer"])
            torch._foreach_mul_(bufs, group["momentum"])
            torch._foreach_add_(bufs, updates)
            torch._foreach_sub_(params, bufs)
        return loss

    def _adapted(self, group: dict, params: list[torch.Tensor], grads: list[torch.Tensor]) -> list[torch.Tensor]:
        """lr * trust * (g + wd * w) of every tensor of an adapted group, shaped like its parameter."""
        if group["weight_decay"]:
            grads = torch._foreach_add(grads, params, alpha=group["weight_decay"])
        norms = torch.stack(torch._foreach_norm([*params, *grads])).view(2, -1)
        w_norm, g_norm = norms
        # Tensors, not Python floats: no host sync. A zero norm makes the ratio 0, inf or nan,
        # all replaced by trust 1.
        trust = torch.where((norms > 0).all(0), w_norm / g_norm * group["trust_coefficient"], 1.0)
        ids, flat, scale = self._flat_buffers(grads)
        torch.cat([_memory_order(g) for g in grads], out=flat)
        torch.index_select(trust * group["lr"], 0, ids, out=scale)
        flat.mul_(scale)
        offsets = itertools.accumulate((g.numel() for g in grads), initial=0)
        return [flat.as_strided(g.shape, g.stride(), offset) for g, offset in zip(grads, offsets)]

    def _flat_buffers(self, tensors: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """For the tensors laid end to end: which tensor each element belongs to, and two
        buffers of their length (made once: no large allocation a step, static for CUDA graphs)."""
        sizes = tuple(t.numel() for t in tensors)
        key = (sizes, tensors[0].device, tensors[0].dtype)
        if key not in self._buffers:
            t = tensors[0]
            ids = torch.cat([torch.full((n,), i, device=t.device) for i, n in enumerate(sizes)])
            self._buffers[key] = (ids, t.new_empty(len(ids)), t.new_empty(len(ids)))
        return self._buffers[key]


def _memory_order(t: torch.Tensor) -> torch.Tensor:
    """A dense tensor's elements as a 1-d view in memory order (contiguous or channels_last)."""
    return t.as_strided((t.numel(),), (1,))


def peak_lr(cfg: TrainConfig) -> float:
    if cfg.lr_scaling == "linear":
        return cfg.lr * cfg.batch_size / 256
    if cfg.lr_scaling == "sqrt":
        return cfg.lr * math.sqrt(cfg.batch_size)
    return cfg.lr


def param_groups(modules: list[nn.Module], exclude_norm_bias: bool) -> list[dict]:
    """Trainable parameters, with 1-d ones (biases, BatchNorm) in their own group when asked."""
    params = [p for m in modules for p in m.parameters() if p.requires_grad]
    if not exclude_norm_bias:
        return [{"params": params}]
    regular = [p for p in params if p.ndim > 1]
    norm_bias = [p for p in params if p.ndim <= 1]
    groups = [{"params": regular}]
    if norm_bias:
        groups.append({"params": norm_bias, "weight_decay": 0.0, "lars_exclude": True})
    return groups


def build_optimizer(cfg: TrainConfig, modules: list[nn.Module], fused: bool | None = None) -> torch.optim.Optimizer:
    """The phase's optimizer over the modules' trainable parameters.

    SGD and AdamW take torch's fused kernels (one kernel a step) when `fused`, by default when
    the parameters are on CUDA; SGD on the CPU runs torch's multi-tensor path, bit for bit the
    same numbers as its per-tensor loop (tests/test_optim.py checks it).
    """
    lr = peak_lr(cfg)
    if cfg.optimizer == "lars":
        return LARS(
            param_groups(modules, True),
            lr=lr,
            momentum=cfg.momentum,
            weight_decay=cfg.weight_decay,
            trust_coefficient=cfg.lars_trust_coefficient,
        )
    if fused is None:
        fused = any(p.is_cuda for m in modules for p in m.parameters())
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(param_groups(modules, True), lr=lr, weight_decay=cfg.weight_decay, fused=fused or None)
    return torch.optim.SGD(
        param_groups(modules, False),
        lr=lr,
        momentum=cfg.momentum,
        nesterov=cfg.nesterov and cfg.momentum > 0,
        weight_decay=cfg.weight_decay,
        fused=fused or None,
        foreach=None if fused else True,
    )


def lr_at(cfg: TrainConfig, step: int, total_steps: int) -> float:
    """Learning rate at optimizer step `step` (0-based) of `total_steps`.

    Warm-up and milestones are given in epochs of the nominal schedule and scaled to the
    actual length, so a run stretched by `min_steps` keeps the schedule's shape.
    """
    peak = peak_lr(cfg)
    progress = step / max(1, total_steps)  # in [0, 1)
    warm = cfg.warmup_epochs / cfg.epochs
    if warm > 0 and progress < warm:
        return peak * (step + 1) / max(1.0, warm * total_steps)
    if cfg.schedule == "constant":
        return peak
    if cfg.schedule == "step":
        drops = sum(1 for m in cfg.milestones if progress >= m / cfg.epochs)
        return peak * cfg.gamma**drops
    t = (progress - warm) / max(1e-12, 1.0 - warm)
    return peak * 0.5 * (1.0 + math.cos(math.pi * min(1.0, t)))


def lr_table(cfg: TrainConfig, total_steps: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """`lr_at` of every step 0..total_steps-1 as float32 on `device` (the optimizers' kernels
    read a tensor learning rate as float32): a graphed step looks its rate up by the step
    counter on the device, with no host involvement."""
    return torch.tensor([lr_at(cfg, s, total_steps) for s in range(total_steps)], dtype=torch.float32, device=device)
