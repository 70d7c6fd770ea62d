"""`ssltui maps RUN_ID`: the run's feature-map thumbnails in the terminal (no torch)."""

from __future__ import annotations

from pathlib import Path

from ssltui.core.errors import ConfigError, DataError
from ssltui.core.store import RunStore


def print_maps(
    store: RunStore, run_id: str, image: int | None = None, ascii_only: bool = False, png: Path | None = None
) -> None:
    """Print the thumbnails of one image (or every image when `image` is None), as large as the
    terminal's width allows."""
    from rich.console import Console

    from ssltui.view.featuremaps import MapsUnavailable, color_available, load_featuremaps, render_maps

    rd = store.get(run_id)
    try:
        doc = load_featuremaps(rd.featuremaps_path, rd.info().status != "running")
    except MapsUnavailable as exc:
        raise ConfigError(f"run {rd.id}: {exc}") from None
    n = len(doc.images)
    if image is not None and not 0 <= image < n:
        raise ConfigError(f"--image: {image} is out of range (the run has images 0..{n - 1})")
    if png is not None:
        from ssltui.view.featuremaps import write_pngs

        if png.exists() and not png.is_dir():
            raise ConfigError(f"--png {png}: a file, not a folder")
        try:
            for path in write_pngs(doc, png, rd.id, None if image is None else [image]):
                print(path, flush=True)
        except OSError as exc:
            raise DataError(f"--png {png}: cannot write there ({exc.strerror or type(exc).__name__})") from None
        return
    console = Console(highlight=False, soft_wrap=True)
    # Half-blocks mean nothing without colour: NO_COLOR, TERM=dumb or a pipe get ASCII shading.
    color = not ascii_only and color_available() and console.color_system is not None
    for i in range(n) if image is None else [image]:
        console.print(render_maps(doc, i, color, width=console.width), crop=False)
        console.print()
