"""Progress of long work (months and blocks, dates, levels) that a person can follow and a log can hold.

The tools run under a CWL engine, their stderr a pipe that ``eopack run`` echoes to the terminal
line by line, so progress is a log line, not a redrawn bar. To keep logs short on long runs a line is
written for the first and the last step and otherwise at most every ``interval`` seconds (10 s; 1 s
when stderr is a terminal): an hour-long mosaic logs ~360 lines, not one per block.

>>> import logging
>>> clock = iter([0.0, 0.5, 1.0, 20.0, 21.0]).__next__
>>> p = Progress("month", 4, logging.getLogger("doc"), interval=10, clock=clock)
>>> [p.advance(f"2024-0{i}") for i in range(1, 5)]
['month 1/4 (25%) 2024-01', None, 'month 3/4 (75%) 2024-03, 20 s, ~7 s left', 'month 4/4 (100%) 2024-04, 21 s']
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable

__all__ = ["Progress"]


def _seconds(s: float) -> str:
    return f"{s:.0f} s" if s < 90 else f"{s / 60:.0f} min"


class Progress:
    """Count ``total`` steps of ``what``; ``advance()`` logs (and returns) a line when one is due."""

    def __init__(
        self,
        what: str,
        total: int,
        logger: logging.Logger,
        interval: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.what, self.total, self.log, self.clock = what, max(total, 0), logger, clock
        self.interval = interval if interval is not None else (1.0 if sys.stderr.isatty() else 10.0)
        self.done = 0
        self.start = clock()
        self.last: float | None = None

    def advance(self, detail: str = "", steps: int = 1) -> str | None:
        self.done += steps
        now = self.clock()
        final = self.done >= self.total
        if self.last is not None and not final and now - self.last < self.interval:
            return None
        self.last = now
        elapsed = now - self.start
        pct = 100 * self.done // self.total if self.total else 100
        line = f"{self.what} {self.done}/{self.total} ({pct}%)" + (f" {detail}" if detail else "")
        if self.done > 1 or final:
            tail = [_seconds(elapsed)]
            if not final and self.done:
                tail.append(f"~{_seconds(elapsed / self.done * (self.total - self.done))} left")
            line += ", " + ", ".join(tail)
        self.log.info("%s", line)
        return line
