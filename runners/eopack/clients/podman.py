"""Podman as eopack drives it: its own configuration (never the machine's) and probes.

eopack points podman at files in its state dir through the variables podman reads
(``CONTAINERS_CONF``, ``CONTAINERS_STORAGE_CONF``, ``CONTAINERS_REGISTRIES_CONF``), so a run uses
its own storage root and no machine-wide setting changes. What those files say, and why
(facts measured on this machine, Debian 12's podman 4.3.1, as root, cgroup v1):

- ``runtime = "runc"``: crun refuses cgroup v1 hybrid hierarchies ("cgroups in hybrid mode not
  supported").
- ``default_ulimits`` equal to this process's hard limits, ``nproc`` capped at ``kernel.pid_max``:
  rootful podman otherwise asks runc for ``nofile=1048576`` and the kernel refuses it
  ("error setting rlimit type 7: operation not permitted"); an nproc above pid_max is refused too.
- ``cgroup_manager = "cgroupfs"``, ``events_logger = "file"``: no systemd or journald here; the
  events (image loads, pulls, container runs) are kept in ``events.log`` in the state dir.
- ``pull_policy = "never"``, no registry to search and ``docker.io`` blocked: a missing image fails
  ("image not known") instead of being pulled; compute nodes load the package image from its
  archive, never from the network. (podman 4.3 still logs a ``pull`` event each time ``podman run``
  resolves a local image: that event is no download.)
- rootful podman 4 refuses ``--userns=keep-id`` ("keep-id is only supported in rootless mode"),
  which cwltool (and so Toil) always adds with ``--podman``. As root, a two-line wrapper in the
  state dir's ``bin/`` drops that one argument and execs the real podman; rootless, no wrapper.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
from pathlib import Path

__all__ = ["STATE_DIR_ENV", "available", "configure", "image_events", "image_names", "load"]

STATE_DIR_ENV = "EOPACK_PODMAN_DIR"

_WRAPPER = """#!/bin/sh
# Written by eopack (clients/podman.py): rootful podman 4 refuses --userns=keep-id, which cwltool
# adds with --podman; drop it when running as root, pass everything else to the real podman.
if [ "$(id -u)" = 0 ]; then
  for a in "$@"; do shift; [ "$a" = "--userns=keep-id" ] || set -- "$@" "$a"; done
fi
exec {podman} "$@"
"""


def available() -> tuple[bool, str]:
    """(podman is installed, why not)."""
    if shutil.which("podman") is None:
        return False, "podman not found on PATH (Debian: apt-get install podman)"
    return True, ""


def _limits() -> list[str]:
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    nproc = resource.getrlimit(resource.RLIMIT_NPROC)[1]
    try:
        pid_max = int(Path("/proc/sys/kernel/pid_max").read_text())
    except (OSError, ValueError):
        pid_max = 32768
    if nproc == resource.RLIM_INFINITY or nproc > pid_max:
        nproc = pid_max
    if nofile == resource.RLIM_INFINITY:
        nofile = 1048576
    return [f"nofile={nofile}:{nofile}", f"nproc={nproc}:{nproc}"]


def configure(state_dir: Path) -> dict[str, str]:
    """Write eopack's podman configuration under ``state_dir``; the variables that select it.

    ``PATH`` in the result is the wrapper's folder, to put in front of the user's PATH (root only).
    The storage root is ``state_dir/storage`` unless ``storage.conf`` already exists there (a site
    may edit it to point at node-local disk; eopack does not overwrite it).
    """
    state_dir = state_dir.resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    storage = state_dir / "storage.conf"
    if not storage.exists():
        storage.write_text(
            "[storage]\n"
            'driver = "overlay"\n'
            f'graphroot = "{state_dir / "storage"}"\n'
            f'runroot = "{state_dir / "run"}"\n'
        )
    containers = state_dir / "containers.conf"
    containers.write_text(
        "[containers]\n"
        f"default_ulimits = {json.dumps(_limits())}\n"
        "\n[engine]\n"
        'pull_policy = "never"\n'
        'runtime = "runc"\n'
        'cgroup_manager = "cgroupfs"\n'
        'events_logger = "file"\n'
        f'events_logfile_path = "{state_dir / "events.log"}"\n'
        f'tmp_dir = "{state_dir / "tmp"}"\n'
    )
    registries = state_dir / "registries.conf"
    registries.write_text(
        "# eopack: images come from the OCI archive cache (`eopack images export`), never a registry.\n"
        "unqualified-search-registries = []\n"
        '\n[[registry]]\nlocation = "docker.io"\nblocked = true\n'
    )
    env = {
        "CONTAINERS_CONF": str(containers),
        "CONTAINERS_STORAGE_CONF": str(storage),
        "CONTAINERS_REGISTRIES_CONF": str(registries),
    }
    real = shutil.which("podman")
    if os.geteuid() == 0 and real is not None:
        bindir = state_dir / "bin"
        bindir.mkdir(exist_ok=True)
        wrapper = bindir / "podman"
        wrapper.write_text(_WRAPPER.format(podman=real))
        wrapper.chmod(0o755)
        env["PATH"] = str(bindir)
    return env


def _run(args: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["podman", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **{k: v for k, v in env.items() if k != "PATH"}},
        check=False,
    )


def image_names(env: dict[str, str]) -> list[str]:
    """Every ``repository:tag@id`` in the storage ``env`` selects (``podman images``; full ids)."""
    proc = _run(["images", "--no-trunc", "--format", "{{.Repository}}:{{.Tag}}@{{.ID}}"], env, 60)
    if proc.returncode != 0:
        raise RuntimeError(f"podman images failed: {proc.stderr.strip()[-300:]}")
    return [line for line in proc.stdout.splitlines() if line.strip()]


def load(archive: Path, env: dict[str, str]) -> str:
    """``podman load -i archive`` into the storage ``env`` selects; returns podman's "Loaded image" line."""
    proc = _run(["load", "-i", str(archive)], env, 900)
    if proc.returncode != 0:
        raise RuntimeError(f"podman load {archive} failed: {proc.stderr.strip()[-300:]}")
    return proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""


def image_events(env: dict[str, str]) -> list[str]:
    """The image events of the storage ``env`` selects (``pull``, ``loadfromarchive``, ...), oldest first."""
    proc = _run(
        ["events", "--stream=false", "--filter", "type=image", "--format", "{{.Status}} {{.Name}}"], env, 60
    )
    if proc.returncode != 0:
        raise RuntimeError(f"podman events failed: {proc.stderr.strip()[-300:]}")
    return [line for line in proc.stdout.splitlines() if line.strip()]
