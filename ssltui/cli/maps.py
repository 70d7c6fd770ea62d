"""`ssltui maps RUN_ID`: the run's feature-map thumbnails in the terminal (no torch)."""

from __future__ import annotations

from ssltui.core.errors import ConfigError
from ssltui.core.store import RunStore


def print_maps(store: RunStore, run_id: str, image: int | None = None, ascii_only: bool = False) -> None:
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
    console = Console(highlight=False, soft_wrap=True)
    # Half-blocks mean nothing without colour: NO_COLOR, TERM=dumb or a pipe get ASCII shading.
    color = not ascii_only and color_available() and console.color_system is not None
    for i in range(n) if image is None else [image]:
        console.print(render_maps(doc, i, color, width=console.width), crop=False)
        console.print()
