"""Feature-map thumbnails (the paper's Figure 3) as terminal text: truecolor half-blocks or ASCII.

For one test image: the 4 most active channels at the end of each ResNet-20 stage, one column
block per model, side by side. Each map is average-pooled to THUMB x THUMB pixels; a text cell
holds two pixel rows: '▀' with the upper pixel as foreground and the lower as background, or,
without colour (NO_COLOR, TERM=dumb, output not a terminal), one ASCII shade of their mean.
Used by the results screen and by `ssltui maps`. Reads featuremaps.json only (no torch).
"""

from __future__ import annotations

import os

from rich.text import Text

from ssltui.engine.featuremaps_schema import FeatureMaps, ModelMaps, as_featuremaps
from ssltui.view.format import plain

THUMB = 8
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


def _image_thumb(rgb: list, color: bool) -> list[Text]:
    chans = [pool([[px[k] for px in row] for row in rgb]) for k in range(3)]
    grey = [[0.299 * chans[0][r][c] + 0.587 * chans[1][r][c] + 0.114 * chans[2][r][c]
             for c in range(THUMB)] for r in range(THUMB)]
    colours = [[(chans[0][r][c], chans[1][r][c], chans[2][r][c]) for c in range(THUMB)] for r in range(THUMB)]
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


def render_maps(doc: FeatureMaps | dict, image: int = 0, color: bool = True) -> Text:
    """The thumbnails of image number `image` (0-based, wraps) for every model in `doc` (a
    plain dict is validated first: FeatureMapsDamaged names its first problem)."""
    doc = as_featuremaps(doc)
    if not doc.drawable():
        return Text("no feature maps in this run (they are saved at the end of a run)")
    image %= len(doc.images)
    img = doc.images[image]
    per_channel = THUMB
    width = 4 * per_channel + 3
    left = [Text("input", style="bold")] + _image_thumb(img.rgb, color)
    index = "" if img.index is None else img.index
    left += [Text(""), Text(plain(img.class_name)[:THUMB]), Text(plain(f"#{index}")[:THUMB])]
    blocks, widths = [left], [THUMB]
    for m in doc.models:
        block = [Text(model_title(m), style="bold")]
        stages = m.maps[image] if image < len(m.maps) else []
        for si, stage in enumerate(stages):
            if si:
                block.append(Text(""))
            thumbs = [thumbnail(pool(ch), color) for ch in stage.values]
            block += _hjoin(thumbs, [per_channel] * len(thumbs), " ")
        blocks.append(block)
        widths.append(width)
    lines = _hjoin(blocks, widths, "│")
    caption = (f"image {image + 1}/{len(doc.images)}; rows: end of stages 1, 2, 3 "
               f"(4 most active channels each)")
    out = Text("\n").join(lines)
    out.append("\n")
    out.append(caption, style="dim")
    return out


def merge_featuremaps(docs: list[tuple[str, FeatureMaps | None]]) -> FeatureMaps | None:
    """One document from several runs' featuremaps.json: the first run's images, and every
    run's models that were computed on the same images (named by run when there are several)."""
    docs = [(rid, d) for rid, d in docs if d is not None and d.drawable()]
    if not docs:
        return None
    images = docs[0][1].images
    wanted = [im.index for im in images]
    models = []
    for rid, d in docs:
        if [im.index for im in d.images] != wanted:
            continue
        for m in d.models:
            models.append(m.model_copy(update={"name": f"{m.name} ({rid[-6:]})"}) if len(docs) > 1 else m)
    return FeatureMaps(images=images, models=models)
