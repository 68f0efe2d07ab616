"""Errors a tool raises, and the exit codes they map to (STYLE.md: 0 success, 2 bad input, 1 else)."""

from __future__ import annotations

__all__ = ["EXIT_FAILURE", "EXIT_INPUT", "ToolError", "ToolInputError"]

EXIT_INPUT = 2
EXIT_FAILURE = 1


class ToolError(Exception):
    """A failure the user can read about in one line; exit code 1."""

    exit_code = EXIT_FAILURE


class ToolInputError(ToolError):
    """The inputs are wrong; the message says what to fix. Exit code 2."""

    exit_code = EXIT_INPUT
