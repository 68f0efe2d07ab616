"""Where a run's data is, seen from where its Dask workers run: the data-locality rule.

A tool in a container reads its File and Directory inputs at the paths the engine staged them at
(``/var/lib/cwl/stg<uuid>/...``). The workers of a Dask gateway run elsewhere (gateway processes,
Slurm jobs, pods) and cannot open those paths; a graph that reads such a path fails deep in a task
(``RasterioIOError``) after a cluster was started. The rule (docs/packages.md, "Data locality"):

* **Directory inputs are read by the workers** (a staged STAC catalog's COGs, a Zarr store's chunks).
  On a gateway, in a container, they cannot reach the workers: the run is refused in one line
  before anything starts. Give the data by URL instead (the job's ``stac_api``, a Zarr ``url``):
  the tool passes asset URLs to the graph, and every worker opens them itself.
* **File inputs are read by the tool on the client** (a process graph, an AOI): the tool parses
  them and ships values, never their paths, to the workers. They are fine anywhere.
* Without containers (``--no-container``) inputs keep their host paths, which the local backend's
  processes and the Slurm backend's jobs (a shared filesystem) open as they are.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from .dask import find_hint
from .errors import GatewayInputsError
from .package import Package

__all__ = ["WORKER_READ", "check_gateway_inputs", "local_inputs", "worker_inputs"]

WORKER_READ = frozenset({"Directory"})  # input classes the Dask workers open themselves


def local_inputs(job: Mapping[str, Any]) -> Iterator[tuple[str, str, str]]:
    """(input id, class, location) of every File or Directory in ``job`` that is a local path."""
    for key, value in job.items():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, dict) and item.get("class") in {"File", "Directory"}:
                where = str(item.get("location") or item.get("path") or "")
                if "://" not in where or where.startswith("file://"):
                    yield key, str(item["class"]), where


def worker_inputs(job: Mapping[str, Any]) -> Iterator[tuple[str, str, str]]:
    """The local inputs of ``job`` that the workers would open (``WORKER_READ`` classes)."""
    return (found for found in local_inputs(job) if found[1] in WORKER_READ)


def check_gateway_inputs(
    package: Package, job: Mapping[str, Any], use_containers: bool, gateway_url: str | None
) -> None:
    """Refuse a containerised Dask run on a gateway whose workers would read local paths (exit 2)."""
    if not (use_containers and gateway_url) or not any(find_hint(t) for t in package.tools):
        return
    found = next(worker_inputs(job), None)
    if found is not None:
        raise GatewayInputsError(package.name, *found)
