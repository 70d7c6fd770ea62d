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


class RunFailed(SsltuiError):
    """Training itself failed (non-finite loss, out of memory, disk full...)."""

    exit_code = ExitCode.FAILED


class RunInterrupted(SsltuiError):
    """The run was stopped by SIGINT/SIGTERM after saving a checkpoint."""

    exit_code = ExitCode.INTERRUPTED
