"""Clients: code that talks to endpoints (WES, STAC API, OGC API Processes, Dask Gateway, Docker).

Import rule: a client imports only ``eopack.errors`` and ``eopack.clients.http``; it never starts a
service (``eopack.services``) and never defines a command (``eopack.commands``).
"""

from __future__ import annotations

__all__ = ["docker", "gateway", "http", "ogc", "slurm", "stac", "wes"]
