"""The local Docker daemon: is it there, start it when we may, and small image queries.

Why eopack starts ``dockerd`` itself: on CI machines and fresh Debian hosts only the packages are
installed (``docker.io``), no init system runs the daemon, and ``make test`` must exercise the
containers anyway (DESIGN.md §5). As root we start ``dockerd`` in the background with its log and
pid under ``runs/services/docker/``; as anyone else we say what to do instead. A daemon that
already answers (systemd's, Docker Desktop's, a remote ``DOCKER_HOST``) is always used as it is.

``eopack docker up|down|status`` is what ``make docker-up`` runs; the probes (does a daemon answer,
is an image there) are in ``eopack.clients.docker``.
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from .. import package
from ..clients.docker import daemon_answers, image_exists, image_info
from ..errors import ServiceUnavailableError
from . import _proc
from .base import owned_pid

__all__ = [
    "SERVICE",
    "DaemonStatus",
    "daemon_answers",
    "down",
    "ensure_daemon",
    "image_exists",
    "image_info",
    "state_dir",
    "status",
]

SERVICE = "Docker"
INSTALL_FIX = (
    "Install it as root with `apt-get install -y docker.io` (make setup does), then `make docker-up`."
)
START_TIMEOUT = 60.0


def state_dir(root: Path | None = None) -> Path:
    """``runs/services/docker`` of the checkout: dockerd.log and dockerd.pid of a daemon we started."""
    return (root or package.repo_root()) / "runs" / "services" / "docker"


@dataclass(frozen=True)
class DaemonStatus:
    """Whether a daemon answers and, if eopack started it, its pid and log."""

    answers: bool
    pid: int | None
    log: Path

    @property
    def up(self) -> bool:
        return self.answers

    def describe(self) -> str:
        if not self.answers:
            return f"{SERVICE}: no daemon answers"
        owner = f"started by eopack (pid {self.pid}, log {self.log})" if self.pid else "not started by eopack"
        return f"{SERVICE}: daemon answers, {owner}"


def status(root: Path | None = None) -> DaemonStatus:
    base = state_dir(root)
    pid = owned_pid(base / "dockerd.pid", base)
    return DaemonStatus(daemon_answers(), pid, base / "dockerd.log")


def ensure_daemon(root: Path | None = None, timeout: float = START_TIMEOUT) -> DaemonStatus:
    """Return once a daemon answers, starting ``dockerd`` when installed and we are root.

    Raises ServiceUnavailableError with the one thing to do when that is impossible.
    """
    if daemon_answers():
        return status(root)
    if shutil.which("docker") is None:
        raise ServiceUnavailableError(SERVICE, "the docker client is not installed", INSTALL_FIX)
    dockerd = shutil.which("dockerd")
    if dockerd is None:
        raise ServiceUnavailableError(SERVICE, "no daemon answers and dockerd is not installed", INSTALL_FIX)
    if os.environ.get("DOCKER_HOST"):
        raise ServiceUnavailableError(
            SERVICE,
            f"DOCKER_HOST={os.environ['DOCKER_HOST']} does not answer",
            "Start that daemon, or unset DOCKER_HOST to let eopack start a local one.",
        )
    if os.geteuid() != 0:
        raise ServiceUnavailableError(
            SERVICE,
            "no daemon answers and starting dockerd needs root",
            "Ask an administrator to start Docker (systemctl start docker), or run `make docker-up` as root.",
        )
    base = state_dir(root)
    base.mkdir(parents=True, exist_ok=True)
    pid_file, log = base / "dockerd.pid", base / "dockerd.log"
    pid = owned_pid(pid_file, base)  # ours, still starting (or stuck): wait for it rather than start twice
    if pid is None:
        print(f"eopack: starting dockerd (log {log})", file=sys.stderr)
        pid = _proc.spawn([dockerd], log=log, cwd=base, pid_file=pid_file)
    if not _proc.wait_until(daemon_answers, timeout, interval=0.5):
        state = "still does not answer" if _proc.pid_alive(pid) else "exited"
        last = _proc.tail(log, 3).replace("\n", " | ") or "no output"
        raise ServiceUnavailableError(
            SERVICE,
            f"dockerd {state} after {timeout:.0f} s: {last}",
            f"Read {log}; stop a half-started daemon with `make docker-down` and retry.",
        )
    return status(root)


def down(root: Path | None = None) -> bool:
    """Stop the dockerd eopack started (never a daemon someone else runs); True when none is left."""
    pid_file = state_dir(root) / "dockerd.pid"
    pid = owned_pid(pid_file, state_dir(root))  # a recycled pid is not ours to stop
    stopped = _proc.stop_pid(pid, timeout=30.0)
    if stopped:
        pid_file.unlink(missing_ok=True)
    return stopped
