"""The torch-free core: the run configuration and presets, events, the run summary and run
store, the phase graph, Table 1, paths, errors and the sweep space. The CLI, the TUI and the view
import it; it never imports torch, textual, typer or the trainer (tests/test_architecture.py)."""
