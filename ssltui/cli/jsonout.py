"""`--json`: one JSON object as stdout's last line, also when a command is refused or fails.

A command prints its object with `emit`; when it ends in an error before it printed one, the
entry point prints `{"status": "error", "error": ..., "exit_code": ...}` (`error_object`), so a
script reading stdout's last line always gets JSON."""

from __future__ import annotations

import json
import sys

_printed = False


def emit(obj: object) -> None:
    """Print `obj` as one line of JSON on stdout."""
    global _printed
    print(json.dumps(obj), flush=True)
    _printed = True


def reset() -> None:
    """A new command line (the entry point may run several in one process, as tests do)."""
    global _printed
    _printed = False


def printed() -> bool:
    """Whether a command has printed its JSON object already."""
    return _printed


def wanted(argv: list[str]) -> bool:
    """Whether the command line asks for JSON (`--json`, or `--format json` of `ssltui table`)."""
    args = argv[: argv.index("--")] if "--" in argv else argv
    return (
        "--json" in args
        or "--format=json" in args
        or any(a == "--format" and b == "json" for a, b in zip(args, args[1:]))
    )


def error_object(message: str, code: int) -> dict:
    return {"status": "error", "error": message, "exit_code": int(code)}


def emit_error(message: str, code: int) -> None:
    """The error's JSON object, where the command line asked for JSON and none was printed."""
    if wanted(sys.argv[1:]) and not _printed:
        emit(error_object(message, code))
