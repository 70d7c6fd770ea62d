"""SimCLR pretraining (Chen et al. 2020): two augmented views per image, NT-Xent, LARS.

The whole training split sits on the device as uint8; each step indexes a batch, draws both
views of every image in one batched pass (`augment.SimCLRAugment`), runs the encoder and the
projection head on the 2N views at once (BatchNorm sees both views, as in SimCLR) and
minimises NT-Xent. Labels are not used, except by the kNN monitor on the validation split.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from ssltui.engine.augment import SimCLRAugment, normalizer
from ssltui.engine.config import RunConfig
from ssltui.engine.data.bundle import DataBundle
from ssltui.engine.device import DeviceSettings
from ssltui.engine.evaluation.common import encode
from ssltui.engine.evaluation.knn import knn_accuracy
from ssltui.engine.events import PhaseRef
from ssltui.engine.loop import Phase, RunContext, derive_seed
from ssltui.engine.losses import nt_xent
from ssltui.engine.models.resnet import BatchNorm1d, ResNet20
from ssltui.engine.optim import build_optimizer


class ProjectionHead(nn.Module):
    """G(h): the 2-layer MLP of SimCLR, Linear -> BatchNorm -> ReLU -> Linear.

    BatchNorm in the hidden layer follows SimCLR's code (its paper writes W2 relu(W1 h)).
    """

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_dim, hidden_dim, bias=False), BatchNorm1d(hidden_dim),
                                 nn.ReLU(inplace=True), nn.Linear(hidden_dim, out_dim))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.net(h)


class SimCLRModel(nn.Module):
    """Encoder F and projection head G: image -> z = G(F(image))."""

    def __init__(self, encoder: ResNet20, head: ProjectionHead):
        super().__init__()
        self.encoder = encoder
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x))


def knn_bank(bundle: DataBundle, max_bank: int, seed: int) -> torch.Tensor:
    """A fixed random subset (at most `max_bank`) of the non-validation training indices."""
    g = torch.Generator()
    g.manual_seed(derive_seed(seed, "simclr-knn-bank"))
    n = len(bundle.train_idx)
    pick = torch.randperm(n, generator=g)[:min(max_bank, n)].to(bundle.device)
    return bundle.train_idx[pick]


def make_loss(model: nn.Module, augment: SimCLRAugment, images: torch.Tensor, mean: torch.Tensor,
              std: torch.Tensor, dev: DeviceSettings, gen: torch.Generator,
              temperature: float) -> Callable[[torch.Tensor], torch.Tensor]:
    """The training step's loss for batch positions into `images` (uint8 on the device); the
    benchmark times this same function."""
    normalize = normalizer(mean, std)

    def loss(pos: torch.Tensor) -> torch.Tensor:
        # Both views of every image in one pass, straight from the image store (each of the 2N
        # draws is independent), laid out as the model wants them.
        views = normalize(augment(images, gen, torch.cat([pos, pos]), dev.channels_last))
        with dev.autocast():
            z = model(views)
        z1, z2 = z.float().chunk(2)
        return nt_xent(z1, z2, temperature)

    return loss


def pretrain(ctx: RunContext, info: PhaseRef, cfg: RunConfig, bundle: DataBundle) -> ResNet20:
    """Pretrain a ResNet-20 with SimCLR on the training split's non-validation images."""
    dev = ctx.dev
    sc = cfg.simclr
    gen = ctx.generator(info.seed, info.phase)
    encoder = ResNet20()
    model = dev.prepare(SimCLRModel(encoder, ProjectionHead(encoder.feature_dim, sc.proj_hidden_dim,
                                                            sc.proj_out_dim)))
    optimizer = build_optimizer(cfg.pretrain, [model])
    augment = SimCLRAugment.from_config(sc)
    images = bundle.train_x[bundle.train_idx]  # uint8 on the device; labels unused
    step = make_loss(dev.training_forward(model), augment, images, bundle.mean, bundle.std, dev, gen, sc.temperature)

    knn = cfg.knn
    bank_idx = knn_bank(bundle, knn.max_bank, info.seed) if knn.every_epochs else None
    val_x, val_y = bundle.train_x[bundle.val_idx], bundle.train_y[bundle.val_idx]

    def epoch_end(epoch: int) -> dict:
        bank = encode(encoder, bundle.train_x[bank_idx], bundle, dev)
        query = encode(encoder, val_x, bundle, dev)
        acc = knn_accuracy(query, val_y, bank, bundle.train_y[bank_idx], bundle.num_classes,
                           knn.k, knn.temperature)
        return {"knn_acc": round(acc, 6)}

    # The kNN monitor keeps its own cadence (every knn.every_epochs epochs and at the end).
    phase = Phase(ctx, info, cfg.pretrain, len(images), {"model": model}, optimizer, gen,
                  images_per_item=2, val_every=knn.every_epochs)
    phase.run(step, model.train, epoch_end if bank_idx is not None and len(val_y) else None)
    encoder.eval()
    return encoder
