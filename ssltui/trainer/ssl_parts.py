"""Parts the self-supervised methods share: MLP heads, a momentum (EMA) target network with its
cosine schedule, a queue of keys with its pointer, and the collapse monitor's measurement.

Everything that changes during training is a tensor updated in place on the device (the EMA
step, the queue and its pointer), so it lives inside a captured CUDA-graph step and in the
phase checkpoint (each part is an nn.Module whose state is buffers and parameters).
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from ssltui.trainer.models.resnet import BatchNorm1d


def mlp(
    in_dim: int, hidden_dim: int, out_dim: int, layers: int = 2, hidden_bn: bool = True, out_bn: bool = False
) -> nn.Sequential:
    """(Linear -> BatchNorm -> ReLU) x (layers - 1) -> Linear [-> BatchNorm]: the projector and
    predictor of SimCLR, BYOL, SimSiam, Barlow Twins and VICReg (MoCo v2's head has no
    BatchNorm: `hidden_bn=False`). Linear layers followed by BatchNorm have no bias."""
    if layers < 1:
        raise ValueError("an MLP needs at least one layer")
    mods: list[nn.Module] = []
    width = in_dim
    for _ in range(layers - 1):
        mods.append(nn.Linear(width, hidden_dim, bias=not hidden_bn))
        if hidden_bn:
            mods.append(BatchNorm1d(hidden_dim))
        mods.append(nn.ReLU(inplace=True))
        width = hidden_dim
    mods.append(nn.Linear(width, out_dim, bias=not out_bn))
    if out_bn:
        mods.append(BatchNorm1d(out_dim))
    return nn.Sequential(*mods)


class TermMeter(nn.Module):
    """The epoch means of a loss's weighted parts, summed on the device inside the step (an
    in-place add, so a captured CUDA-graph step keeps them) and read once at the epoch's end.
    Its buffers are not saved: a phase resumed mid-epoch reports that epoch's remaining steps."""

    def __init__(self, names: tuple[str, ...]):
        super().__init__()
        self.names = names
        self.register_buffer("sums", torch.zeros(len(names)), persistent=False)
        self.register_buffer("count", torch.zeros(()), persistent=False)

    def add(self, parts: list[torch.Tensor]) -> None:
        self.sums.add_(torch.stack([p.detach().float() for p in parts]))
        self.count.add_(1)

    def read(self) -> dict[str, float] | None:
        """The means since the last read (None if no step ran), and a fresh start."""
        n = float(self.count)
        if n == 0:
            return None
        means = dict(zip(self.names, (self.sums / n).tolist()))
        self.sums.zero_()
        self.count.zero_()
        return means


class MomentumTarget(nn.Module):
    """A target network that follows `online` as an exponential moving average of its weights.

    xi <- tau xi + (1 - tau) theta after each step, with BYOL's cosine schedule
    tau_k = 1 - (1 - tau_base) (cos(pi k / K) + 1) / 2 from tau_base at k = 0 to 1 at k = K
    (`cosine=False`: tau_base throughout, as MoCo). The step k is a device buffer, so the rate is
    computed on the device and the update is one in-place multi-tensor lerp with no host read:
    graph-capturable,
    and resumed exactly from a checkpoint. The target's BatchNorm statistics are its own (it
    runs in training mode on the same batches), as in BYOL's and MoCo's code.
    """

    def __init__(self, online: nn.Module, tau_base: float, cosine: bool = True):
        super().__init__()
        if not 0.0 <= tau_base <= 1.0:
            raise ValueError(f"EMA rate {tau_base!r} is outside [0, 1]")
        self.target = copy.deepcopy(online)
        for p in self.target.parameters():
            p.requires_grad_(False)
        self.tau_base = tau_base
        self.cosine = cosine
        self.total_steps = 1
        self.register_buffer("step", torch.zeros((), dtype=torch.long))

    def set_total_steps(self, total_steps: int) -> None:
        self.total_steps = max(1, total_steps)

    def rate(self) -> torch.Tensor:
        """tau at the current step, a device scalar."""
        if not self.cosine:
            return torch.full((), self.tau_base, device=self.step.device)
        k = self.step.float().clamp(max=self.total_steps)
        return 1 - (1 - self.tau_base) * (torch.cos(k * (math.pi / self.total_steps)) + 1) / 2

    @torch.no_grad()
    def update(self, online: nn.Module) -> None:
        """xi <- xi + (1 - tau)(theta - xi), then k <- k + 1. Where xi equals theta (the first
        update) it is left bit for bit as it is."""
        targets = list(self.target.parameters())
        # One weight tensor per parameter: a single 0-d tensor weight is read back to the host.
        torch._foreach_lerp_(targets, list(online.parameters()), [1 - self.rate()] * len(targets))
        self.step.add_(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.target(x)


class KeyQueue(nn.Module):
    """MoCo's dictionary: the K most recent keys, L2-normalised, and the pointer to the oldest.

    `enqueue` overwrites the oldest rows in place (index_copy_ at (ptr + i) mod K) and advances
    the pointer on the device; any batch size up to K works (MoCo's own code asks K % batch
    == 0). Starts with random unit vectors, as MoCo's does."""

    def __init__(self, size: int, dim: int, generator: torch.Generator | None = None):
        super().__init__()
        if size < 1 or dim < 1:
            raise ValueError("a queue needs a positive size and dimension")
        self.register_buffer("keys", F.normalize(torch.randn(size, dim, generator=generator), dim=1))
        self.register_buffer("ptr", torch.zeros((), dtype=torch.long))

    @property
    def size(self) -> int:
        return self.keys.shape[0]

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor) -> None:
        n = keys.shape[0]
        if n > self.size:
            raise ValueError(f"a batch of {n} keys does not fit a queue of {self.size}")
        rows = (self.ptr + torch.arange(n, device=self.keys.device)).remainder_(self.size)
        self.keys.index_copy_(0, rows, F.normalize(keys.detach().to(self.keys.dtype), dim=1))
        self.ptr.add_(n).remainder_(self.size)


class CollapseMonitor:
    """The SimSiam paper's collapse measure: the standard deviation over the batch of the
    L2-normalised output, averaged over its d dimensions, times sqrt(d) (about 1 for outputs
    spread over the sphere, 0 for a collapsed one). `record` writes the step's value into a
    device buffer (no host read, graph-capturable); `read` fetches the last one."""

    def __init__(self, device: torch.device):
        self.value = torch.full((1,), float("nan"), device=device)

    @torch.no_grad()
    def record(self, z: torch.Tensor) -> None:
        z = F.normalize(z.detach().float(), dim=1)
        self.value.copy_((z.std(dim=0).mean() * math.sqrt(z.shape[1])).view(1))

    def read(self) -> float:
        return float(self.value.item())
