"""DataBundle: the whole data set as uint8 tensors on the training device, plus its splits."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ssltui.trainer.data.sources import RawData
from ssltui.trainer.data.splits import validation_split


@dataclass
class DataBundle:
    train_x: torch.Tensor  # uint8 (N, 3, 32, 32), the whole training split
    train_y: torch.Tensor  # int64 (N,)
    test_x: torch.Tensor
    test_y: torch.Tensor
    train_idx: torch.Tensor  # int64 indices outside the validation split
    val_idx: torch.Tensor  # int64 indices of the validation split
    mean: torch.Tensor  # float32 (3,), per-channel mean of the training images in [0, 1]
    std: torch.Tensor
    classes: list[str]
    source: str
    fingerprint: str  # identifies the data and split, for caching pretrained encoders

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def device(self) -> torch.device:
        return self.train_x.device

    def labels_np(self) -> np.ndarray:
        return self.train_y.cpu().numpy()


def channel_stats(images: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std in [0, 1] of uint8 NHWC images, exactly, from 256-bin histograms
    (a float copy of CIFAR-10 would cost over 1 GB of memory)."""
    levels = np.arange(256, dtype=np.float64) / 255.0
    mean, std = np.zeros(3), np.zeros(3)
    for c in range(3):
        hist = np.zeros(256, dtype=np.int64)
        for start in range(0, len(idx), 4096):
            hist += np.bincount(images[idx[start : start + 4096], ..., c].ravel(), minlength=256)
        p = hist / hist.sum()
        mean[c] = (p * levels).sum()
        std[c] = np.sqrt(max(0.0, (p * levels**2).sum() - mean[c] ** 2)) + 1e-6
    return mean, std


def make_bundle(raw: RawData, device: torch.device, val_fraction: float, split_seed: int) -> DataBundle:
    """Move a decoded data set onto `device` (NCHW uint8) and draw the validation split."""
    train_idx, val_idx = validation_split(raw.train_y, val_fraction, split_seed)
    mean, std = channel_stats(raw.train_x, train_idx)

    def to_dev(x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))).to(device)

    import hashlib

    h = hashlib.sha1()
    h.update(raw.source.encode())
    h.update(np.ascontiguousarray(raw.train_x[:: max(1, len(raw.train_x) // 512)]).tobytes())
    h.update(raw.train_y.tobytes())
    h.update(f"{val_fraction}|{split_seed}|{raw.train_x.shape}|{raw.test_x.shape}".encode())
    return DataBundle(
        train_x=to_dev(raw.train_x),
        train_y=torch.from_numpy(raw.train_y).to(device),
        test_x=to_dev(raw.test_x),
        test_y=torch.from_numpy(raw.test_y).to(device),
        train_idx=torch.from_numpy(train_idx).to(device),
        val_idx=torch.from_numpy(val_idx).to(device),
        mean=torch.tensor(mean, dtype=torch.float32, device=device),
        std=torch.tensor(std, dtype=torch.float32, device=device),
        classes=list(raw.classes),
        source=raw.source,
        fingerprint=h.hexdigest()[:16],
    )
