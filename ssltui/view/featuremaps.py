"""Feature-map thumbnails (the paper's Figure 3) as terminal text: truecolor half-blocks or ASCII.

For one test image: the input at its own 32x32 pixels (recognisable), and for each model the
most active channels at the end of each ResNet-20 stage (a row per stage). Thumbnails grow with
the room they get (8, 16 or 32 pixels a side: whole divisors of the stages' 32, 16 and 8 pixel
maps, so no pixel is smeared); when every model does not fit, one model at a time. A text cell
holds two pixel rows: '▀' with the upper pixel as foreground and the lower as background, or,
without colour (NO_COLOR, TERM=dumb, output not a terminal), one ASCII shade of their mean.
Used by the results screen and by `ssltui maps`. Reads featuremaps.json only (no torch).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from rich.text import Text

from ssltui.core.featuremaps_schema import (FeatureMaps, FeatureMapsDamaged, ModelMaps, as_featuremaps,
                                              parse_featuremaps)
from ssltui.view.format import plain

THUMB = 8
THUMB_SIZES = (32, 16, 8)  # pixels a side, largest first
STAGES = 3
GUTTER = 3  # 's1 ' before each stage's row of thumbnails
SHADES = " .:-=+*#%@"
# viridis at 0, .25, .5, .75, 1 (matplotlib's default map, as in most feature-map figures)
_VIRIDIS = ((68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37))


def color_available(env: dict | None = None) -> bool:
    """Colour unless NO_COLOR is set (any value) or the terminal is dumb."""
    env = os.environ if env is None else env
    return "NO_COLOR" not in env and env.get("TERM", "") != "dumb"


def pool(grid: list[list[float]], size: int = THUMB) -> list[list[float]]:
    """Average-pool an h x w grid to size x size (h and w multiples of size; smaller grids repeat)."""
    h, w = len(grid), len(grid[0]) if grid else 0
    if not h or not w:
        return [[0.0] * size for _ in range(size)]
    out = []
    for r in range(size):
        r0, r1 = r * h // size, max(r * h // size + 1, (r + 1) * h // size)
        row = []
        for c in range(size):
            c0, c1 = c * w // size, max(c * w // size + 1, (c + 1) * w // size)
            cells = [grid[i][j] for i in range(r0, r1) for j in range(c0, c1)]
            row.append(sum(cells) / len(cells))
        out.append(row)
    return out


def viridis(v: float) -> tuple[int, int, int]:
    """0-255 -> an RGB colour of the viridis map."""
    x = min(1.0, max(0.0, v / 255)) * (len(_VIRIDIS) - 1)
    i = min(int(x), len(_VIRIDIS) - 2)
    f = x - i
    a, b = _VIRIDIS[i], _VIRIDIS[i + 1]
    return tuple(round(a[k] + (b[k] - a[k]) * f) for k in range(3))  # type: ignore[return-value]


def _hex(rgb: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*(max(0, min(255, int(round(c)))) for c in rgb))


def thumbnail(grid: list[list[float]], color: bool, rgb: list[list[tuple]] | None = None) -> list[Text]:
    """THUMB columns x THUMB/2 lines for a pooled grid (values 0-255) or an RGB image."""
    lines = []
    for r in range(0, len(grid), 2):
        line = Text()
        for c in range(len(grid[r])):
            top, bottom = grid[r][c], grid[r + 1][c] if r + 1 < len(grid) else grid[r][c]
            if color:
                if rgb is not None:
                    fg, bg = rgb[r][c], rgb[r + 1][c] if r + 1 < len(rgb) else rgb[r][c]
                else:
                    fg, bg = viridis(top), viridis(bottom)
                line.append("▀", style=f"{_hex(fg)} on {_hex(bg)}")
            else:
                v = (top + bottom) / 2
                line.append(SHADES[min(len(SHADES) - 1, int(v * len(SHADES) / 256))])
        lines.append(line)
    return lines


class MapsUnavailable(Exception):
    """Why a run has no feature maps to show (absent, damaged, empty), in one line."""


def load_featuremaps(path: Path, finished: bool = True) -> FeatureMaps:
    """featuremaps.json, validated by its model; MapsUnavailable with the reason otherwise: absent
    (said as such), cut short (a torn write), or damaged (the model's first problem)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        when = "when it completes" if finished else "when it ends; it has not yet"
        raise MapsUnavailable(f"no feature maps: a run writes featuremaps.json {when}") from None
    except OSError as exc:
        raise MapsUnavailable(f"featuremaps.json: cannot read it ({exc.strerror})") from None
    try:
        doc = parse_featuremaps(data)
    except FeatureMapsDamaged as exc:
        if "eof while parsing" in str(exc):  # a writer stopped mid-way (the engine writes it atomically)
            raise MapsUnavailable(f"featuremaps.json is damaged: not valid JSON (cut short after {len(data)} "
                                  f"bytes)") from None
        raise MapsUnavailable(f"featuremaps.json is damaged: {exc}") from None
    if not doc.images:
        raise MapsUnavailable("featuremaps.json is damaged: no images in it")
    if not doc.models:
        raise MapsUnavailable("featuremaps.json is damaged: no models in it")
    return doc


def _image_thumb(rgb: list, px: int, color: bool) -> list[Text]:
    chans = [pool([[float(p[k]) for p in row] for row in rgb], px) for k in range(3)]
    grey = [[0.299 * chans[0][r][c] + 0.587 * chans[1][r][c] + 0.114 * chans[2][r][c]
             for c in range(px)] for r in range(px)]
    colours = [[(chans[0][r][c], chans[1][r][c], chans[2][r][c]) for c in range(px)] for r in range(px)]
    return thumbnail(grey, color, rgb=colours)


def _pad(line: Text, width: int) -> Text:
    line = line.copy()
    line.truncate(width)
    line.pad_right(width - line.cell_len)
    return line


def _hjoin(blocks: list[list[Text]], widths: list[int], sep: str) -> list[Text]:
    height = max(len(b) for b in blocks)
    out = []
    for i in range(height):
        line = Text()
        for bi, (block, width) in enumerate(zip(blocks, widths)):
            if bi:
                line.append(sep, style="dim")
            line.append_text(_pad(block[i] if i < len(block) else Text(), width))
        out.append(line)
    return out


def model_title(model: ModelMaps) -> str:
    return plain(f"{model.name} · seed {'?' if model.seed is None else model.seed}")


@dataclass
class Layout:
    """How the maps of one image are laid out in `width` x `height` cells."""

    input_px: int  # the input image's side in pixels (columns; half as many lines)
    thumb: int  # a feature map's side in pixels
    channels: int  # channels shown per stage
    models: list[int]  # the models shown (indices into doc.models)
    per_row: int  # model blocks side by side
    gap: int = 1  # blank lines between stages (0 when that makes larger thumbnails fit)

    @property
    def block_width(self) -> int:
        return GUTTER + self.channels * (self.thumb + 1) - 1

    @property
    def block_height(self) -> int:  # title, then each stage's rows with a blank line between
        return 1 + STAGES * (self.thumb // 2) + (STAGES - 1) * self.gap


def plan_layout(width: int, height: int | None, n_models: int, n_channels: int, view: int = 0) -> Layout:
    """The largest thumbnails that fit: every model (`view` 0), else model `view`-1 alone; when
    not even the smallest fit for every model, as many models as fit at the smallest size."""
    # the input at its own 32 pixels, unless the room (its name and 16 lines) is not there
    roomy = height is None or height >= 1 + 32 // 2
    input_px = 32 if width >= 32 + 1 + GUTTER + 4 * 9 - 1 and roomy else 16
    room = max(1, width - input_px - 1)
    wanted = list(range(n_models)) if view == 0 else [(view - 1) % max(1, n_models)]
    best = None
    for t in THUMB_SIZES:
        for gap in (1, 0):
            c = min(n_channels, max(1, (room - GUTTER + 1) // (t + 1)))
            layout = Layout(input_px, t, c, wanted, 1, gap)
            per_row = max(1, (room + 1) // (layout.block_width + 1))
            rows = len(wanted) if height is None else max(1, (height + 1) // (layout.block_height + 1))
            fits_h = height is None or layout.block_height <= height
            layout.per_row = min(per_row, len(wanted))
            if fits_h and c >= min(4, n_channels) and per_row * rows >= len(wanted):
                return layout
            if fits_h and best is None and t == THUMB_SIZES[-1]:
                best = Layout(input_px, t, c, wanted[:max(1, per_row * rows)], min(per_row, len(wanted)), gap)
    return best or Layout(input_px, THUMB_SIZES[-1], min(n_channels, 4), wanted[:1], 1)


def _model_block(model: ModelMaps, image: int, layout: Layout, color: bool) -> list[Text]:
    block = [Text(model_title(model), style="bold")]
    stages = model.maps[image] if image < len(model.maps) else []
    for si, stage in enumerate(stages[:STAGES]):
        if si and layout.gap:
            block.append(Text(""))
        thumbs = [thumbnail(pool(ch, layout.thumb), color) for ch in stage.values[:layout.channels]]
        rows = _hjoin(thumbs, [layout.thumb] * len(thumbs), " ")
        for ri, row in enumerate(rows):
            block.append(Text(f"s{si + 1} " if ri == 0 else " " * GUTTER, style="dim") + row)
    return block


def render_maps(doc: FeatureMaps | dict, image: int = 0, color: bool = True, width: int = 120,
                height: int | None = None, view: int = 0) -> Text:
    """The input image `image` (0-based, wraps) and its feature maps, laid out for `width` x
    `height` cells (`height` None: as tall as needed); `view` 0 all models, k model k alone.
    A plain dict is validated first (FeatureMapsDamaged names its first problem)."""
    doc = as_featuremaps(doc)
    if not doc.drawable():
        return Text("no feature maps in this run (they are saved at the end of a run)")
    image %= len(doc.images)
    img = doc.images[image]
    n_channels = max((len(st.values) for m in doc.models for per in m.maps[:1] for st in per), default=4)
    caption_lines = 2
    layout = plan_layout(width, None if height is None else height - caption_lines, len(doc.models), n_channels,
                         view)
    name = plain(img.class_name) or "input"
    left = [Text(name, style="bold")] + _image_thumb(img.rgb, layout.input_px, color)
    blocks = [_model_block(doc.models[i], image, layout, color) for i in layout.models]
    right: list[Text] = []
    for r in range(0, len(blocks), layout.per_row):
        if right:
            right.append(Text(""))
        row = blocks[r:r + layout.per_row]
        right += _hjoin(row, [layout.block_width] * len(row), "│")
    lines = _hjoin([left, right], [layout.input_px, layout.block_width * layout.per_row + layout.per_row - 1], "│")
    shown = "" if len(layout.models) == len(doc.models) else \
        f" · model{'s' if len(layout.models) > 1 else ''} {', '.join(str(i + 1) for i in layout.models)} " \
        f"of {len(doc.models)} (v: next)"
    index = "?" if img.index is None else img.index
    caption = (f"image {image + 1}/{len(doc.images)}: {plain(img.class_name)} (test image #{index}){shown}\n"
               f"rows s1-s3: end of stages 1-3, {layout.channels} most active channels, "
               f"{layout.thumb}x{layout.thumb} px")
    out = Text("\n").join(lines)
    out.append("\n")
    out.append(caption, style="dim")
    return out


def _image_list(doc: FeatureMaps) -> str:
    return ", ".join(f"#{'?' if im.index is None else im.index}" for im in doc.images)


def merge_featuremaps(docs: list[tuple[str, FeatureMaps | None]],
                      left_out: list[str] | None = None) -> FeatureMaps | None:
    """One document from several runs' featuremaps.json: the first run's images, and every
    run's models that were computed on the same images (named by run when there are several).
    A run whose maps are of other test images cannot be set beside the others: it is left out,
    and a line saying so and why is appended to `left_out`."""
    docs = [(rid, d) for rid, d in docs if d is not None and d.drawable()]
    if not docs:
        return None
    first_id, first = docs[0]
    images = first.images
    wanted = [im.index for im in images]
    models = []
    for rid, d in docs:
        if [im.index for im in d.images] != wanted:
            if left_out is not None:
                left_out.append(plain(f"{rid}: not shown, its maps are of other test images ({_image_list(d)}) "
                                      f"than {first_id}'s ({_image_list(first)}); open it alone to see them"))
            continue
        for m in d.models:
            models.append(m.model_copy(update={"name": f"{m.name} ({rid[-6:]})"}) if len(docs) > 1 else m)
    return FeatureMaps(images=images, models=models)
