"""The usual way to feed each method: torchvision v2 per-image transforms in a DataLoader.

One loop for every method (`time_usual`); what differs is a `UsualPipeline`: the per-image
transform, how many draws of it an image gives, how a batch is collated and scored. The model
and optimizer are the engine's own (`engine_step`), trained in fp32 without channels_last.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from benchmarks.common import BenchData, BenchOptions, Measurement, time_steps
from benchmarks.engine_step import engine_step, preset_config
from ssltui.trainer.device import DeviceSettings


class Images(torch.utils.data.Dataset):
    """PIL images through a per-image transform, `draws` independent draws per image."""

    def __init__(self, images: np.ndarray, transform, draws: int):
        self.images = images
        self.transform = transform
        self.draws = draws

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        from PIL import Image

        img = Image.fromarray(self.images[i])
        return tuple(self.transform(img) for _ in range(self.draws))


def _tensor_tail(mean: list[float], std: list[float]) -> list:
    from torchvision.transforms import v2

    return [v2.PILToTensor(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)]


def simclr_transform(mean: list[float], std: list[float]):
    """SimCLR's augmentation (the preset's strengths) as torchvision v2, one image at a time."""
    from torchvision.transforms import v2

    sc = preset_config("simclr").simclr
    s = sc.jitter_strength
    return v2.Compose(
        [
            v2.RandomResizedCrop(32, scale=(sc.crop_min_scale, 1.0), antialias=True),
            v2.RandomHorizontalFlip(),
            v2.RandomApply([v2.ColorJitter(0.8 * s, 0.8 * s, 0.8 * s, 0.2 * s)], p=sc.jitter_p),
            v2.RandomGrayscale(p=sc.grayscale_p),
            *_tensor_tail(mean, std),
        ]
    )


def rotnet_transform(mean: list[float], std: list[float]):
    """RotNet's CIFAR augmentation (crop with padding 4, horizontal flip) as torchvision v2."""
    from torchvision.transforms import v2

    return v2.Compose([v2.RandomCrop(32, padding=4), v2.RandomHorizontalFlip(), *_tensor_tail(mean, std)])


def two_views(batch: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """SimCLR's batch: all first views, then all second views."""
    first, second = zip(*batch)
    return torch.stack(first + second)


def rotate_collate(batch: list[tuple[torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Gidaris et al.'s loader: the four rotations of every image (and labels), in the worker."""
    from ssltui.trainer.rotation import all_rotations

    return all_rotations(torch.stack([b[0] for b in batch]))


def simclr_loss(model: torch.nn.Module, views: torch.Tensor) -> torch.Tensor:
    from ssltui.trainer.losses import nt_xent

    z1, z2 = model(views).chunk(2)
    return nt_xent(z1, z2, preset_config("simclr").simclr.temperature)


def rotnet_loss(model: torch.nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    x, y = batch
    return F.cross_entropy(model(x), y)


@dataclass
class UsualPipeline:
    transform: Callable  # (mean, std) -> per-image transform
    draws: int  # transform draws per image
    collate: Callable
    loss: Callable  # (model, batch on the device) -> loss
    describe: str


PIPELINES = {
    "simclr": UsualPipeline(simclr_transform, 2, two_views, simclr_loss, ""),
    "rotnet": UsualPipeline(rotnet_transform, 1, rotate_collate, rotnet_loss, ", rotations in collate"),
}


def time_usual(method: str, data: BenchData, opts: BenchOptions) -> Measurement:
    """Whole steps of the usual pipeline of `method`: DataLoader with `opts.workers` workers,
    per-image torchvision transforms, fp32 training of the engine's model and optimizer."""
    pipe = PIPELINES[method]
    dev = opts.device
    fp32 = DeviceSettings(dev, None, False, False)
    step = engine_step(method, data.bundle, fp32, opts.batch_size, opts.seed)
    b = data.bundle
    ds = Images(data.images, pipe.transform(b.mean.tolist(), b.std.tolist()), pipe.draws)
    loader = torch.utils.data.DataLoader(
        ds,
        batch_size=opts.batch_size,
        shuffle=True,
        drop_last=True,
        num_workers=opts.workers,
        collate_fn=pipe.collate,
        pin_memory=dev.type == "cuda",
        persistent_workers=opts.workers > 0,
        generator=torch.Generator().manual_seed(opts.seed),
    )
    batches = itertools.chain.from_iterable(itertools.repeat(loader))  # epoch after epoch

    def train_step() -> None:
        batch = next(batches)
        batch = (
            batch.to(dev, non_blocking=True)
            if isinstance(batch, torch.Tensor)
            else tuple(t.to(dev, non_blocking=True) for t in batch)
        )
        step.optimizer.zero_grad(set_to_none=True)
        pipe.loss(step.model, batch).backward()
        step.optimizer.step()

    seconds = time_steps(train_step, opts)
    return Measurement(
        f"usual: torchvision v2 per-image transforms, DataLoader with {opts.workers} workers{pipe.describe}, fp32",
        opts.steps,
        seconds,
        step.views_per_item * opts.batch_size,
    )
