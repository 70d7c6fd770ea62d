"""Batched augmentation as tensor code on the training device, one random draw per image.

Input images are uint8 (N, 3, H, W) on the device. All randomness comes from an explicit
torch.Generator so a checkpoint can restore it exactly, and nothing here reads a tensor back
to the host or makes a shape depend on the data, so a training step that augments stays free
of device syncs and can be captured in a CUDA graph.

On a GPU these steps are bound by host-side dispatch (tens of microseconds an operation), so
the code is written for few operations per batch, whatever the batch size: one uniform draw
for all of a view's parameters, one gather that crops, flips, rotates and resizes, colour
jitter with a single colour-space round trip, the normalisation as one multiply-add.
Constant tables are built once per device and shape (`_constant`).

SimCLR's views (`SimCLRAugment`) follow torchvision's per-image transforms, composed as in the
SimCLR paper: RandomResizedCrop -> RandomHorizontalFlip -> RandomApply(ColorJitter, p) ->
RandomGrayscale(p). torchvision's v2 transforms draw one set of parameters per call, i.e. one
for a whole batched tensor; here every image draws its own. The operations themselves
(`resized_crop`, `adjust_brightness`, ...) take per-image parameters and are tested against
torchvision's functional ops image by image.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

# ITU-R 601-2 luma, the weights torchvision's rgb_to_grayscale uses.
_LUMA = (0.2989, 0.587, 0.114)
_CROP_ATTEMPTS = 10  # torchvision's RandomResizedCrop tries 10 boxes before its fallback


@functools.cache
def _constant(
    device: torch.device, values: tuple, shape: tuple = (-1,), dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """A small constant tensor, made once per device (never inside a captured step)."""
    return torch.tensor(values, dtype=dtype, device=device).reshape(shape)


def to_float(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """uint8 (N, 3, H, W) -> normalised float32."""
    return (x.float().div_(255.0) - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)


def normalizer(
    mean: torch.Tensor, std: torch.Tensor, pixel_scale: float = 1.0
) -> Callable[[torch.Tensor], torch.Tensor]:
    """x -> (x * pixel_scale - mean) / std per channel, as one multiply-add.

    `pixel_scale` 1/255 takes uint8 images straight to normalised float32 (the multiply-add
    promotes); the scale and shift are computed once, here.
    """
    scale = (pixel_scale / std).view(1, -1, 1, 1)
    shift = (-mean / std).view(1, -1, 1, 1)
    return lambda x: torch.addcmul(shift, x, scale)


# ---------------------------------------------------------------- crops, flips, rotations by one gather


def _gather_pixels(
    images: torch.Tensor, pos: torch.Tensor | None, index: torch.Tensor, channels_last: bool
) -> torch.Tensor:
    """Pixels at linear positions `index` (*lead, n, K) within images `pos` (n,) of `images`.

    Returns (*lead, n, C, K), or (*lead, n, K, C) when `channels_last` (so that NCHW views of
    it are laid out channels_last). Two kernels: the images (none when `pos` is None: all of
    them, in order), then one gather along the pixels, several times faster on a CPU than
    advanced indexing and the same on a GPU.
    """
    src = images.reshape(images.shape[0], images.shape[1], -1)  # (n, C, P)
    if pos is not None:
        src = src.index_select(0, pos)
    lead, c = index.shape[:-2], src.shape[1]
    if channels_last:
        src = src.transpose(1, 2)  # (n, P, C)
        return torch.gather(src.expand(*lead, *src.shape), -2, index.unsqueeze(-1).expand(*index.shape, c))
    return torch.gather(
        src.expand(*lead, *src.shape), -1, index.unsqueeze(-2).expand(*index.shape[:-1], c, index.shape[-1])
    )


@functools.cache
def _shift_table(
    height: int, width: int, padding: int, flip: bool, rotations: int, device: torch.device
) -> torch.Tensor:
    """Linear source pixel in the padded image, (rotations, draws, H*W) int64: every draw of
    an offset (0..2*padding each way) and a mirror, in each rotation by k * 90 degrees
    counter-clockwise (torch.rot90's convention, applied to the index map itself)."""
    wp = width + 2 * padding
    offsets = torch.arange(2 * padding + 1)
    rows = offsets.view(-1, 1, 1, 1, 1) + torch.arange(height).view(1, 1, 1, -1, 1)  # (oy, 1, 1, H, 1)
    cols = torch.arange(width)
    cols = torch.stack([cols, cols.flip(0)]) if flip else cols.view(1, -1)  # (mirror, W)
    cols = offsets.view(1, -1, 1, 1, 1) + cols.view(1, 1, -1, 1, width)  # (1, ox, mirror, 1, W)
    lin = (rows * wp + cols).reshape(-1, height, width)  # (draws, H, W)
    table = torch.stack([torch.rot90(lin, k, dims=(-2, -1)) for k in range(rotations)])
    return table.reshape(rotations, -1, height * width).to(device)


def crop_flip_rotations(
    padded: torch.Tensor,
    pos: torch.Tensor | None,
    generator: torch.Generator,
    padding: int = 4,
    flip: bool = True,
    rotations: int = 1,
    channels_last: bool = False,
) -> torch.Tensor:
    """Random crops of images already zero-padded by `padding`, mirrored with p 0.5, each in
    `rotations` rotations by k * 90 degrees counter-clockwise (square images for more than one).

    `padded` is (N, C, H + 2p, W + 2p) of any dtype and `pos` (n,) picks the images (None: all).
    Every image draws one offset (uniform over the 2p + 1 positions each way) and one mirror;
    the output (rotations * n, C, H, W) is grouped by rotation (rows k*n .. k*n+n-1 are
    rotated by k * 90), in the input's dtype, laid out channels_last when asked. Four
    kernels: the draw, the table look-up, the images, one gather.
    """
    total, _, hp, wp = padded.shape
    height, width = hp - 2 * padding, wp - 2 * padding
    n = total if pos is None else len(pos)
    table = _shift_table(height, width, padding, flip, rotations, padded.device)
    draw = torch.randint(0, table.shape[1], (n,), device=padded.device, generator=generator)
    out = _gather_pixels(padded, pos, table[:, draw], channels_last)  # (R, n, C, H*W) or (R, n, H*W, C)
    if channels_last:
        return out.reshape(rotations * n, height, width, -1).permute(0, 3, 1, 2)
    return out.reshape(rotations * n, -1, height, width)


def random_crop_flip(x: torch.Tensor, generator: torch.Generator, padding: int = 4, flip: bool = True) -> torch.Tensor:
    """Per-image random crop from a zero-padded image plus horizontal flip (p 0.5), in one gather.

    Works on any dtype; returns the same dtype and shape as `x`.
    """
    padded = F.pad(x, (padding,) * 4) if padding else x
    return crop_flip_rotations(padded, None, generator, padding, flip)


def cutout(x: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    """Cutout (DeVries & Taylor 2017): zero a size x size square, centred uniformly on the image
    and clipped at its border, in every image of a batch. Applied to normalised inputs, zero is
    the mean colour, as in the paper."""
    n, _, h, w = x.shape
    dev = x.device
    top = torch.randint(0, h, (n, 1), device=dev, generator=generator) - size // 2
    left = torch.randint(0, w, (n, 1), device=dev, generator=generator) - size // 2
    r, c = torch.arange(h, device=dev)[None, :], torch.arange(w, device=dev)[None, :]
    rows = (r >= top) & (r < top + size)  # (n, h)
    cols = (c >= left) & (c < left + size)
    keep = ~(rows[:, :, None] & cols[:, None, :])
    return x * keep[:, None].to(x.dtype)


# ---------------------------------------------------------------- resized crops


@dataclass
class CropParams:
    """Per-image crop boxes (top, left, height, width), tensors of shape (N,) holding whole
    pixel counts (float32 when drawn here: the resize computes in float)."""

    top: torch.Tensor
    left: torch.Tensor
    height: torch.Tensor
    width: torch.Tensor

    @classmethod
    def from_box(cls, box: torch.Tensor) -> CropParams:
        """From an (N, 4) tensor of (top, left, height, width); the fields are its columns."""
        crop = cls(*box.unbind(1))
        crop._box = box
        return crop

    def box(self) -> torch.Tensor:
        """(N, 4) float32 (top, left, height, width)."""
        box = getattr(self, "_box", None)
        if box is None:
            box = torch.stack([self.top, self.left, self.height, self.width], 1).float()
        return box


def crop_uniforms(attempts: int = _CROP_ATTEMPTS) -> int:
    """How many U(0, 1) numbers `crop_from_uniforms` takes per image."""
    return 2 * attempts + 2


def crop_from_uniforms(
    u: torch.Tensor,
    height: int,
    width: int,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
) -> CropParams:
    """torchvision's RandomResizedCrop.get_params for n images, from uniforms u (n, 2A + 2).

    Each image makes A draws of (area fraction ~ U(scale), log aspect ~ U(log ratio)), rounds
    the box to integers and takes the first that fits; an image with no fitting draw falls
    back to the central crop clipped to `ratio`. The offset is uniform over the positions
    where the box fits.
    """
    n, attempts = u.shape[0], (u.shape[1] - 2) // 2
    dev = u.device
    area = height * width
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    lo = _constant(dev, (area * scale[0], log_lo))
    span = _constant(dev, (area * (scale[1] - scale[0]), log_hi - log_lo))
    draws = torch.addcmul(lo, u[:, : 2 * attempts].view(n, attempts, 2), span)  # (area, log aspect)
    target, log_aspect = draws.unbind(-1)
    # (h, w) = sqrt(area / aspect), sqrt(area * aspect); torch.round rounds halves to even, like Python.
    aspect = torch.exp(log_aspect.unsqueeze(-1) * _constant(dev, (-1.0, 1.0)))
    hw = torch.round(torch.sqrt(target.unsqueeze(-1) * aspect))  # (n, A, 2)
    limit = _constant(dev, (float(height), float(width)))
    fits = (hw.clamp(_constant(dev, (1.0,)), limit) == hw).all(-1)
    any_fit, first = fits.max(1)  # first fitting draw (max returns the first maximal index)
    size = hw.gather(1, first.view(n, 1, 1).expand(n, 1, 2)).view(n, 2)

    # Fallback: the central crop, clipped to the aspect range.
    in_ratio = width / height
    if in_ratio < min(ratio):
        fw, fh = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        fw, fh = int(round(height * max(ratio))), height
    else:
        fw, fh = width, height
    any_fit = any_fit.unsqueeze(1)
    size = torch.where(any_fit, size, _constant(dev, (float(fh), float(fw))))
    slack = limit - size
    offset = torch.minimum(torch.floor(u[:, 2 * attempts :] * (slack + 1.0)), slack)
    offset = torch.where(any_fit, offset, _constant(dev, (float((height - fh) // 2), float((width - fw) // 2))))
    return CropParams.from_box(torch.cat([offset, size], 1))


def sample_resized_crop(
    n: int,
    height: int,
    width: int,
    generator: torch.Generator,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    device: torch.device | str = "cpu",
    attempts: int = _CROP_ATTEMPTS,
) -> CropParams:
    """`crop_from_uniforms` with its own draw from `generator`."""
    u = torch.rand(n, crop_uniforms(attempts), device=device, generator=generator)
    return crop_from_uniforms(u, height, width, scale, ratio)


def resized_crop(
    x: torch.Tensor,
    crop: CropParams,
    size: int,
    flip: torch.Tensor | None = None,
    pos: torch.Tensor | None = None,
    pixel_scale: float = 1.0,
    channels_last: bool = False,
) -> torch.Tensor:
    """Crop images to their boxes, resize bilinearly to (size, size), mirror where `flip`.

    Box i applies to image `pos[i]` of `x` (N, C, H, W; any dtype; `pos` None: image i). The
    result is float32 on the scale of `x` times `pixel_scale` (uint8 input with 1/255 gives
    [0, 1]), laid out channels_last when asked. Half-pixel convention of
    F.interpolate(mode="bilinear", align_corners=False), source positions clamped to the crop:
    for upsampling (SimCLR's crops of a 32x32 image resized to 32x32) this equals torchvision's
    antialiased resize; a box larger than `size` is resized without antialiasing. Each output
    pixel blends its four taps, all fetched by one gather.
    """
    dev = x.device
    box = crop.box()
    n = box.shape[0]
    start, length = box[:, :2], box[:, 2:]  # (n, 2): rows, columns
    # Output pixel centres as fractions of the box, (2 axes, size); a mirrored image reads its
    # columns right to left (rows never flip).
    centres = [(i + 0.5) / size for i in range(size)]
    straight = _constant(dev, tuple(centres) * 2, (2, size))
    frac = straight
    if flip is not None:
        frac = torch.where(flip.view(n, 1, 1), _constant(dev, (*centres, *centres[::-1]), (2, size)), straight)
    src = torch.addcmul(_constant(dev, (-0.5,)), frac, length.unsqueeze(-1))  # (n, 2, size), in the box
    # Clamped to the box's pixels: past the last one the blend reads that pixel only.
    src = torch.clamp(src, _constant(dev, (0.0,)), (length - 1.0).unsqueeze(-1))
    i0 = src.floor()
    w1 = src - i0
    taps = torch.stack([i0, src.ceil()], 2) + start.view(n, 2, 1, 1)  # (n, axis, tap, size)
    weights = torch.stack([1.0 - w1, w1], 2)
    rows, cols = taps[:, 0, :, None, :, None], taps[:, 1, None, :, None, :]  # -> (n, 2, 2, size, size)
    index = torch.addcmul(cols, rows, _constant(dev, (float(x.shape[-1]),))).long()
    blend = torch.addcmul(
        _constant(dev, (0.0,)), weights[:, 0, :, None, :, None], weights[:, 1, None, :, None, :], value=pixel_scale
    )
    pixels = _gather_pixels(x, pos, index.view(n, -1), channels_last)
    if channels_last:  # (n, 2, 2, size, size, C)
        pixels = pixels.view(n, 2, 2, size, size, -1)
        return (pixels * blend.unsqueeze(-1)).sum((1, 2)).permute(0, 3, 1, 2)
    pixels = pixels.view(n, -1, 2, 2, size, size)
    return (pixels * blend.unsqueeze(1)).sum((2, 3))


# ---------------------------------------------------------------- colour, on floats in [0, 1]


def rgb_to_grayscale(x: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) float -> (N, 1, H, W) luma, torchvision's weights."""
    return (x * _constant(x.device, _LUMA, (1, 3, 1, 1))).sum(1, keepdim=True)


def _blend_round(x: torch.Tensor, coef: torch.Tensor) -> torch.Tensor:
    """clamp(a x + b luma(x) + c mean_luma(x), 0, 1) with per-image (a, b, c) = coef (3, N, 1, 1, 1).

    Brightness, contrast and saturation are each one such blend: (f, 0, 0), (f, 0, 1 - f)
    and (f, 1 - f, 0); (1, 0, 0) leaves an image in [0, 1] exactly as it is.
    """
    a, b, c = coef.unbind(0)
    y = rgb_to_grayscale(x)
    t = torch.addcmul(c * y.mean((2, 3), keepdim=True), b, y)
    return torch.addcmul(t, a, x).clamp_(0.0, 1.0)


def _blend_coef(factor: torch.Tensor, kind: int) -> torch.Tensor:
    f = factor.view(1, -1, 1, 1, 1)
    return torch.cat([f, (1.0 - f) * (kind == 2), (1.0 - f) * (kind == 1)])


def adjust_brightness(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Per-image brightness: blend with black (factor 1: unchanged)."""
    return _blend_round(x, _blend_coef(factor, 0))


def adjust_contrast(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Per-image contrast: blend with the image's mean grey level."""
    return _blend_round(x, _blend_coef(factor, 1))


def adjust_saturation(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Per-image saturation: blend with the image's greyscale version."""
    return _blend_round(x, _blend_coef(factor, 2))


def adjust_hue(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Per-image hue shift by `factor` turns of the colour wheel (in [-0.5, 0.5]).

    torchvision's RGB -> HSV -> shift -> RGB round trip (the hexcone model, after Pillow) in
    closed form: with hue h in sixths of a turn, channel n in {R: 5, G: 3, B: 1} of the
    shifted colour is v - (v - min) * clamp(min(k, 4 - k), 0, 1) for k = (n + h) mod 6, where
    v = max and v - min = v * s; the saturation and value never leave the pixel.
    """
    dev = x.device
    maxc, argmax = x.max(1, keepdim=True)
    chroma = maxc - x.amin(1, keepdim=True)
    # Hue in sixths if channel c is the largest: 2c + (next channel - the one after) / chroma,
    # e.g. (g - b) / chroma for red. Grey pixels (chroma 0) get hue 0, as in torchvision.
    opposed = (x.unsqueeze(1) * _constant(dev, (0, 1, -1, -1, 0, 1, 1, -1, 0), (1, 3, 3, 1, 1))).sum(2)
    hues = torch.addcdiv(_constant(dev, (0.0, 2.0, 4.0), (1, 3, 1, 1)), opposed, chroma.clamp(min=1e-30))
    channel = torch.add(_constant(dev, (5.0, 3.0, 1.0), (1, 3, 1, 1)), factor.view(-1, 1, 1, 1), alpha=6.0)
    k = torch.remainder(hues.gather(1, argmax) + channel, 6.0)
    # Written into x's memory layout (channels_last views stay so; the broadcast above is NCHW).
    return torch.addcmul(maxc, chroma, torch.minimum(k, 4.0 - k).clamp_(0.0, 1.0), value=-1.0, out=torch.empty_like(x))


@dataclass
class JitterParams:
    """Per-image colour-jitter draws. `factors` (N, 4) holds brightness, contrast, saturation
    and hue; `order` (N, 4) is a permutation of 0..3 per image (0 brightness, 1 contrast,
    2 saturation, 3 hue); `apply` says whether the jitter happens."""

    factors: torch.Tensor
    order: torch.Tensor
    apply: torch.Tensor

    def __post_init__(self) -> None:
        # Per-op views of `factors`, (N,) each.
        self.brightness, self.contrast, self.saturation, self.hue = self.factors.unbind(1)


JITTER_UNIFORMS = 8  # four factors, four keys of the random order


def jitter_from_uniforms(
    u: torch.Tensor, apply: torch.Tensor, brightness: float, contrast: float, saturation: float, hue: float
) -> JitterParams:
    """ColorJitter(brightness, contrast, saturation, hue) per image from uniforms u (n, 8):
    factors ~ U(max(0, 1 - s), 1 + s), hue ~ U(-hue, hue), a uniformly random order."""
    lo = [max(0.0, 1.0 - s) for s in (brightness, contrast, saturation)] + [-hue]
    span = [1.0 + s - lo_s for s, lo_s in zip((brightness, contrast, saturation), lo)] + [2.0 * hue]
    factors = torch.addcmul(_constant(u.device, tuple(lo)), u[:, :4], _constant(u.device, tuple(span)))
    return JitterParams(factors, u[:, 4:JITTER_UNIFORMS].argsort(dim=1), apply)


def sample_jitter(
    n: int,
    generator: torch.Generator,
    brightness: float,
    contrast: float,
    saturation: float,
    hue: float,
    p: float,
    device: torch.device | str = "cpu",
) -> JitterParams:
    """RandomApply(ColorJitter(brightness, contrast, saturation, hue), p) drawn per image."""
    u = torch.rand(n, JITTER_UNIFORMS + 1, device=device, generator=generator)
    return jitter_from_uniforms(u, u[:, -1] < p, brightness, contrast, saturation, hue)


def _jitter_rounds(jp: JitterParams) -> torch.Tensor:
    """Blend coefficients (6 rounds, 3, N, 1, 1, 1) around the one hue shift.

    Each image's three blends are split by where its hue falls in its order: those before it
    run in rounds 0-2, those after it in rounds 3-5 (position + 2), each in its own round and
    in order; every other round leaves the image as it is (coefficients (1, 0, 0)), as do all
    rounds where the jitter is not applied.
    """
    dev = jp.factors.device
    rank = jp.order.argsort(dim=1)  # position of each op in the image's order
    blend_pos, hue_pos = rank[:, :3], rank[:, 3:]
    slot = torch.add(blend_pos, blend_pos > hue_pos, alpha=2)
    slot = torch.where(jp.apply.unsqueeze(1), slot, _constant(dev, (6,), (), torch.long))
    in_round = slot == _constant(dev, tuple(range(6)), (6, 1, 1), torch.long)  # (round, N, op)
    # (a - 1, b, c) of each op given its factor f: brightness (f-1, 0, 0), contrast
    # (f-1, 0, 1-f), saturation (f-1, 1-f, 0).
    per_op = torch.addcmul(
        _constant(dev, (-1, 0, 0, -1, 0, 1, -1, 1, 0), (3, 3)),
        jp.factors[:, :3].unsqueeze(-1),
        _constant(dev, (1, 0, 0, 1, 0, -1, 1, -1, 0), (3, 3)),
    )
    coef = (in_round.unsqueeze(-1) * per_op).sum(2) + _constant(dev, (1.0, 0.0, 0.0))  # (round, N, 3)
    return coef.permute(0, 2, 1).reshape(6, 3, -1, 1, 1, 1)


def color_jitter(x: torch.Tensor, jp: JitterParams) -> torch.Tensor:
    """Apply each image's jitter in its own order, as torchvision's ColorJitter does.

    Brightness, contrast and saturation are per-image blends (`_blend_round`), the hue shift
    is the only colour-space round trip: six blend rounds with the hue shift in the middle
    cover all 24 orders (`_jitter_rounds`). Images without jitter come out unchanged.
    """
    rounds = _jitter_rounds(jp).unbind(0)
    for coef in rounds[:3]:
        x = _blend_round(x, coef)
    x = torch.where(jp.apply.view(-1, 1, 1, 1), adjust_hue(x, jp.hue), x)
    for coef in rounds[3:]:
        x = _blend_round(x, coef)
    return x


def random_grayscale(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Greyscale (3 equal channels) where `mask` (N,) is true."""
    return torch.where(mask.view(-1, 1, 1, 1), rgb_to_grayscale(x), x)


# ---------------------------------------------------------------- SimCLR's view


@dataclass
class ViewParams:
    """Everything one SimCLR view of each image depends on."""

    crop: CropParams
    flip: torch.Tensor  # bool (N,)
    jitter: JitterParams
    gray: torch.Tensor  # bool (N,)


@dataclass
class SimCLRAugment:
    """SimCLR's augmentation (paper appendix A), strengths from the `simclr` config section."""

    size: int = 32
    crop_min_scale: float = 0.08
    jitter_strength: float = 0.5
    jitter_p: float = 0.8
    grayscale_p: float = 0.2
    flip_p: float = 0.5
    saturation: float | None = None  # saturation jitter; None: SimCLR's 0.8 x jitter_strength

    @classmethod
    def from_config(cls, cfg) -> SimCLRAugment:
        """From a method's settings (`crop_min_scale`, `jitter_strength`, `jitter_p`,
        `grayscale_p`, and `saturation` where the method sets it apart from the strength)."""
        return cls(
            crop_min_scale=cfg.crop_min_scale,
            jitter_strength=cfg.jitter_strength,
            jitter_p=cfg.jitter_p,
            grayscale_p=cfg.grayscale_p,
            saturation=getattr(cfg, "saturation", None),
        )

    def sample(
        self, n: int, height: int, width: int, generator: torch.Generator, device: torch.device | str = "cpu"
    ) -> ViewParams:
        """Draw every image's parameters (crop box, flip, jitter factors, order and whether,
        grey) from one block of uniforms."""
        device = torch.device(device)
        crop_u = crop_uniforms()
        u = torch.rand(n, crop_u + JITTER_UNIFORMS + 3, device=device, generator=generator)
        coins = u[:, -3:] < _constant(device, (self.flip_p, self.grayscale_p, self.jitter_p))
        flip, gray, apply = coins.unbind(1)
        crop = crop_from_uniforms(u[:, :crop_u], height, width, (self.crop_min_scale, 1.0))
        s = self.jitter_strength
        saturation = 0.8 * s if self.saturation is None else self.saturation
        jitter = jitter_from_uniforms(
            u[:, crop_u : crop_u + JITTER_UNIFORMS], apply, 0.8 * s, 0.8 * s, saturation, 0.2 * s
        )
        return ViewParams(crop, flip, jitter, gray)

    def apply(
        self, x: torch.Tensor, params: ViewParams, pos: torch.Tensor | None = None, channels_last: bool = False
    ) -> torch.Tensor:
        """The views of images `x` (N, 3, H, W; uint8, or float in [0, 1]) for drawn parameters:
        view i shows image pos[i] (pos None: image i); float32 in [0, 1], (n, 3, size, size),
        laid out channels_last when asked."""
        scale = 1.0 if x.is_floating_point() else 1.0 / 255.0
        out = resized_crop(x, params.crop, self.size, params.flip, pos, scale, channels_last)
        if (self.jitter_strength > 0 or self.saturation) and self.jitter_p > 0:  # else every draw is neutral
            out = color_jitter(out, params.jitter)
        if self.grayscale_p > 0:
            out = random_grayscale(out, params.gray)
        return out

    def __call__(
        self, x: torch.Tensor, generator: torch.Generator, pos: torch.Tensor | None = None, channels_last: bool = False
    ) -> torch.Tensor:
        """One view of each image in `x` (or of each image pos[i]), every view with its own draw
        from `generator`."""
        _, _, h, w = x.shape
        n = x.shape[0] if pos is None else len(pos)
        return self.apply(x, self.sample(n, h, w, generator, x.device), pos, channels_last)
