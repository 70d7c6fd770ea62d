"""Feature maps at the end of each ResNet-20 stage, as small integer grids the TUI can draw.

Computed by the training process (the TUI never imports torch) and saved as JSON:
{"images": [{"index", "class", "rgb": HxWx3 ints}], "models": [{"name", "method", "seed",
"maps": [per image: [per stage: {"stage", "channels", "values": 4xhxw ints 0-255}]]}]}
"""

from __future__ import annotations

import torch

from ssltui.core.featuremaps_schema import FeatureMaps
from ssltui.core.store import RunDir, atomic_write_text
from ssltui.trainer.augment import to_float
from ssltui.trainer.data.bundle import DataBundle
from ssltui.trainer.device import DeviceSettings
from ssltui.trainer.models.resnet import ResNet20

CHANNELS_PER_STAGE = 4


def pick_images(bundle: DataBundle, n: int = 4) -> list[int]:
    """The first test image of each of the first `n` classes: the same images for every model."""
    out = []
    y = bundle.test_y.cpu()
    for c in range(min(n, bundle.num_classes)):
        hits = (y == c).nonzero()
        if len(hits):
            out.append(int(hits[0]))
    return out


@torch.no_grad()
def stage_maps(encoder: ResNet20, bundle: DataBundle, dev: DeviceSettings, indices: list[int]) -> list:
    """Per image, per stage: the 4 most active channels, each scaled to 0-255."""
    encoder.eval()
    x = to_float(bundle.test_x[indices], bundle.mean, bundle.std)
    stages = [s.float().cpu() for s in encoder.forward_stages(x)]
    out = []
    for i in range(len(indices)):
        per_stage = []
        for s_i, s in enumerate(stages):
            fmap = s[i]  # (C, h, w)
            top = fmap.mean((1, 2)).topk(CHANNELS_PER_STAGE).indices.tolist()
            vals = []
            for c in top:
                m = fmap[c]
                lo, hi = float(m.min()), float(m.max())
                scaled = (m - lo) / (hi - lo) if hi > lo else torch.zeros_like(m)
                vals.append((scaled * 255).round().to(torch.uint8).tolist())
            per_stage.append({"stage": s_i + 1, "channels": top, "values": vals})
        out.append(per_stage)
    return out


def save_featuremaps(
    run: RunDir, bundle: DataBundle, models: list[tuple[str, str, int, ResNet20]], dev: DeviceSettings
) -> None:
    """Write featuremaps.json for (name, method, seed, encoder) tuples."""
    indices = pick_images(bundle)
    if not indices or not models:
        return
    images = [
        {
            "index": i,
            "class": bundle.classes[int(bundle.test_y[i])],
            "rgb": bundle.test_x[i].permute(1, 2, 0).cpu().tolist(),
        }
        for i in indices
    ]
    entries = [
        {"name": name, "method": method, "seed": seed, "maps": stage_maps(enc, bundle, dev, indices)}
        for name, method, seed, enc in models
    ]
    # Through the readers' model: a writer bug fails here, not in every later `ssltui maps`.
    doc = FeatureMaps.model_validate({"images": images, "models": entries})
    atomic_write_text(run.featuremaps_path, doc.model_dump_json(by_alias=True) + "\n")
