"""Where a run's data is, seen from where its Dask workers run (the HPC issue designs the rest).

A tool in a container reads its File and Directory inputs at the paths the engine staged them at
(``/var/lib/cwl/stg<uuid>/...``). Workers of a Dask gateway run outside that container and cannot
open those paths, so the run would fail deep inside the tool (``RasterioIOError``) after a cluster
was started. Until data locality is designed, such a run is refused in one line before it starts.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from .dask import find_hint
from .errors import GatewayInputsError
from .package import Package

__all__ = ["check_gateway_inputs", "local_inputs"]


def local_inputs(job: Mapping[str, Any]) -> Iterator[tuple[str, str, str]]:
    """(input id, class, location) of every File or Directory in ``job`` that is a local path."""
    for key, value in job.items():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, dict) and item.get("class") in {"File", "Directory"}:
                where = str(item.get("location") or item.get("path") or "")
                if "://" not in where or where.startswith("file://"):
                    yield key, str(item["class"]), where


def check_gateway_inputs(
    package: Package, job: Mapping[str, Any], use_containers: bool, gateway_url: str | None
) -> None:
    """Refuse a containerised Dask run on a gateway whose inputs are local files (exit 2)."""
    if not (use_containers and gateway_url) or not any(find_hint(t) for t in package.tools):
        return
    found = next(local_inputs(job), None)
    if found is not None:
        raise GatewayInputsError(package.name, *found)
