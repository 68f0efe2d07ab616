"""Talking to a Dask Gateway: health probes, every user's clusters, and the local gateway's credentials.

The local gateway (``eopack.services.gateway``) keeps its password in ``gateway.json`` (mode 600)
in its state dir; ``client_settings`` reads it for a tool that uses that gateway, and only then.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..errors import ServiceUnavailableError
from . import http

__all__ = [
    "ALL_CLUSTERS_ROUTE",
    "DEFAULT_USER",
    "SERVICE",
    "STATE_DIR_ENV",
    "STATE_FILE",
    "ClusterInfo",
    "answers",
    "client_settings",
    "healthy",
    "list_clusters",
    "tool_settings",
]

SERVICE = "Dask Gateway"
DEFAULT_USER = "eopack"
STATE_DIR_ENV = "EOPACK_GATEWAY_STATE_DIR"  # where `eopack run` looks for the local gateway's password
STATE_FILE = "gateway.json"
ALL_CLUSTERS_ROUTE = "/api/v1/eopack/clusters"  # added by our config: every user's clusters
# What a run may set for the tool. DASK_GATEWAY_WORKER_TIMEOUT: seconds the tool waits for all its
# workers before going on with those that came (a busy batch queue starts them late).
SETTINGS = (
    "DASK_GATEWAY_PROXY_ADDRESS",
    "DASK_GATEWAY_USER",
    "DASK_GATEWAY_PASSWORD",
    "DASK_GATEWAY_WORKER_TIMEOUT",
)


@dataclass(frozen=True)
class ClusterInfo:
    """One cluster as the gateway sees it (``status`` lists these)."""

    name: str
    owner: str
    status: str
    worker_cores: int
    worker_memory: int  # bytes
    workers: int  # workers running now
    image: str = ""
    start_time: float | None = None

    @property
    def cores(self) -> int:
        return self.worker_cores * self.workers

    @property
    def memory(self) -> int:
        return self.worker_memory * self.workers


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def list_clusters(
    url: str, password: str, user: str = DEFAULT_USER, timeout: float = 5.0
) -> list[ClusterInfo]:
    """Every user's active clusters on an eopack gateway (our config adds the route)."""
    if urlsplit(url).scheme not in ("http", "https"):
        raise ServiceUnavailableError(SERVICE, f"{url} is not an http(s) URL", "Give the gateway's http URL.")
    request = urllib.request.Request(  # noqa: S310 (scheme checked above)
        url.rstrip("/") + ALL_CLUSTERS_ROUTE, headers={"Authorization": _basic(user, password)}
    )
    try:
        with _NO_PROXY.open(request, timeout=timeout) as response:
            raw = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise ServiceUnavailableError(
            SERVICE, f"{url} answered HTTP {exc.code} to the cluster list", "Check the password."
        ) from exc
    except (urllib.error.URLError, OSError) as exc:
        raise ServiceUnavailableError(
            SERVICE, f"{url} does not answer ({exc})", "Start it with `eopack gateway up`."
        ) from exc
    return [ClusterInfo(**{k: v for k, v in c.items() if k in ClusterInfo.__dataclass_fields__}) for c in raw]


def healthy(url: str) -> bool:
    """True when the gateway's health route answers 200."""
    return http.http_status(url.rstrip("/") + "/api/health") == 200


def answers(url: str) -> bool:
    """True when something answers the gateway health route at ``url`` from this host.

    Only a hint for the user: the tool may run where the gateway is reachable and this host is
    not (a batch node, a WES server), so the tool's own failure is the authoritative error.
    """
    return http.http_status(url.rstrip("/") + "/api/health") is not None


def _local_state(state_dir: Path) -> dict[str, Any] | None:
    try:
        raw = json.loads((state_dir / STATE_FILE).read_text())
    except (OSError, ValueError):
        return None
    return raw if isinstance(raw, dict) else None


def client_settings(url: str, state_dir: Path) -> dict[str, str]:
    """What a tool needs to use the local gateway at ``url``: proxy address, user and password.

    Empty when ``url`` is not the gateway of ``state_dir`` (another gateway brings its own
    ``DASK_GATEWAY_*`` settings). The password is for the process environment only: never write
    it into a file of a run.
    """
    state = _local_state(state_dir.resolve())
    if state is None:
        return {}
    given = urlsplit(url)
    port = int(state.get("port", 0))
    same_host = given.hostname in {http.LOOPBACK, "localhost"}
    if not (same_host and given.port == port):
        return {}
    return {
        "DASK_GATEWAY_PROXY_ADDRESS": f"gateway://{http.LOOPBACK}:{int(state.get('proxy_port', 0))}",
        "DASK_GATEWAY_USER": str(state.get("user", DEFAULT_USER)),
        "DASK_GATEWAY_PASSWORD": str(state.get("password", "")),
    }


def tool_settings(url: str, env: Mapping[str, str], state_dir: Path) -> dict[str, str]:
    """Auth and proxy for ``url``: explicit ``DASK_GATEWAY_*`` variables win over the local state."""
    found = client_settings(url, state_dir)
    for name in SETTINGS:
        if env.get(name):
            found[name] = env[name]
    return found
