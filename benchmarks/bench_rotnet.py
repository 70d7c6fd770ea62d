"""RotNet pretraining throughput: our pipeline against the usual torchvision one.

Both train the same ResNet-20 + 4-way linear head with cross-entropy and the paper's SGD
(momentum 0.9, Nesterov, weight decay 5e-4, lr 0.1); every image of a step is shown in all
four rotations, so a step of `opts.batch_size` images is 4 x batch_size views.
"""

from __future__ import annotations

import itertools

import numpy as np
import torch
import torch.nn.functional as F

from common import BenchData, BenchOptions, Measurement, time_steps, time_training_steps
from ssltui.engine.config import RuntimeConfig, TrainConfig
from ssltui.engine.device import pick_device
from ssltui.engine.methods.rotnet import make_loss
from ssltui.engine.models.resnet import Classifier, ResNet20
from ssltui.engine.optim import build_optimizer
from ssltui.engine.rotation import NUM_ROTATIONS, all_rotations, rotation_labels


def _model_and_optimizer(device: torch.device, channels_last: bool):
    model = Classifier(ResNet20(), NUM_ROTATIONS).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = build_optimizer(TrainConfig(optimizer="sgd", lr=0.1, momentum=0.9, nesterov=True,
                                      weight_decay=5e-4), [model])
    return model, opt


def ours(data: BenchData, opts: BenchOptions) -> Measurement:
    """The engine's own RotNet loss (`methods.rotnet.make_loss`): images on the device; crop, flip
    and the four rotations as batched tensor ops on uint8; bf16 autocast and channels_last on
    CUDA, fp32 on CPU."""
    dev = opts.device
    cuda = dev.type == "cuda"
    settings = pick_device(str(dev), RuntimeConfig())
    model, opt = _model_and_optimizer(dev, settings.channels_last)
    gen = torch.Generator(device=dev)
    gen.manual_seed(opts.seed)
    n = len(data.on_device)
    loss = make_loss(model, data.on_device, data, settings, gen, rotation_labels(opts.batch_size, dev), True)

    def forward_backward() -> None:
        loss(torch.randint(0, n, (opts.batch_size,), device=dev, generator=gen)).backward()

    seconds, flops = time_training_steps(forward_backward, opt, opts)
    where = "bf16 autocast, channels_last" if cuda else "fp32"
    return Measurement(f"ours: uint8 data on {dev.type}, batched crop/flip + 4 rotations, {where}",
                       opts.steps, seconds, NUM_ROTATIONS * opts.batch_size, flops)


class _Images(torch.utils.data.Dataset):
    """The usual dataset: a PIL image through a per-image torchvision transform."""

    def __init__(self, images: np.ndarray, transform):
        self.images = images
        self.transform = transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        from PIL import Image

        return self.transform(Image.fromarray(self.images[i]))


def usual_transform(mean: list[float], std: list[float]):
    """RotNet's CIFAR augmentation (crop with padding 4, horizontal flip) as torchvision v2."""
    from torchvision.transforms import v2

    return v2.Compose([
        v2.RandomCrop(32, padding=4),
        v2.RandomHorizontalFlip(),
        v2.PILToTensor(),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(mean, std),
    ])


def _rotate_collate(batch: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Gidaris et al.'s loader: the four rotations of every image, built in the worker."""
    return all_rotations(torch.stack(batch))


def usual(data: BenchData, opts: BenchOptions) -> Measurement:
    """torchvision v2 per-image transforms in a DataLoader with workers (rotations in the
    collate function, on the CPU), fp32 training."""
    dev = opts.device
    cuda = dev.type == "cuda"
    model, opt = _model_and_optimizer(dev, False)
    ds = _Images(data.images, usual_transform(data.mean.tolist(), data.std.tolist()))
    loader = torch.utils.data.DataLoader(
        ds, batch_size=opts.batch_size, shuffle=True, drop_last=True, num_workers=opts.workers,
        collate_fn=_rotate_collate, pin_memory=cuda, persistent_workers=opts.workers > 0,
        generator=torch.Generator().manual_seed(opts.seed))
    batches = itertools.chain.from_iterable(itertools.repeat(loader))  # epoch after epoch

    def step() -> None:
        x, y = next(batches)
        x, y = x.to(dev, non_blocking=True), y.to(dev, non_blocking=True)
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()

    seconds = time_steps(step, opts)
    return Measurement(f"usual: torchvision v2 per-image transforms, DataLoader with {opts.workers} workers, "
                       "rotations in collate, fp32", opts.steps, seconds, NUM_ROTATIONS * opts.batch_size)
