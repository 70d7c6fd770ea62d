"""Feature-map thumbnails (the paper's Figure 3) as terminal text: truecolor half-blocks or ASCII.

For one test image: the input at its own 32x32 pixels (recognisable), and for each model the
most active channels at the end of each ResNet-20 stage (a row per stage). Thumbnails are as
large as the room allows (8, 16 or 32 pixels a side: whole divisors of the stages' 32, 16 and 8
pixel maps, so no pixel is smeared), each stage up to its own resolution and never past it; the
models that fit at that size are a page (`view` pages through them), or, `compact`, every model
at once at the size where all fit. A text cell holds two pixel rows: '▀' with the upper pixel as
foreground and the lower as background (viridis; in a 256-colour terminal a ramp of palette
colours whose brightness only grows), or, without colour (NO_COLOR, TERM=dumb, output not a
terminal), one ASCII shade of their mean, thumbnails apart by '|' (a space is the darkest shade).
A legend says what dark and bright mean: each map is scaled to its own lowest..highest activation.
Used by the results screen and by `ssltui maps`. Reads featuremaps.json only (no torch).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from rich.text import Text

from ssltui.core.featuremaps_schema import FeatureMaps, FeatureMapsDamaged, ModelMaps, as_featuremaps, parse_featuremaps
from ssltui.view.format import plain

THUMB = 8
THUMB_SIZES = (32, 16, 8)  # pixels a side, largest first
STAGES = 3
NATIVE = (32, 16, 8)  # each stage's map size in pixels (ResNet-20 on 32x32 images)
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


def _luminance(rgb: tuple[int, int, int]) -> float:
    return 0.2126 * rgb[0] + 0.7152 * rgb[1] + 0.0722 * rgb[2]


def _palette_rgb(n: int) -> tuple[int, int, int]:
    """xterm's 256-colour palette entry n (16-231 the 6x6x6 cube, 232-255 the greys)."""
    if n >= 232:
        v = 8 + 10 * (n - 232)
        return v, v, v
    n -= 16
    steps = (0, 95, 135, 175, 215, 255)
    return steps[n // 36], steps[n // 6 % 6], steps[n % 6]


def _ramp_256(levels: int = 24) -> list[int]:
    """Palette entries close to viridis whose brightness never falls: the nearest palette colour
    to each level among those at least as bright as the previous level's (a plain nearest-colour
    downgrade makes a ramp that darkens and brightens again, and whole ranges the same colour)."""
    out: list[int] = []
    floor = -1.0
    for k in range(levels):
        target = viridis(255 * k / (levels - 1))
        candidates = [n for n in range(16, 256) if _luminance(_palette_rgb(n)) > floor]
        best = min(candidates, key=lambda n: sum((a - b) ** 2 for a, b in zip(_palette_rgb(n), target)))
        out.append(best)
        floor = _luminance(_palette_rgb(best))
    return out


_RAMP_256 = _ramp_256()


def ramp_color(v: float, eight_bit: bool = False) -> str:
    """A value 0-255 as a colour style: viridis, or its 256-colour ramp."""
    if eight_bit:
        return f"color({_RAMP_256[min(len(_RAMP_256) - 1, int(v * len(_RAMP_256) / 256))]})"
    return _hex(viridis(v))


def _hex(rgb: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*(max(0, min(255, int(round(c)))) for c in rgb))


def thumbnail(
    grid: list[list[float]], color: bool, rgb: list[list[tuple]] | None = None, eight_bit: bool = False
) -> list[Text]:
    """THUMB columns x THUMB/2 lines for a pooled grid (values 0-255) or an RGB image."""
    lines = []
    for r in range(0, len(grid), 2):
        line = Text()
        for c in range(len(grid[r])):
            top, bottom = grid[r][c], grid[r + 1][c] if r + 1 < len(grid) else grid[r][c]
            if color:
                if rgb is not None:
                    fg, bg = rgb[r][c], rgb[r + 1][c] if r + 1 < len(rgb) else rgb[r][c]
                    line.append("▀", style=f"{_hex(fg)} on {_hex(bg)}")
                else:
                    line.append("▀", style=f"{ramp_color(top, eight_bit)} on {ramp_color(bottom, eight_bit)}")
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
            raise MapsUnavailable(
                f"featuremaps.json is damaged: not valid JSON (cut short after {len(data)} bytes)"
            ) from None
        raise MapsUnavailable(f"featuremaps.json is damaged: {exc}") from None
    if not doc.images:
        raise MapsUnavailable("featuremaps.json is damaged: no images in it")
    if not doc.models:
        raise MapsUnavailable("featuremaps.json is damaged: no models in it")
    return doc


def _image_thumb(rgb: list, px: int, color: bool) -> list[Text]:
    chans = [pool([[float(p[k]) for p in row] for row in rgb], px) for k in range(3)]
    grey = [
        [0.299 * chans[0][r][c] + 0.587 * chans[1][r][c] + 0.114 * chans[2][r][c] for c in range(px)] for r in range(px)
    ]
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
    thumb: int  # the largest feature map's side in pixels (stage 1's)
    channels: int  # channels shown per stage
    models: list[int]  # the models shown (indices into doc.models)
    per_row: int  # model blocks side by side
    gap: int = 1  # blank lines between stages (0 when that makes larger thumbnails fit)
    pages: int = 1  # pages of models at this size (`v` turns them)

    @property
    def stage_px(self) -> tuple[int, ...]:
        """Each stage's thumbnail side: the size chosen, but never past the stage's own maps."""
        return tuple(min(self.thumb, n) for n in NATIVE)

    @property
    def block_width(self) -> int:
        return GUTTER + self.channels * (self.thumb + 1) - 1

    @property
    def block_height(self) -> int:  # title, then each stage's rows with a blank line between
        return 1 + sum(px // 2 for px in self.stage_px) + (STAGES - 1) * self.gap


def plan_layout(
    width: int, height: int | None, n_models: int, n_channels: int, view: int = 0, compact: bool = False
) -> Layout:
    """The largest thumbnails at which a model fits, and page `view` of the models that fit at
    that size; `compact`: the largest at which every model fits (at the smallest size, as many
    models as fit)."""
    # the input at its own 32 pixels, unless the room (its name and 16 lines) is not there
    roomy = height is None or height >= 1 + 32 // 2
    input_px = 32 if width >= 32 + 1 + GUTTER + 4 * 9 - 1 and roomy else 16
    room = max(1, width - input_px - 1)
    n_models = max(1, n_models)
    best = None
    for t in THUMB_SIZES:
        for gap in (1, 0):
            c = min(n_channels, max(1, (room - GUTTER + 1) // (t + 1)))
            layout = Layout(input_px, t, c, [], 1, gap)
            per_row = max(1, (room + 1) // (layout.block_width + 1))
            rows = n_models if height is None else max(1, (height + 1) // (layout.block_height + 1))
            fits = (
                (height is None or layout.block_height <= height)
                and c >= min(4, n_channels)
                and layout.block_width <= room
            )
            capacity = min(n_models, per_row * rows)
            if fits and (capacity == n_models or not compact):
                pages = -(-n_models // capacity)
                first = (view % pages) * capacity
                layout.models = list(range(first, min(n_models, first + capacity)))
                layout.per_row, layout.pages = min(per_row, len(layout.models)), pages
                return layout
            if best is None and t == THUMB_SIZES[-1] and (height is None or layout.block_height <= height):
                pages = -(-n_models // max(1, capacity))
                first = (view % pages) * max(1, capacity)
                best = Layout(
                    input_px,
                    t,
                    c,
                    list(range(first, min(n_models, first + max(1, capacity)))),
                    min(per_row, max(1, capacity)),
                    gap,
                    pages,
                )
    return best or Layout(input_px, THUMB_SIZES[-1], min(n_channels, 4), [view % n_models], 1, 1, n_models)


def _model_block(model: ModelMaps, image: int, layout: Layout, color: bool, eight_bit: bool = False) -> list[Text]:
    block = [Text(model_title(model), style="bold")]
    stages = model.maps[image] if image < len(model.maps) else []
    # ASCII: a space is the darkest shade, so thumbnails side by side are kept apart by '|'
    sep = " " if color else "|"
    for si, stage in enumerate(stages[:STAGES]):
        if si and layout.gap:
            block.append(Text(""))
        px = layout.stage_px[si] if si < len(layout.stage_px) else layout.thumb
        thumbs = [thumbnail(pool(ch, px), color, eight_bit=eight_bit) for ch in stage.values[: layout.channels]]
        rows = _hjoin(thumbs, [px] * len(thumbs), sep)
        for ri, row in enumerate(rows):
            block.append(Text(f"s{si + 1} " if ri == 0 else " " * GUTTER, style="dim") + row)
    return block


def legend(color: bool, eight_bit: bool = False) -> Text:
    """What dark and bright mean in the thumbnails."""
    out = Text("scale: ", style="dim")
    if color:
        out.append("dark ")
        for k in range(12):
            out.append("█", style=ramp_color(255 * k / 11, eight_bit))
        out.append(" bright", style="")
    else:
        out.append(f"'{SHADES[0]}' to '{SHADES[-1]}'")
    out.append(" = a map's lowest .. highest activation on this image", style="dim")
    return out


def render_maps(
    doc: FeatureMaps | dict,
    image: int = 0,
    color: bool = True,
    width: int = 120,
    height: int | None = None,
    view: int = 0,
    compact: bool = False,
    eight_bit: bool = False,
) -> Text:
    """The input image `image` (0-based, wraps) and its feature maps, laid out for `width` x
    `height` cells (`height` None: as tall as needed); `view`: the page of models (see
    `plan_layout`), `compact` every model at once; `eight_bit` the 256-colour ramp.
    A plain dict is validated first (FeatureMapsDamaged names its first problem)."""
    doc = as_featuremaps(doc)
    if not doc.drawable():
        return Text("no feature maps in this run (they are saved at the end of a run)")
    image %= len(doc.images)
    img = doc.images[image]
    n_channels = max((len(st.values) for m in doc.models for per in m.maps[:1] for st in per), default=4)
    caption_lines = 3
    layout = plan_layout(
        width, None if height is None else height - caption_lines, len(doc.models), n_channels, view, compact
    )
    name = plain(img.class_name) or "input"
    left = [Text(name, style="bold")] + _image_thumb(img.rgb, layout.input_px, color)
    blocks = [_model_block(doc.models[i], image, layout, color, eight_bit) for i in layout.models]
    right: list[Text] = []
    for r in range(0, len(blocks), layout.per_row):
        if right:
            right.append(Text(""))
        row = blocks[r : r + layout.per_row]
        right += _hjoin(row, [layout.block_width] * len(row), "│")
    lines = _hjoin([left, right], [layout.input_px, layout.block_width * layout.per_row + layout.per_row - 1], "│")
    shown = (
        ""
        if len(layout.models) == len(doc.models)
        else f" · model{'s' if len(layout.models) > 1 else ''} {', '.join(str(i + 1) for i in layout.models)} "
        f"of {len(doc.models)} (v: next{'' if compact else ', z: all at once'})"
    )
    index = "?" if img.index is None else img.index
    sizes = " / ".join(dict.fromkeys(f"{px}x{px}" for px in layout.stage_px))
    caption = (
        f"image {image + 1}/{len(doc.images)}: {plain(img.class_name)} (test image #{index}){shown}\n"
        f"rows s1-s3: end of stages 1-3, {layout.channels} most active channels, {sizes} px"
    )
    out = Text("\n").join(lines)
    out.append("\n")
    out.append(caption, style="dim")
    out.append("\n")
    out.append_text(legend(color, eight_bit))
    return out


def _image_list(doc: FeatureMaps) -> str:
    return ", ".join(f"#{'?' if im.index is None else im.index}" for im in doc.images)


def merge_featuremaps(
    docs: list[tuple[str, FeatureMaps | None]], left_out: list[str] | None = None
) -> FeatureMaps | None:
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
                left_out.append(
                    plain(
                        f"{rid}: not shown, its maps are of other test images ({_image_list(d)}) "
                        f"than {first_id}'s ({_image_list(first)}); open it alone to see them"
                    )
                )
            continue
        for m in d.models:
            models.append(m.model_copy(update={"name": f"{m.name} ({rid[-6:]})"}) if len(docs) > 1 else m)
    return FeatureMaps(images=images, models=models)


PNG_CELL = 96  # pixels a side of every map and of the input in the PNG (nearest-neighbour, no smearing)
PNG_GAP = 4


def _png_file_name(run_id: str, k: int, class_name: str | None) -> str:
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in (class_name or "input"))[:40] or "input"
    return f"{run_id}-image{k + 1}-{safe}.png"


def maps_image(doc: FeatureMaps, image: int):
    """One test image's maps as a PIL image: the input, then per model (side by side) a row per
    stage of its channels, every map enlarged to PNG_CELL pixels without smearing, viridis; a
    legend bar under them (dark: a map's lowest activation on this image, bright: its highest)."""
    from PIL import Image, ImageDraw

    img = doc.images[image]
    n_channels = max((len(st.values) for m in doc.models for per in m.maps[:1] for st in per), default=4)
    cell, gap, title = PNG_CELL, PNG_GAP, 16
    block_w = n_channels * (cell + gap)
    width = gap + cell + 3 * gap + len(doc.models) * (block_w + 2 * gap)
    height = title + STAGES * (cell + gap) + 40
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    rgb = Image.new("RGB", (len(img.rgb[0]), len(img.rgb)))
    rgb.putdata([tuple(int(c) for c in p[:3]) for row in img.rgb for p in row])
    canvas.paste(rgb.resize((cell, cell), Image.NEAREST), (gap, title))
    draw.text((gap, 2), plain(img.class_name) or "input", fill=(0, 0, 0))
    lut = [viridis(v) for v in range(256)]
    x0 = gap + cell + 3 * gap
    for model in doc.models:
        draw.text((x0, 2), model_title(model), fill=(0, 0, 0))
        stages = model.maps[image] if image < len(model.maps) else []
        for si, stage in enumerate(stages[:STAGES]):
            for ci, values in enumerate(stage.values[:n_channels]):
                h, w = len(values), len(values[0]) if values else 0
                if not h or not w:
                    continue
                m = Image.new("RGB", (w, h))
                m.putdata([lut[max(0, min(255, int(v)))] for row in values for v in row])
                canvas.paste(m.resize((cell, cell), Image.NEAREST), (x0 + ci * (cell + gap), title + si * (cell + gap)))
        x0 += block_w + 2 * gap
    y = title + STAGES * (cell + gap) + 6
    draw.text((gap, y), "dark", fill=(0, 0, 0))
    bar_x, bar_w = gap + 34, 256
    for k in range(bar_w):
        draw.line([(bar_x + k, y), (bar_x + k, y + 10)], fill=lut[k * 255 // (bar_w - 1)])
    draw.text(
        (bar_x + bar_w + 6, y),
        "bright: a map's lowest .. highest activation on this image; rows: stages 1-3",
        fill=(0, 0, 0),
    )
    return canvas


def write_pngs(doc: FeatureMaps | dict, folder: Path, run_id: str, images: list[int] | None = None) -> list[Path]:
    """Every (or the given) test image's maps as `<run>-image<k>-<class>.png` in `folder` (made
    when missing); each file is written whole (a temporary name, then renamed)."""
    doc = as_featuremaps(doc)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for k in range(len(doc.images)) if images is None else images:
        path = folder / _png_file_name(run_id, k, doc.images[k].class_name)
        tmp = path.with_name(f".{path.name}.tmp")
        try:
            maps_image(doc, k).save(tmp, format="PNG")
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        written.append(path)
    return written
