"""Where eopack talks to people: notices and errors on stderr, results on stdout."""

from __future__ import annotations

from rich.console import Console

__all__ = ["err", "notice", "out"]

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def notice(message: str) -> None:
    err.print(f"[bold cyan]eopack:[/] {message}")
