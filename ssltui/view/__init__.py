"""What the CLI and the TUI both show, in one place: formats (`format`), rich tables (`tables`)
and feature-map thumbnails (`featuremaps`). No torch, no textual, no typer."""
