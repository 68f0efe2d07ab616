"""Celery app of the eopack WES workers: Toil's app, configured for a broker that may restart.

Started by ``eopack wes up`` as ``celery -A eopack_wes_celery worker`` with this folder on
PYTHONPATH, inside the server venv (see wes/README.md). Why not ``-A toil.server.celery_app``:

- the broker URL holds the Redis password; it is read from a mode-600 file and removed from the
  environment again, so the tools (which get the worker's environment) never see it;
- ``worker_prefetch_multiplier = 1``: a worker reserves no more runs than it has free slots, so
  runs stay QUEUED in Redis (and survive a restart of the stack) until a slot is free.
"""

from __future__ import annotations

import os
from pathlib import Path

_broker_file = os.environ.pop("EOPACK_WES_BROKER_FILE", "")
if _broker_file:
    os.environ["TOIL_WES_BROKER_URL"] = Path(_broker_file).read_text().strip()

from toil.server.celery_app import celery as app  # noqa: E402

app.conf.worker_prefetch_multiplier = 1
app.conf.broker_connection_retry_on_startup = True

os.environ.pop("TOIL_WES_BROKER_URL", None)
os.environ.pop("PYTHONPATH", None)

__all__ = ["app"]
