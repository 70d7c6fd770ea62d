"""The terminal app (Textual). Reads only the run store; never imports torch."""
