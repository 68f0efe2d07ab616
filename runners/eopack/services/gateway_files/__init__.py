"""Python that runs inside the local Dask Gateway, copied into its state dir on every ``eopack gateway up``.

* ``config.py`` becomes ``dask_gateway_config.py``: read by ``dask-gateway-server -f`` (which gives
  it ``get_config`` and ``__file__``); its settings come from ``dask_gateway_settings.json`` beside it.
* ``record.py`` becomes ``eopack_record.py``: the scheduler preload that writes
  ``logs/clusters/<name>/record.json`` (workers seen, tasks completed).

They are real modules so ruff and mypy check them; they import only what the gateway's own
environment has (``dask_gateway_server``, ``aiohttp``, ``distributed``), never ``eopack``.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["CONFIG", "RECORD"]

CONFIG = Path(__file__).with_name("config.py")
RECORD = Path(__file__).with_name("record.py")
