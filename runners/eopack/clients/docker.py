"""Docker probes: does a daemon answer, is an image there (the ``docker`` client, nothing started)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

__all__ = ["daemon_answers", "image_exists", "image_info", "remove_containers_mounting"]


def daemon_answers(timeout: float = 5.0) -> bool:
    """True when ``docker info`` succeeds, i.e. a daemon answers the client as configured."""
    if shutil.which("docker") is None:
        return False
    try:
        proc = subprocess.run(
            ["docker", "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return False
    return proc.returncode == 0


def image_exists(ref: str, timeout: float = 10.0) -> bool:
    """True when the daemon holds ``ref`` locally (a tag, ``repo@sha256:...`` or an image id)."""
    return image_info(ref, timeout) is not None


def image_info(ref: str, timeout: float = 10.0) -> dict[str, object] | None:
    """``docker image inspect`` of ``ref`` as a dict, or None when the image (or the daemon) is absent."""
    try:
        proc = subprocess.run(
            ["docker", "image", "inspect", ref],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except (subprocess.TimeoutExpired, FileNotFoundError):
        return None
    if proc.returncode != 0:
        return None
    data = json.loads(proc.stdout or "[]")
    return data[0] if data else None


def remove_containers_mounting(folder: Path, timeout: float = 30.0) -> list[str]:
    """Force-remove the running containers that bind-mount ``folder`` or anything under it.

    An engine killed mid-run can leave its tool's container running (Toil does not stop cwltool's
    containers); the container is known by what it mounts: the run's own work directory. Returns the
    ids removed; an absent daemon or client removes nothing.
    """
    try:
        ids = subprocess.run(
            ["docker", "ps", "-q", "--no-trunc"], capture_output=True, text=True, timeout=timeout, check=False
        ).stdout.split()
        if not ids:
            return []
        inspected = subprocess.run(
            ["docker", "inspect", *ids], capture_output=True, text=True, timeout=timeout, check=False
        )
    except (subprocess.TimeoutExpired, FileNotFoundError):
        return []
    root = folder.resolve()
    doomed = [
        str(c["Id"])
        for c in json.loads(inspected.stdout or "[]")
        if any(Path(str(m.get("Source", "/"))).is_relative_to(root) for m in c.get("Mounts") or [])
    ]
    if doomed:
        subprocess.run(["docker", "rm", "-f", *doomed], capture_output=True, timeout=timeout, check=False)
    return doomed
