"""Local services eopack can start, check and stop by itself: one module each (``stac``, later
``gateway``, ``slurm``, ``wes``), all keeping their state in one directory under ``runs/services/``."""

from __future__ import annotations

__all__: list[str] = []
