"""SimCLR pretraining throughput: our pipeline against the usual torchvision one.

Both train the same ResNet-20 + projection head with NT-Xent and LARS, two views per image.
"""

from __future__ import annotations

import itertools

import numpy as np
import torch

from common import BenchData, BenchOptions, Measurement, time_steps, time_training_steps
from ssltui.engine.augment import SimCLRAugment
from ssltui.engine.config import RuntimeConfig, SimCLRConfig, TrainConfig
from ssltui.engine.device import pick_device
from ssltui.engine.losses import nt_xent
from ssltui.engine.methods.simclr import ProjectionHead, SimCLRModel, make_loss
from ssltui.engine.models.resnet import ResNet20
from ssltui.engine.optim import build_optimizer

CFG = SimCLRConfig()  # SimCLR's CIFAR-10 augmentation: crop 0.08-1, jitter strength 0.5


def _model_and_optimizer(device: torch.device, channels_last: bool, batch_size: int):
    model = SimCLRModel(ResNet20(), ProjectionHead(64, CFG.proj_hidden_dim, CFG.proj_out_dim)).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = build_optimizer(TrainConfig(optimizer="lars", lr=0.3, lr_scaling="linear", batch_size=batch_size,
                                      weight_decay=1e-6), [model])
    return model, opt


def ours(data: BenchData, opts: BenchOptions) -> Measurement:
    """The engine's own SimCLR loss (`methods.simclr.make_loss`): images on the device, both views
    per image drawn in one batched pass, bf16 autocast and channels_last on CUDA, fp32 on CPU."""
    dev = opts.device
    cuda = dev.type == "cuda"
    settings = pick_device(str(dev), RuntimeConfig())
    model, opt = _model_and_optimizer(dev, settings.channels_last, opts.batch_size)
    gen = torch.Generator(device=dev)
    gen.manual_seed(opts.seed)
    n = len(data.on_device)
    loss = make_loss(model, SimCLRAugment.from_config(CFG), data.on_device, data.mean, data.std, settings, gen,
                     CFG.temperature)

    def forward_backward() -> None:
        loss(torch.randint(0, n, (opts.batch_size,), device=dev, generator=gen)).backward()

    seconds, flops = time_training_steps(forward_backward, opt, opts)
    where = "bf16 autocast, channels_last" if cuda else "fp32"
    return Measurement(f"ours: uint8 data on {dev.type}, batched per-image augmentation, {where}",
                       opts.steps, seconds, 2 * opts.batch_size, flops)


class _TwoViews(torch.utils.data.Dataset):
    """The usual SimCLR dataset: a PIL image, two independent draws of the transform."""

    def __init__(self, images: np.ndarray, transform):
        self.images = images
        self.transform = transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        from PIL import Image

        img = Image.fromarray(self.images[i])
        return self.transform(img), self.transform(img)


def usual_transform(mean: list[float], std: list[float]):
    """SimCLR's augmentation as torchvision v2 transforms, one image at a time."""
    from torchvision.transforms import v2

    s = CFG.jitter_strength
    return v2.Compose([
        v2.RandomResizedCrop(32, scale=(CFG.crop_min_scale, 1.0), antialias=True),
        v2.RandomHorizontalFlip(),
        v2.RandomApply([v2.ColorJitter(0.8 * s, 0.8 * s, 0.8 * s, 0.2 * s)], p=CFG.jitter_p),
        v2.RandomGrayscale(p=CFG.grayscale_p),
        v2.PILToTensor(),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(mean, std),
    ])


def usual(data: BenchData, opts: BenchOptions) -> Measurement:
    """torchvision v2 per-image transforms in a DataLoader with workers, fp32 training."""
    dev = opts.device
    cuda = dev.type == "cuda"
    model, opt = _model_and_optimizer(dev, False, opts.batch_size)
    ds = _TwoViews(data.images, usual_transform(data.mean.tolist(), data.std.tolist()))
    loader = torch.utils.data.DataLoader(
        ds, batch_size=opts.batch_size, shuffle=True, drop_last=True, num_workers=opts.workers,
        pin_memory=cuda, persistent_workers=opts.workers > 0,
        generator=torch.Generator().manual_seed(opts.seed))
    batches = itertools.chain.from_iterable(itertools.repeat(loader))  # epoch after epoch

    def step() -> None:
        v1, v2 = next(batches)
        v1, v2 = v1.to(dev, non_blocking=True), v2.to(dev, non_blocking=True)
        opt.zero_grad(set_to_none=True)
        z = model(torch.cat([v1, v2]))
        z1, z2 = z.chunk(2)
        nt_xent(z1, z2, CFG.temperature).backward()
        opt.step()

    seconds = time_steps(step, opts)
    return Measurement(f"usual: torchvision v2 per-image transforms, DataLoader with {opts.workers} workers, fp32",
                       opts.steps, seconds, 2 * opts.batch_size)
