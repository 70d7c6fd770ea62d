"""ResNet-20 for CIFAR (He et al. 2016, section 4.2): 3x3 stem, three stages of three basic blocks."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

STAGE_WIDTHS = (16, 32, 64)


class _NoBatchCount:
    """BatchNorm without its batch counter. torch adds 1 to `num_batches_tracked` in every
    training forward (a kernel per layer per step: 20 a step of ResNet-20 on a GPU) but reads it
    only when `momentum` is None (a cumulative average); with a fixed momentum the counter is
    dead weight. The buffer stays (state dicts keep their keys) and reads 0."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.momentum is None:
            return super().forward(x)
        self._check_input_dim(x)
        stats = not self.training or self.track_running_stats
        return F.batch_norm(
            x,
            self.running_mean if stats else None,
            self.running_var if stats else None,
            self.weight,
            self.bias,
            self.training or self.running_mean is None,
            self.momentum,
            self.eps,
        )


class BatchNorm2d(_NoBatchCount, nn.BatchNorm2d):
    pass


class BatchNorm1d(_NoBatchCount, nn.BatchNorm1d):
    pass


class BasicBlock(nn.Module):
    """Two 3x3 convs with a shortcut; option A (zero-padded identity) when the shape changes."""

    def __init__(self, in_ch: int, out_ch: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=False)
        self.bn1 = BatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, 1, 1, bias=False)
        self.bn2 = BatchNorm2d(out_ch)
        self.stride = stride
        self.pad = out_ch - in_ch

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1 and self.pad == 0:
            return x
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, self.pad // 2, self.pad - self.pad // 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet20(nn.Module):
    """The encoder: image (N, 3, 32, 32) -> 64-d feature after global average pooling."""

    feature_dim = STAGE_WIDTHS[-1]

    def __init__(self, blocks_per_stage: int = 3):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 1, 1, bias=False), BatchNorm2d(16), nn.ReLU())
        stages = []
        in_ch = 16
        for i, width in enumerate(STAGE_WIDTHS):
            blocks = []
            for b in range(blocks_per_stage):
                blocks.append(BasicBlock(in_ch, width, 2 if (b == 0 and i > 0) else 1))
                in_ch = width
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.ModuleList(stages)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward_stages(self, x: torch.Tensor, upto: int = 3) -> list[torch.Tensor]:
        """The output of each of the first `upto` stages (feature maps, the probe's readout)."""
        x = self.stem(x)
        outs = []
        for stage in self.stages[:upto]:
            x = stage(x)
            outs.append(x)
        return outs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)

    def readout(self, x: torch.Tensor, stages: Sequence[int] = (3,), grid: int = 1) -> torch.Tensor:
        """The outputs of `stages` (1-3), each average-pooled to grid x grid, flattened and
        concatenated: (N, sum of width x grid^2). Stage 3 at grid 1 is `forward`'s feature."""
        if tuple(stages) == (3,) and grid == 1:
            return self(x)
        outs = self.forward_stages(x, upto=max(stages))
        return torch.cat([torch.flatten(F.adaptive_avg_pool2d(outs[s - 1], grid), 1) for s in stages], 1)

    def frozen_modules(self, n_stages: int) -> list[nn.Module]:
        """The stem and the first `n_stages` stages (n_stages=0: nothing)."""
        if n_stages <= 0:
            return []
        return [self.stem, *self.stages[:n_stages]]


class Classifier(nn.Module):
    """Encoder plus a linear head (the supervised baseline, fine-tuning, rotation prediction)."""

    def __init__(self, encoder: ResNet20, num_outputs: int):
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(encoder.feature_dim, num_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x))


def freeze(modules: list[nn.Module]) -> None:
    """Freeze weights (requires_grad on every parameter) and BN statistics (eval mode)."""
    for m in modules:
        for p in m.parameters():
            p.requires_grad_(False)
        m.eval()


def set_train_mode(model: nn.Module, frozen: list[nn.Module]) -> None:
    """model.train(), but frozen modules stay in eval so their BatchNorm statistics don't move."""
    model.train()
    for m in frozen:
        m.eval()


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
