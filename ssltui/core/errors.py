"""Exit codes and the exceptions that map onto them."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Every exit code ssltui uses (documented in the README)."""

    OK = 0
    FAILED = 1
    USAGE = 2
    DATA = 3
    INTERRUPTED = 130


class SsltuiError(Exception):
    """An error with a one-line message for the user and an exit code."""

    exit_code: ExitCode = ExitCode.FAILED

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message.replace("\n", " ").strip()


class ConfigError(SsltuiError):
    """A preset, --set value or argument that is unknown, mistyped or out of range."""

    exit_code = ExitCode.USAGE


class DataError(SsltuiError):
    """A data source that cannot be found, read or understood."""

    exit_code = ExitCode.DATA


class StorageError(SsltuiError):
    """A sweep's database that cannot be reached or answered in time (lost server, held lock)."""

    exit_code = ExitCode.DATA


class RunFailed(SsltuiError):
    """Training itself failed (non-finite loss, out of memory, disk full...)."""

    exit_code = ExitCode.FAILED


class RunInterrupted(SsltuiError):
    """The run was stopped by SIGINT/SIGTERM after saving a checkpoint."""

    exit_code = ExitCode.INTERRUPTED


def first_line(exc: BaseException, default: str | None = None) -> str:
    """The first line of an exception's message (for one-line errors); `default` (the exception's
    type name unless given) when the message is empty."""
    text = str(exc).strip()
    if not text:
        return type(exc).__name__ if default is None else default
    return text.splitlines()[0]


def quoted(value: object, limit: int = 60) -> str:
    """A user-given value inside an error message: repr'd (so control characters and quotes
    show) and cut at `limit` characters, so a 5,000-character argument still reads as one line."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 4] + "...'"


def validation_problem(exc: Exception) -> str:
    """The first problem of a pydantic ValidationError in one line: 'where: what (got value)'.
    Duck-typed so that this module needs no pydantic."""
    errors = exc.errors(include_url=False)  # type: ignore[attr-defined]
    if not errors:
        return first_line(exc)
    err = errors[0]
    where = ".".join(str(p) for p in err["loc"]) or "document"
    if err["type"] == "json_invalid":
        return f"not JSON ({err['msg'].lower()})"
    return f"{where}: {err['msg'].lower()} (got {quoted(err.get('input'), 40)})"
