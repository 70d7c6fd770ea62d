"""The batched augmentations against torchvision's per-image functional ops, and their draws."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torchvision.transforms.v2 as T
import torchvision.transforms.v2.functional as TF

from ssltui.trainer import augment as A


def _gen(seed: int = 0) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(seed)
    return g


def _images(n: int, h: int = 32, w: int = 32, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, h, w), dtype=torch.uint8, generator=_gen(seed))


# ---------------------------------------------------------------- fixed parameters


def test_resized_crop_and_flip_match_torchvision_per_image():
    n = 64
    x = _images(n).float() / 255.0
    g = _gen(1)
    crop = A.sample_resized_crop(n, 32, 32, g, (0.08, 1.0))
    # Include the extreme boxes: whole image, a 1-pixel column, a corner.
    crop.top[:3] = torch.tensor([0, 0, 31])
    crop.left[:3] = torch.tensor([0, 5, 31])
    crop.height[:3] = torch.tensor([32, 32, 1])
    crop.width[:3] = torch.tensor([32, 1, 1])
    flip = torch.rand(n, generator=g) < 0.5
    out = A.resized_crop(x, crop, 32, flip)
    for i in range(n):
        ref = TF.resized_crop(
            x[i], int(crop.top[i]), int(crop.left[i]), int(crop.height[i]), int(crop.width[i]), [32, 32], antialias=True
        )
        if flip[i]:
            ref = TF.horizontal_flip(ref)
        torch.testing.assert_close(out[i], ref, atol=1e-5, rtol=0)
    assert flip.any() and (~flip).any()


def test_resized_crop_of_uint8_is_float_of_the_same_result():
    x = _images(8)
    crop = A.sample_resized_crop(8, 32, 32, _gen(2))
    flip = torch.zeros(8, dtype=torch.bool)
    torch.testing.assert_close(
        A.resized_crop(x, crop, 32, flip) / 255.0, A.resized_crop(x.float() / 255.0, crop, 32, flip), atol=1e-6, rtol=0
    )


def test_resized_crop_to_another_size():
    # Boxes no larger than the output (upsampling, SimCLR's case) match antialias=True; larger
    # boxes (downsampling) are plain bilinear, i.e. antialias=False.
    x = _images(4, 20, 28).float() / 255.0
    crop = A.CropParams(
        torch.tensor([0, 3, 10, 0]),
        torch.tensor([0, 7, 2, 20]),
        torch.tensor([16, 12, 10, 5]),
        torch.tensor([16, 9, 26, 8]),
    )
    out = A.resized_crop(x, crop, 16)
    for i in range(4):
        ref = TF.resized_crop(
            x[i],
            int(crop.top[i]),
            int(crop.left[i]),
            int(crop.height[i]),
            int(crop.width[i]),
            [16, 16],
            antialias=i != 2,
        )
        torch.testing.assert_close(out[i], ref, atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", ["brightness", "contrast", "saturation", "hue"])
def test_colour_op_matches_torchvision_per_image(name):
    n = 48
    x = _images(n, 16, 16, seed=3).float() / 255.0
    x[0] = 0.5  # a grey image (hue undefined)
    x[1, :, :8] = 1.0  # saturated pixels
    g = _gen(4)
    if name == "hue":
        factors = torch.rand(n, generator=g) - 0.5
        factors[2] = 0.5
        factors[3] = -0.5
    else:
        factors = torch.rand(n, generator=g) * 2.0
        factors[2] = 0.0
    ours = getattr(A, f"adjust_{name}")(x, factors)
    theirs = getattr(TF, f"adjust_{name}")
    for i in range(n):
        torch.testing.assert_close(ours[i], theirs(x[i], float(factors[i])), atol=2e-6, rtol=0)


def test_grayscale_matches_torchvision():
    x = _images(16, seed=5).float() / 255.0
    mask = torch.arange(16) % 3 == 0
    out = A.random_grayscale(x, mask)
    for i in range(16):
        ref = TF.rgb_to_grayscale(x[i], num_output_channels=3) if mask[i] else x[i]
        torch.testing.assert_close(out[i], ref, atol=1e-6, rtol=0)


_OPS = [TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue]


def _torchvision_view(x: torch.Tensor, aug: A.SimCLRAugment, p: A.ViewParams, i: int) -> torch.Tensor:
    """One image's view by torchvision's functional ops, with our drawn parameters."""
    c = p.crop
    v = TF.resized_crop(
        x[i], int(c.top[i]), int(c.left[i]), int(c.height[i]), int(c.width[i]), [aug.size, aug.size], antialias=True
    )
    if p.flip[i]:
        v = TF.horizontal_flip(v)
    j = p.jitter
    if j.apply[i]:
        factors = [j.brightness[i], j.contrast[i], j.saturation[i], j.hue[i]]
        for op in j.order[i].tolist():
            v = _OPS[op](v, float(factors[op]))
    if p.gray[i]:
        v = TF.rgb_to_grayscale(v, num_output_channels=3)
    return v


def test_color_jitter_applies_each_images_own_order():
    n = 48
    x = _images(n, 8, 8, seed=6).float() / 255.0
    jp = A.sample_jitter(n, _gen(7), 0.4, 0.4, 0.4, 0.1, p=0.8)
    out = A.color_jitter(x, jp)
    for i in range(n):
        ref = x[i]
        if jp.apply[i]:
            f = [jp.brightness[i], jp.contrast[i], jp.saturation[i], jp.hue[i]]
            for op in jp.order[i].tolist():
                ref = _OPS[op](ref, float(f[op]))
        torch.testing.assert_close(out[i], ref, atol=1e-5, rtol=0)
    # The order matters for these images, so a fixed order would fail the comparison above.
    assert len({tuple(o) for o in jp.order.tolist()}) > 10


def test_simclr_view_equals_torchvision_composition():
    aug = A.SimCLRAugment(jitter_strength=1.0)
    x = _images(40, seed=8)
    params = aug.sample(40, 32, 32, _gen(9))
    out = aug.apply(x, params)
    xf = x.float() / 255.0
    for i in range(40):
        torch.testing.assert_close(out[i], _torchvision_view(xf, aug, params, i), atol=1e-5, rtol=0)
    # __call__ is sample + apply with the same generator.
    torch.testing.assert_close(aug(x, _gen(9)), out)
    assert out.dtype == torch.float32 and out.shape == (40, 3, 32, 32)
    assert 0.0 <= float(out.min()) and float(out.max()) <= 1.0


# ---------------------------------------------------------------- drawn parameters


def _torchvision_crops(n: int, scale: tuple[float, float]) -> torch.Tensor:
    torch.manual_seed(0)
    img = torch.zeros(3, 32, 32)
    return torch.tensor(
        [T.RandomResizedCrop.get_params(img, list(scale), [3 / 4, 4 / 3]) for _ in range(n)], dtype=torch.float64
    )


@pytest.mark.parametrize("scale", [(0.08, 1.0), (0.5, 1.0)])
def test_crop_draws_match_torchvision_distribution(scale):
    n = 20000
    c = A.sample_resized_crop(n, 32, 32, _gen(10), scale)
    h, w = c.height.double(), c.width.double()
    assert bool(((c.top >= 0) & (c.top + c.height <= 32) & (c.left >= 0) & (c.left + c.width <= 32)).all())
    area = h * w / 1024
    aspect = w / h
    # In range up to the rounding of each side to whole pixels (at most half a pixel).
    assert float(((h + 0.5) * (w + 0.5) / 1024).min()) >= scale[0] and float(area.max()) <= 1.0
    assert float(((w + 0.5) / (h - 0.5)).min()) >= 3 / 4 and float(((w - 0.5) / (h + 0.5)).max()) <= 4 / 3
    ref = _torchvision_crops(4000, scale)
    ref_area = ref[:, 2] * ref[:, 3] / 1024
    ref_aspect = ref[:, 3] / ref[:, 2]
    for q in (0.1, 0.25, 0.5, 0.75, 0.9):
        qt = torch.tensor(q, dtype=torch.float64)
        assert abs(float(area.quantile(qt) - ref_area.quantile(qt))) < 0.03
        assert abs(float(aspect.quantile(qt) - ref_aspect.quantile(qt))) < 0.04
    # Draws that do not fit are rejected, so the area is not U(scale); compare means instead.
    assert abs(float(area.mean() - ref_area.mean())) < 0.01
    assert abs(float(aspect.mean() - ref_aspect.mean())) < 0.01
    # Offsets are uniform over the positions where the box fits: mean slack fraction 1/2.
    slack = 32 - h
    has = slack > 0
    assert abs(float((c.top.double()[has] / slack[has]).mean()) - 0.5) < 0.02


def test_crop_fallback_is_torchvisions_central_crop():
    # A wide image where no draw at scale 0.9-1 can fit: every image takes the fallback.
    c = A.sample_resized_crop(500, 8, 64, _gen(11), (0.9, 1.0))
    ref = T.RandomResizedCrop.get_params(torch.zeros(3, 8, 64), [0.9, 1.0], [3 / 4, 4 / 3])
    assert ref == (0, 26, 8, 11)
    for field, v in zip(("top", "left", "height", "width"), ref):
        assert bool((getattr(c, field) == v).all()), field
    tall = A.sample_resized_crop(10, 64, 8, _gen(11), (0.9, 1.0))
    ref = T.RandomResizedCrop.get_params(torch.zeros(3, 64, 8), [0.9, 1.0], [3 / 4, 4 / 3])
    assert (int(tall.top[0]), int(tall.left[0]), int(tall.height[0]), int(tall.width[0])) == ref


def test_view_draws_match_stated_ranges_and_probabilities():
    s = 0.5
    aug = A.SimCLRAugment(jitter_strength=s, jitter_p=0.8, grayscale_p=0.2)
    n = 24000
    p = aug.sample(n, 32, 32, _gen(12))
    j = p.jitter
    tol = 4 * math.sqrt(0.25 / n)  # four standard errors of a rate
    assert abs(float(p.flip.float().mean()) - 0.5) < tol
    assert abs(float(j.apply.float().mean()) - 0.8) < tol
    assert abs(float(p.gray.float().mean()) - 0.2) < tol
    for f, lo, hi in (
        (j.brightness, 1 - 0.8 * s, 1 + 0.8 * s),
        (j.contrast, 1 - 0.8 * s, 1 + 0.8 * s),
        (j.saturation, 1 - 0.8 * s, 1 + 0.8 * s),
        (j.hue, -0.2 * s, 0.2 * s),
    ):
        assert lo <= float(f.min()) and float(f.max()) <= hi
        width = hi - lo
        assert float(f.min()) < lo + 0.01 * width and float(f.max()) > hi - 0.01 * width
        for q in (0.25, 0.5, 0.75):  # uniform: quantiles on the straight line
            assert abs(float(f.quantile(q)) - (lo + q * width)) < 0.02 * width
    # Every one of the 24 orders, each about 1/24 of the time.
    counts = {}
    for o in j.order.tolist():
        counts[tuple(o)] = counts.get(tuple(o), 0) + 1
    assert set(counts) == set(itertools.permutations(range(4)))
    assert max(abs(c / n - 1 / 24) for c in counts.values()) < 4 * math.sqrt((1 / 24) / n)
    # Strength > 1 keeps factors non-negative (torchvision's max(0, 1 - s)).
    strong = A.sample_jitter(1000, _gen(13), 1.6, 1.6, 1.6, 0.4, 1.0)
    assert float(strong.brightness.min()) >= 0.0 and float(strong.hue.abs().max()) <= 0.4


def test_views_are_different_per_image_and_reproducible():
    aug = A.SimCLRAugment()
    x = _images(1, seed=14).expand(16, -1, -1, -1).contiguous()
    v = aug(x, _gen(15))
    # The same image 16 times: every copy gets its own crop/colour.
    diffs = (v[1:] - v[:1]).abs().flatten(1).amax(1)
    assert bool((diffs > 0.01).all())
    torch.testing.assert_close(aug(x, _gen(15)), v)


# ---------------------------------------------------------------- random_crop_flip


def test_random_crop_flip_is_a_padded_crop_or_its_mirror():
    n, pad = 300, 4
    x = _images(n, 10, 12, seed=16)
    out = A.random_crop_flip(x, _gen(17), padding=pad)
    assert out.shape == x.shape and out.dtype == x.dtype
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    offsets, flips = [], []
    for i in range(n):
        found = None
        for oy, ox in itertools.product(range(2 * pad + 1), repeat=2):
            crop = padded[i, :, oy : oy + 10, ox : ox + 12]
            if torch.equal(out[i], crop):
                found = (oy, ox, False)
            elif torch.equal(out[i], crop.flip(-1)):
                found = (oy, ox, True)
            if found:
                break
        assert found is not None, f"image {i} is not a padded crop"
        offsets.append(found[:2])
        flips.append(found[2])
    rate = sum(flips) / n
    assert 0.4 < rate < 0.6
    ys = {o[0] for o in offsets}
    xs = {o[1] for o in offsets}
    assert ys == set(range(2 * pad + 1)) and xs == set(range(2 * pad + 1))
    no_flip = A.random_crop_flip(x, _gen(17), padding=0, flip=False)
    assert torch.equal(no_flip, x)


# ---------------------------------------------------------------- one gather: rotations, positions, layout


def test_crop_flip_rotations_without_crop_are_all_rotations_of_the_picked_images():
    from ssltui.trainer.rotation import all_rotations

    x = _images(12, seed=18)
    pos = torch.tensor([3, 0, 11, 3, 7])
    for channels_last in (False, True):
        out = A.crop_flip_rotations(x, pos, _gen(19), padding=0, flip=False, rotations=4, channels_last=channels_last)
        assert torch.equal(out, all_rotations(x[pos])[0])
        assert out.dtype == torch.uint8
        assert out.is_contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)


def test_crop_flip_rotations_rotate_one_crop_per_image():
    n, pad = 64, 4
    x = _images(n, 16, 16, seed=20)
    padded = torch.nn.functional.pad(x, (pad,) * 4)
    out = A.crop_flip_rotations(padded, None, _gen(21), padding=pad, rotations=4).view(4, n, 3, 16, 16)
    for k in range(1, 4):  # every rotation shows the same crop and mirror of its image
        assert torch.equal(out[k], torch.rot90(out[0], k, dims=(-2, -1)))
    crops = [padded[i, :, oy : oy + 16, ox : ox + 16] for i in range(n) for oy in range(9) for ox in range(9)]
    crops = torch.stack(crops).view(n, 81, 3, 16, 16)
    plain = (crops == out[0][:, None]).flatten(2).all(2).any(1)
    mirrored = (crops.flip(-1) == out[0][:, None]).flatten(2).all(2).any(1)
    assert bool((plain | mirrored).all())
    assert 0.25 < float(mirrored.float().mean()) < 0.75
    # The same draws from the same generator state, laid out channels_last.
    cl = A.crop_flip_rotations(padded, None, _gen(21), padding=pad, rotations=4, channels_last=True)
    assert torch.equal(cl.view(4, n, 3, 16, 16), out) and cl.is_contiguous(memory_format=torch.channels_last)


def test_views_of_positions_equal_views_of_the_gathered_batch_in_either_layout():
    aug = A.SimCLRAugment()
    x = _images(10, seed=22)
    pos = torch.tensor([4, 4, 9, 0, 2, 4])
    params = aug.sample(len(pos), 32, 32, _gen(23))
    ref = aug.apply(x[pos], params)
    assert torch.equal(aug.apply(x, params, pos), ref)
    cl = aug.apply(x, params, pos, channels_last=True)
    assert torch.equal(cl, ref) and cl.is_contiguous(memory_format=torch.channels_last)
    assert ref.is_contiguous()


def test_normalizer_is_the_usual_normalisation():
    x = _images(4, seed=24)
    mean, std = torch.tensor([0.49, 0.48, 0.45]), torch.tensor([0.25, 0.24, 0.26])
    ref = (x.float() / 255.0 - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)
    torch.testing.assert_close(A.normalizer(mean, std, 1 / 255)(x), ref, atol=1e-5, rtol=0)
    torch.testing.assert_close(A.normalizer(mean, std)(x.float() / 255.0), ref, atol=1e-5, rtol=0)
    torch.testing.assert_close(A.to_float(x, mean, std), ref, atol=1e-6, rtol=0)


def test_jitter_without_apply_leaves_images_exactly_unchanged():
    x = _images(16, 8, 8, seed=25).float() / 255.0
    jp = A.sample_jitter(16, _gen(26), 0.8, 0.8, 0.8, 0.2, p=0.5)
    out = A.color_jitter(x, jp)
    assert torch.equal(out[~jp.apply], x[~jp.apply])
    assert bool((out[jp.apply] != x[jp.apply]).flatten(1).any(1).all())


def test_augmentation_has_no_data_dependent_shapes_or_host_reads():
    """CUDA-graph safe: under FakeTensorMode (no data at all), any .item(), nonzero or boolean-mask
    indexing would raise; both pipelines run through with static shapes."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    aug = A.SimCLRAugment()
    real, pos = _images(20, seed=27), torch.tensor([1, 5, 5, 19])
    for channels_last in (False, True):  # the constant tables, built outside the fake mode
        aug(real, _gen(0), pos, channels_last)
        A.crop_flip_rotations(real, pos, _gen(0), 4, True, 4, channels_last)
    try:
        with FakeTensorMode(allow_non_fake_inputs=True):
            x = torch.empty(20, 3, 32, 32, dtype=torch.uint8)
            p = torch.empty(4, dtype=torch.long)
            for channels_last in (False, True):
                assert aug(x, _gen(0), p, channels_last).shape == (4, 3, 32, 32)
                assert A.crop_flip_rotations(x, p, _gen(0), 4, True, 4, channels_last).shape == (16, 3, 24, 24)
            with pytest.raises(Exception):
                x[x > 3]  # the check works: a data-dependent shape is refused
    finally:
        A._constant.cache_clear()  # nothing built in the fake mode may outlive it
        A._shift_table.cache_clear()
