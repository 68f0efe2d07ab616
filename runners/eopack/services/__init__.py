"""Local services eopack can start, check and stop by itself: ``stac``, ``gateway``, ``slurm``, ``wes``,
``docker`` and ``registry``, each keeping its state in one directory under ``runs/services/``.

Lifecycle only: every module builds on ``base`` (0600 JSON state, owned pids, rollback of a failed
``up``, stop-and-sweep) and ``_proc`` (spawn, stop, ports, /proc). Talking to a running endpoint is
``eopack.clients``; the ``eopack <service> up|down|status`` commands are ``eopack.commands.services``.
"""

from __future__ import annotations

__all__: list[str] = []
