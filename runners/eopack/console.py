"""Where eopack talks to people: notices and errors on stderr, results on stdout.

Rich is imported on first use, not with eopack: a run that only prints its notices to a pipe (tests,
CI, `make bench`) never pays for it (about a tenth of `eopack run`'s own start-up on a trivial job).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["Progress", "err", "notice", "out"]

Progress = Callable[[str], None]  # where long operations report what they do (``notice``, or silence)


class _LazyConsole:
    """A ``rich.console.Console`` made on first use, with these arguments."""

    def __init__(self, **kwargs: Any) -> None:
        self._kwargs = kwargs
        self._console: Console | None = None

    def __getattr__(self, name: str) -> Any:
        if self._console is None:
            from rich.console import Console

            self._console = Console(**self._kwargs)
        return getattr(self._console, name)


out: Console = _LazyConsole(highlight=False, soft_wrap=True)  # type: ignore[assignment]
err: Console = _LazyConsole(stderr=True, highlight=False, soft_wrap=True)  # type: ignore[assignment]


def notice(message: str) -> None:
    """``eopack: message`` on stderr (bold cyan prefix on a terminal; the message is never markup)."""
    if sys.stderr.isatty():
        from rich.markup import escape

        err.print(f"[bold cyan]eopack:[/] {escape(message)}")
    else:
        print(f"eopack: {message}", file=sys.stderr, flush=True)
