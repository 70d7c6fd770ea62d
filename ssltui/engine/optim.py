"""Optimizers (SGD, AdamW, LARS) and learning-rate schedules as a function of training progress."""

from __future__ import annotations

import math

import torch
from torch import nn

from ssltui.engine.config import TrainConfig


class LARS(torch.optim.Optimizer):
    """Layer-wise adaptive rate scaling (You et al. 2017) as SimCLR implements it.

    For each parameter tensor w with gradient g (SimCLR's `lars_optimizer.py`, classic momentum):
    g <- g + wd * w; trust <- eta * ||w|| / ||g|| (1 where either norm is 0);
    v <- m * v + lr * trust * g; w <- w - v. The learning rate enters the momentum buffer, so
    a schedule changes the size of new steps only, as in SimCLR. Groups with
    `lars_exclude=True` (biases and BatchNorm parameters) skip both the weight decay and the
    adaptation (trust = 1).
    """

    def __init__(self, params, lr: float, momentum: float = 0.9, weight_decay: float = 0.0,
                 trust_coefficient: float = 0.001):
        defaults = dict(lr=lr, momentum=momentum, weight_decay=weight_decay,
                        trust_coefficient=trust_coefficient, lars_exclude=False)
        super().__init__(params, defaults)

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
            lr = group["lr"]
            grads = [p.grad for p in params]
            # One multi-tensor op per stage (torch._foreach_*), not a handful of kernels per
            # parameter: ResNet-20 has ~60 small tensors and the step is short on a GPU.
            if group["lars_exclude"]:
                updates = torch._foreach_mul(grads, lr)
            else:
                if group["weight_decay"]:
                    grads = torch._foreach_add(grads, params, alpha=group["weight_decay"])
                w_norm = torch.stack(torch._foreach_norm(params))
                g_norm = torch.stack(torch._foreach_norm(grads))
                # Tensors, not Python floats: no host sync.
                trust = torch.where((w_norm > 0) & (g_norm > 0),
                                    group["trust_coefficient"] * w_norm / g_norm.clamp(min=1e-30),
                                    torch.ones_like(w_norm))
                updates = torch._foreach_mul(grads, list((trust * lr).unbind()))
            bufs = []
            for p, u in zip(params, updates):
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(p)
                bufs.append(state["momentum_buffer"])
            torch._foreach_mul_(bufs, group["momentum"])
            torch._foreach_add_(bufs, updates)
            torch._foreach_sub_(params, bufs)
        return loss


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


def build_optimizer(cfg: TrainConfig, modules: list[nn.Module]) -> torch.optim.Optimizer:
    lr = peak_lr(cfg)
    if cfg.optimizer == "lars":
        return LARS(param_groups(modules, True), lr=lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                    trust_coefficient=cfg.lars_trust_coefficient)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(param_groups(modules, True), lr=lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(param_groups(modules, False), lr=lr, momentum=cfg.momentum,
                           nesterov=cfg.nesterov and cfg.momentum > 0, weight_decay=cfg.weight_decay)


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
        return peak * cfg.gamma ** drops
    t = (progress - warm) / max(1e-12, 1.0 - warm)
    return peak * 0.5 * (1.0 + math.cos(math.pi * min(1.0, t)))
