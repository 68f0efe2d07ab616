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
* **A shared filesystem maps them back.** When the gateway's workers see this machine's files at the
  same paths (eopack's own gateway, local or Slurm backend; or ``EOPACK_SHARED_FS=1`` for a site's
  gateway whose nodes mount them), a containerised run is not refused: the tool gets the host
  folders of its worker-read Directory inputs (``EOPACK_WORKER_PATHS``, a JSON list) and rewrites
  the asset paths it hands the workers from the container's staging folder (``/var/lib/cwl/stg*/<name>``)
  to the host folder of the same name (eo-common's ``search.select_items``). ``EOPACK_SHARED_FS=0``
  says the workers do not share the files (a port-forwarded Kubernetes gateway): refused as above.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from .dask import find_hint
from .errors import GatewayInputsError
from .package import Package

__all__ = [
    "CONTAINER_PATHS_ENV",
    "MAPPED_INPUTS",
    "SHARED_FS_ENV",
    "WORKER_PATHS_ENV",
    "WORKER_READ",
    "check_gateway_inputs",
    "local_inputs",
    "shared_filesystem",
    "worker_inputs",
]

WORKER_READ = frozenset({"Directory"})  # input classes the Dask workers open themselves
# Worker-read inputs whose paths the tool maps for its workers: the staged STAC catalog, which
# eo-common's select_items reads for every package. A Zarr store (geozarr's input_zarr) is opened by
# xarray on the client and its chunks by path on the workers, one path for both: not mappable. (By
# URL it gets no further in a container on a gateway: its workers write the output store, which the
# tool refuses itself, eo-common's check_workers_write.)
MAPPED_INPUTS = frozenset({"input_catalog"})
SHARED_FS_ENV = "EOPACK_SHARED_FS"  # 1: the gateway's workers see this machine's paths; 0: they do not
WORKER_PATHS_ENV = "EOPACK_WORKER_PATHS"  # to the tool: host folders of its worker-read inputs (JSON)
# To the tool: "1" when it runs in a container on a gateway, so its own paths (its output folder)
# are not the workers' (eo-common's check_workers_write reads it).
CONTAINER_PATHS_ENV = "EOPACK_CONTAINER_PATHS"


def shared_filesystem(env: Mapping[str, str], own_gateway: bool) -> bool:
    """Whether the gateway's workers open this machine's paths: ``EOPACK_SHARED_FS`` when set,
    else only for eopack's own gateway (its processes or Slurm jobs run on this machine's files)."""
    given = env.get(SHARED_FS_ENV, "").strip()
    return given == "1" if given in {"0", "1"} else own_gateway


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
    package: Package,
    job: Mapping[str, Any],
    use_containers: bool,
    gateway_url: str | None,
    shared: bool = False,
) -> dict[str, str]:
    """What a containerised Dask run on a gateway tells its tool: ``EOPACK_CONTAINER_PATHS=1`` and, on
    a shared filesystem, ``EOPACK_WORKER_PATHS`` (when there is something to map); refused (exit 2)
    when the workers cannot open its inputs. Empty for any other run."""
    if not (use_containers and gateway_url) or not any(find_hint(t) for t in package.tools):
        return {}
    told = {CONTAINER_PATHS_ENV: "1"}  # so a tool whose workers write its outputs can refuse
    found = list(worker_inputs(job))
    if not found:
        return told
    if not shared:
        raise GatewayInputsError(package.name, *found[0])
    unmapped = next((f for f in found if f[0] not in MAPPED_INPUTS), None)
    if unmapped is not None:
        raise GatewayInputsError(
            package.name, *unmapped,
            why="that the tool opens at one path on the client and on the workers, so its container path "
            "cannot be handed to the gateway's workers; add --no-container",
        )  # fmt: skip
    folders = [str(Path(where.removeprefix("file://")).resolve()) for _, _, where in found]
    names = [Path(f).name for f in folders]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:  # the tool maps a staged folder back by its name
        raise GatewayInputsError(
            package.name, *found[0],
            why=f"two worker-read inputs are folders named {twice[0]!r}, which the workers cannot tell apart; "
            "rename one",
        )  # fmt: skip
    return told | {WORKER_PATHS_ENV: json.dumps(sorted(set(folders)))}
