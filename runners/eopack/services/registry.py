"""A local image registry on loopback (Debian's ``docker-registry``), for testing digest-pinned releases.

Why: a release pins every image by its *registry manifest digest*, which only a push produces (the
local image id is not pullable). Docker trusts ``127.0.0.0/8`` registries over plain HTTP, so a
registry on 127.0.0.1:5000 needs no TLS or auth config, and ``dockerPull: 127.0.0.1:5000/img@sha256:...``
runs in cwltool and Toil exactly as a GHCR reference would. Debian's default config asks for an
htpasswd file and listens on all interfaces; we write our own, storage under ``runs/services/registry``.

``eopack registry up|down|status`` is what ``make registry-up``/``registry-down`` run.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from .. import package
from ..clients.http import http_status
from ..errors import ServiceUnavailableError
from . import _proc
from .base import Rollback, owned_pid

__all__ = [
    "DEFAULT_PORT",
    "SERVICE",
    "Registry",
    "RegistryStatus",
    "down",
    "report",
    "state_dir",
    "status",
    "up",
]

SERVICE = "Image registry"
DEFAULT_PORT = 5000
FIX = "Install it as root with `apt-get install -y docker-registry` (make setup does)."

CONFIG = """\
# Written by eopack (services/registry.py): loopback only, no auth, storage in this folder.
version: 0.1
log:
  level: info
  fields:
    service: registry
storage:
  filesystem:
    rootdirectory: {data}
  delete:
    enabled: true
http:
  addr: {host}:{port}
  headers:
    X-Content-Type-Options: [nosniff]
"""


def state_dir(root: Path | None = None) -> Path:
    return (root or package.repo_root()) / "runs" / "services" / "registry"


@dataclass(frozen=True)
class Registry:
    """A running registry: push to ``address``; ``pid`` is None when eopack did not start it."""

    host: str
    port: int
    pid: int | None
    state: Path

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}/v2/"


def _answers(host: str, port: int) -> bool:
    return http_status(f"http://{host}:{port}/v2/") == 200


def status(root: Path | None = None, port: int = DEFAULT_PORT) -> Registry | None:
    """The registry answering on 127.0.0.1:``port`` (ours or not), or None."""
    if not _answers(_proc.LOOPBACK, port):
        return None
    pid = owned_pid(state_dir(root) / "registry.pid", state_dir(root))
    return Registry(_proc.LOOPBACK, port, pid, state_dir(root))


@dataclass(frozen=True)
class RegistryStatus:
    """``status`` of the registry port: whether one answers, and whether eopack started it."""

    port: int
    registry: Registry | None

    @property
    def up(self) -> bool:
        return self.registry is not None

    def describe(self) -> str:
        if self.registry is None:
            return f"{SERVICE}: nothing answers on port {self.port}"
        owner = f"pid {self.registry.pid}" if self.registry.pid else "not started by eopack"
        return f"{SERVICE}: {self.registry.address} ({owner})"

    def as_dict(self) -> dict[str, object]:
        reg = self.registry
        return {
            "up": self.up,
            "port": self.port,
            "address": reg.address if reg else None,
            "pid": reg.pid if reg else None,
        }


def report(root: Path | None = None, port: int = DEFAULT_PORT) -> RegistryStatus:
    """The registry on 127.0.0.1:``port`` as ``eopack registry status`` shows it."""
    return RegistryStatus(port, status(root, port))


def up(root: Path | None = None, port: int = DEFAULT_PORT) -> Registry:
    """Start ``docker-registry serve`` on 127.0.0.1:``port`` unless a registry already answers there."""
    running = status(root, port)
    if running is not None:
        return running
    binary = shutil.which("docker-registry")
    if binary is None:
        raise ServiceUnavailableError(SERVICE, "docker-registry is not installed", FIX)
    _proc.ensure_port_free(SERVICE, port, "--port (make registry-up REGISTRY_PORT=...)")
    base = state_dir(root)
    (base / "data").mkdir(parents=True, exist_ok=True)
    config = base / "config.yml"
    config.write_text(CONFIG.format(data=base / "data", host=_proc.LOOPBACK, port=port))
    log = base / "registry.log"
    with Rollback() as started:  # a registry that does not answer is stopped again
        pid_file = base / "registry.pid"
        started.add(
            _proc.spawn([binary, "serve", str(config)], log=log, cwd=base, pid_file=pid_file), pid_file
        )
        if not _proc.wait_until(lambda: _answers(_proc.LOOPBACK, port), 20.0, interval=0.2):
            last = _proc.tail(log, 3).replace("\n", " | ")
            raise ServiceUnavailableError(
                SERVICE,
                f"no answer on {_proc.LOOPBACK}:{port} after 20 s: {last or 'no output'}",
                f"Read {log}.",
            )
    found = status(root, port)
    assert found is not None
    return found


def down(root: Path | None = None) -> bool:
    """Stop the registry eopack started (its data stays in runs/services/registry/data)."""
    pid_file = state_dir(root) / "registry.pid"
    stopped = _proc.stop_pid(owned_pid(pid_file, state_dir(root)))  # a recycled pid is not ours
    if stopped:
        pid_file.unlink(missing_ok=True)
    return stopped
