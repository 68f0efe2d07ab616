"""Where eopack talks to people: notices and errors on stderr, results on stdout."""

from __future__ import annotations

from collections.abc import Callable

from rich.console import Console

__all__ = ["Progress", "err", "notice", "out"]

Progress = Callable[[str], None]  # where long operations report what they do (``notice``, or silence)

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def notice(message: str) -> None:
    err.print(f"[bold cyan]eopack:[/] {message}")
