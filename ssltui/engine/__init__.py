"""The training engine. It never imports textual or typer and writes nothing to the terminal."""
