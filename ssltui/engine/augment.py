"""Batched augmentation as tensor code on the training device, one random draw per image.

Input batches are uint8 (N, 3, H, W) on the device. All randomness comes from an explicit
torch.Generator so a checkpoint can restore it exactly, and nothing here reads a tensor back
to the host, so a training step that augments stays free of device syncs.

SimCLR's views (`simclr_views`) follow torchvision's per-image transforms, composed as in the
SimCLR paper: RandomResizedCrop -> RandomHorizontalFlip -> RandomApply(ColorJitter, p) ->
RandomGrayscale(p). torchvision's v2 transforms draw one set of parameters per call, i.e. one
for a whole batched tensor; here every image draws its own. The operations themselves
(`resized_crop`, `adjust_brightness`, ...) take per-image parameters and are tested against
torchvision's functional ops image by image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

# ITU-R 601-2 luma, the weights torchvision's rgb_to_grayscale uses.
_LUMA = (0.2989, 0.587, 0.114)


def to_float(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """uint8 (N, 3, H, W) -> normalised float32."""
    return (x.float().div_(255.0) - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)


def normalize(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """Float images in [0, 1] -> normalised with per-channel `mean`/`std`."""
    return (x - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)


def random_crop_flip(x: torch.Tensor, generator: torch.Generator, padding: int = 4,
                     flip: bool = True) -> torch.Tensor:
    """Per-image random crop from a zero-padded image plus horizontal flip (p 0.5), in one gather.

    Works on any dtype; returns the same dtype and shape as `x`.
    """
    n, c, h, w = x.shape
    dev = x.device
    padded = torch.nn.functional.pad(x, (padding, padding, padding, padding))
    oy = torch.randint(0, 2 * padding + 1, (n,), device=dev, generator=generator)
    ox = torch.randint(0, 2 * padding + 1, (n,), device=dev, generator=generator)
    rows = oy[:, None] + torch.arange(h, device=dev)[None, :]  # (n, h)
    cols = torch.arange(w, device=dev)[None, :].expand(n, w)
    if flip:
        do_flip = torch.rand(n, device=dev, generator=generator) < 0.5
        cols = torch.where(do_flip[:, None], cols.flip(1), cols)
    cols = ox[:, None] + cols  # (n, w)
    batch = torch.arange(n, device=dev)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]  # (n, h, w, c)
    return out.permute(0, 3, 1, 2).contiguous()


# ---------------------------------------------------------------- crop, flip, resize

@dataclass
class CropParams:
    """Per-image crop boxes (top, left, height, width), int64 tensors of shape (N,)."""

    top: torch.Tensor
    left: torch.Tensor
    height: torch.Tensor
    width: torch.Tensor


def sample_resized_crop(n: int, height: int, width: int, generator: torch.Generator,
                        scale: tuple[float, float] = (0.08, 1.0),
                        ratio: tuple[float, float] = (3 / 4, 4 / 3),
                        device: torch.device | str = "cpu", attempts: int = 10) -> CropParams:
    """torchvision's RandomResizedCrop.get_params, drawn for `n` images at once.

    Each image makes `attempts` draws of (area fraction ~ U(scale), log aspect ~ U(log ratio)),
    rounds the box to integers and takes the first that fits; an image with no fitting draw
    falls back to the central crop clipped to `ratio`. The offset is uniform over the
    positions where the box fits.
    """
    area = height * width
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    u_area = torch.rand(n, attempts, device=device, generator=generator)
    u_ratio = torch.rand(n, attempts, device=device, generator=generator)
    target_area = area * (scale[0] + (scale[1] - scale[0]) * u_area)
    aspect = torch.exp(log_lo + (log_hi - log_lo) * u_ratio)
    # torch.round, like Python's round, rounds halves to even.
    w = torch.round(torch.sqrt(target_area * aspect)).long()
    h = torch.round(torch.sqrt(target_area / aspect)).long()
    ok = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    first = torch.argmax(ok.int(), dim=1, keepdim=True)  # index of the first fitting draw
    any_ok = ok.any(dim=1)

    # Fallback: the central crop, clipped to the aspect range.
    in_ratio = width / height
    if in_ratio < min(ratio):
        fw, fh = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        fw, fh = int(round(height * max(ratio))), height
    else:
        fw, fh = width, height
    ch = torch.where(any_ok, h.gather(1, first)[:, 0], fh)
    cw = torch.where(any_ok, w.gather(1, first)[:, 0], fw)

    u_top = torch.rand(n, device=device, generator=generator)
    u_left = torch.rand(n, device=device, generator=generator)
    top = torch.floor(u_top * (height - ch + 1)).long().clamp_(max=height - ch)
    left = torch.floor(u_left * (width - cw + 1)).long().clamp_(max=width - cw)
    top = torch.where(any_ok, top, (height - fh) // 2)
    left = torch.where(any_ok, left, (width - fw) // 2)
    return CropParams(top, left, ch, cw)


def _bilinear_taps(start: torch.Tensor, length: torch.Tensor, size: int, flip: torch.Tensor | None
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Source indices and weights of a 1-d bilinear resize of [start, start+length) to `size`.

    The half-pixel convention of F.interpolate(mode="bilinear", align_corners=False), with
    source positions clamped to the crop (not the image), which is what resizing the cropped
    image does. For upsampling (SimCLR's crops of a 32x32 image resized to 32x32) this equals
    torchvision's antialiased resize; a box larger than `size` is resized without antialiasing.
    """
    dev = start.device
    out = torch.arange(size, device=dev, dtype=torch.float32)
    if flip is not None:  # a flipped output reads its columns right to left
        out = torch.where(flip[:, None], size - 1 - out, out)
    scale = length.float()[:, None] / size
    src = ((out + 0.5) * scale - 0.5).clamp_(min=0.0)
    i0 = src.floor()
    frac = src - i0
    i0 = i0.long()
    i1 = torch.minimum(i0 + 1, length[:, None] - 1)
    i0 = torch.minimum(i0, length[:, None] - 1)
    return start[:, None] + i0, start[:, None] + i1, frac


def resized_crop(x: torch.Tensor, crop: CropParams, size: int,
                 flip: torch.Tensor | None = None) -> torch.Tensor:
    """Crop each image to its box, resize it bilinearly to (size, size), mirror it where `flip`.

    `x` is (N, C, H, W) of any dtype; the result is float32 on the scale of `x` (uint8 input
    gives values in [0, 255]). Separable: two gathers and blends along rows, two along columns.
    """
    n = x.shape[0]
    r0, r1, fr = _bilinear_taps(crop.top, crop.height, size, None)  # (n, size)
    c0, c1, fc = _bilinear_taps(crop.left, crop.width, size, flip)
    b = torch.arange(n, device=x.device)[:, None, None]
    xs = x.permute(0, 2, 3, 1)  # (n, H, W, C): gathers then pull whole pixels
    fr = fr[:, :, None, None]
    rows = xs[b[:, :, 0], r0].float() * (1 - fr) + xs[b[:, :, 0], r1].float() * fr  # (n, size, W, C)
    fc = fc[:, None, :, None]
    out = rows[b, torch.arange(size, device=x.device)[None, :, None], c0[:, None, :]] * (1 - fc) \
        + rows[b, torch.arange(size, device=x.device)[None, :, None], c1[:, None, :]] * fc
    return out.permute(0, 3, 1, 2).contiguous()


# ---------------------------------------------------------------- colour, on floats in [0, 1]

def _per_image(f: torch.Tensor) -> torch.Tensor:
    return f.view(-1, 1, 1, 1)


def rgb_to_grayscale(x: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) float -> (N, 1, H, W) luma, torchvision's weights."""
    r, g, b = x.unbind(dim=1)
    return (r * _LUMA[0] + g * _LUMA[1] + b * _LUMA[2]).unsqueeze(1)


def _blend(x: torch.Tensor, other: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    f = _per_image(factor)
    return (x * f + other * (1.0 - f)).clamp_(0.0, 1.0)


def adjust_brightness(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Per-image brightness: blend with black (factor 1: unchanged)."""
    return (x * _per_image(factor)).clamp_(0.0, 1.0)


def adjust_contrast(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Per-image contrast: blend with the image's mean grey level."""
    mean = rgb_to_grayscale(x).mean(dim=(1, 2, 3), keepdim=True)
    return _blend(x, mean, factor)


def adjust_saturation(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Per-image saturation: blend with the image's greyscale version."""
    return _blend(x, rgb_to_grayscale(x), factor)


def _rgb_to_hsv(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    # The same hexcone formulas as torchvision (after Pillow); grey pixels get h = s = 0.
    r, g, b = x.unbind(dim=1)
    maxc, _ = x.max(dim=1)
    minc, _ = x.min(dim=1)
    eqc = maxc == minc
    cr = maxc - minc
    ones = torch.ones_like(maxc)
    s = cr / torch.where(eqc, ones, maxc)
    div = torch.where(eqc, ones, cr)
    rc, gc, bc = (maxc - r) / div, (maxc - g) / div, (maxc - b) / div
    is_r = maxc == r
    is_g = (maxc == g) & ~is_r
    h = torch.where(is_r, bc - gc, torch.where(is_g, 2.0 + rc - bc, 4.0 + gc - rc))
    h = torch.fmod(h / 6.0 + 1.0, 1.0)
    return h, s, maxc


def _hsv_to_rgb(h: torch.Tensor, s: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    h6 = h * 6.0
    i = torch.floor(h6)
    f = h6 - i
    i = i.long().remainder_(6)
    p = (v * (1.0 - s)).clamp_(0.0, 1.0)
    q = (v * (1.0 - s * f)).clamp_(0.0, 1.0)
    t = (v * (1.0 - s * (1.0 - f))).clamp_(0.0, 1.0)

    sector = [i == k for k in range(5)]  # sector 5 is the fallthrough

    def pick(*by_sector: torch.Tensor) -> torch.Tensor:
        out = by_sector[5]
        for k in range(4, -1, -1):
            out = torch.where(sector[k], by_sector[k], out)
        return out

    return torch.stack((pick(v, q, p, p, t, v), pick(t, v, v, q, p, p), pick(p, p, t, v, v, q)), dim=1)


def adjust_hue(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Per-image hue shift by `factor` turns of the colour wheel (in [-0.5, 0.5])."""
    h, s, v = _rgb_to_hsv(x)
    h = torch.remainder(h + factor.view(-1, 1, 1), 1.0)
    return _hsv_to_rgb(h, s, v)


@dataclass
class JitterParams:
    """Per-image colour-jitter draws. `order` (N, 4) is a permutation of 0..3 per image
    (0 brightness, 1 contrast, 2 saturation, 3 hue); `apply` says whether the jitter happens."""

    brightness: torch.Tensor
    contrast: torch.Tensor
    saturation: torch.Tensor
    hue: torch.Tensor
    order: torch.Tensor
    apply: torch.Tensor


def sample_jitter(n: int, generator: torch.Generator, brightness: float, contrast: float,
                  saturation: float, hue: float, p: float,
                  device: torch.device | str = "cpu") -> JitterParams:
    """RandomApply(ColorJitter(brightness, contrast, saturation, hue), p) drawn per image:
    factors ~ U(max(0, 1 - s), 1 + s), hue ~ U(-hue, hue), a uniformly random order."""

    def factor(strength: float) -> torch.Tensor:
        lo, hi = max(0.0, 1.0 - strength), 1.0 + strength
        return lo + (hi - lo) * torch.rand(n, device=device, generator=generator)

    b, c, s = factor(brightness), factor(contrast), factor(saturation)
    hf = hue * (2.0 * torch.rand(n, device=device, generator=generator) - 1.0)
    order = torch.rand(n, 4, device=device, generator=generator).argsort(dim=1)
    apply = torch.rand(n, device=device, generator=generator) < p
    return JitterParams(b, c, s, hf, order, apply)


def color_jitter(x: torch.Tensor, jp: JitterParams) -> torch.Tensor:
    """Apply each image's jitter in its own order, as torchvision's ColorJitter does.

    Batched by running four rounds of all four ops, each image using its real factor for the op
    its order puts in that round and the neutral factor (1, or a hue shift of 0) otherwise:
    neutral ops leave an image in [0, 1] unchanged (hue up to float rounding, ~1e-7).
    """
    one = torch.ones_like(jp.brightness)
    zero = torch.zeros_like(jp.hue)
    for k in range(4):
        op = torch.where(jp.apply, jp.order[:, k], -1)
        x = adjust_brightness(x, torch.where(op == 0, jp.brightness, one))
        x = adjust_contrast(x, torch.where(op == 1, jp.contrast, one))
        x = adjust_saturation(x, torch.where(op == 2, jp.saturation, one))
        x = adjust_hue(x, torch.where(op == 3, jp.hue, zero))
    return x


def random_grayscale(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Greyscale (3 equal channels) where `mask` (N,) is true."""
    return torch.where(mask.view(-1, 1, 1, 1), rgb_to_grayscale(x).expand_as(x), x)


# ---------------------------------------------------------------- SimCLR's view

@dataclass
class SimCLRAugment:
    """SimCLR's augmentation (paper appendix A), strengths from the `simclr` config section."""

    size: int = 32
    crop_min_scale: float = 0.08
    jitter_strength: float = 0.5
    jitter_p: float = 0.8
    grayscale_p: float = 0.2
    flip_p: float = 0.5

    @classmethod
    def from_config(cls, cfg) -> "SimCLRAugment":
        """From a `SimCLRConfig`."""
        return cls(crop_min_scale=cfg.crop_min_scale, jitter_strength=cfg.jitter_strength,
                   jitter_p=cfg.jitter_p, grayscale_p=cfg.grayscale_p)

    def sample(self, n: int, height: int, width: int, generator: torch.Generator,
               device: torch.device | str = "cpu") -> "ViewParams":
        """Draw every image's parameters: crop box, flip, jitter (factors, order, whether), grey."""
        crop = sample_resized_crop(n, height, width, generator, (self.crop_min_scale, 1.0), device=device)
        flip = torch.rand(n, device=device, generator=generator) < self.flip_p
        s = self.jitter_strength
        jitter = sample_jitter(n, generator, 0.8 * s, 0.8 * s, 0.8 * s, 0.2 * s, self.jitter_p, device)
        gray = torch.rand(n, device=device, generator=generator) < self.grayscale_p
        return ViewParams(crop, flip, jitter, gray)

    def apply(self, x: torch.Tensor, params: "ViewParams") -> torch.Tensor:
        """The views of images `x` (N, 3, H, W; uint8, or float in [0, 1]) for drawn parameters:
        float32 in [0, 1], (N, 3, size, size)."""
        out = resized_crop(x, params.crop, self.size, params.flip)
        if not x.is_floating_point():
            out = out.div_(255.0)
        if self.jitter_strength > 0 and self.jitter_p > 0:  # else every draw is neutral
            out = color_jitter(out, params.jitter)
        if self.grayscale_p > 0:
            out = random_grayscale(out, params.gray)
        return out

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """One view of each image in `x`, every image with its own draw from `generator`."""
        n, _, h, w = x.shape
        return self.apply(x, self.sample(n, h, w, generator, x.device))


@dataclass
class ViewParams:
    """Everything one SimCLR view of each image depends on."""

    crop: CropParams
    flip: torch.Tensor  # bool (N,)
    jitter: JitterParams
    gray: torch.Tensor  # bool (N,)
