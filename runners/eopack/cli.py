"""Moved: the ``eopack`` command is ``eopack.commands``. This alias keeps console scripts installed
before the move (``eopack = eopack.cli:main``) working until the next ``uv sync``; import nothing else
from here."""

from __future__ import annotations

from .commands import cli, main

__all__ = ["cli", "main"]
