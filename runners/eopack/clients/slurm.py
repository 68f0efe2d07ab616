"""Finding the Slurm cluster a client (``sbatch``, ``sinfo``, Toil) should talk to."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from pathlib import Path

__all__ = [
    "MARK",
    "SYSTEM_CONF",
    "cancel",
    "client_env",
    "jobs_in",
    "machine_conf",
    "unreachable",
    "written_by_eopack",
]

SYSTEM_CONF = Path("/etc/slurm/slurm.conf")
# The first line of every slurm.conf eopack writes (services/slurm.py's CONFIG starts with it).
MARK = "# Written by eopack"


def written_by_eopack(conf: Path) -> bool:
    """True when ``conf`` is a config eopack wrote (for some checkout's cluster, running or not)."""
    try:
        with conf.open(encoding="utf-8", errors="replace") as f:
            return f.readline().startswith(MARK)
    except OSError:
        return False


def machine_conf() -> Path | None:
    """The machine's own cluster config, or None.

    ``/etc/slurm/slurm.conf`` counts only when a site put it there: a link eopack made to some
    checkout's cluster (``eopack slurm up`` as root) is no site config, and one left by a cluster
    that was killed instead of stopped points at a controller and a munge socket long gone.
    """
    if not SYSTEM_CONF.exists() or written_by_eopack(SYSTEM_CONF):
        return None
    return SYSTEM_CONF


def client_env(conf: Path) -> dict[str, str]:
    """``SLURM_CONF`` pointing at ``conf`` (eopack's cluster), when nothing else is configured.

    Empty when the user already points at a cluster (``SLURM_CONF``, a site's
    ``/etc/slurm/slurm.conf``) or eopack's cluster was never configured: then theirs is the one to
    use. A system config eopack itself linked never outranks this checkout's own cluster.
    """
    if os.environ.get("SLURM_CONF") or not conf.exists():
        return {}
    if machine_conf() is not None:
        return {}
    return {"SLURM_CONF": str(conf)}


def unreachable(env: Mapping[str, str], timeout: float = 15.0) -> str | None:
    """Why ``sinfo`` finds no partition to run on with ``env`` (its own words), or None when one answers."""
    try:
        proc = subprocess.run(
            ["sinfo", "-h", "-o", "%P"],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=dict(env),
            check=False,
        )
    except FileNotFoundError:
        return "sinfo is not on PATH (no Slurm client here)"
    except subprocess.TimeoutExpired:
        return f"sinfo did not answer within {timeout:.0f} s"
    if proc.returncode != 0 or not proc.stdout.strip():
        return (proc.stderr or proc.stdout).strip() or "no partition"
    return None


def jobs_in(folder: Path, name: str, env: Mapping[str, str]) -> list[str]:
    """Ids of this user's pending or running jobs called ``name`` whose working directory is inside
    ``folder`` (what the job was started with ``--chdir``); empty when Slurm does not answer."""
    root = str(folder.resolve())
    try:
        proc = subprocess.run(
            ["squeue", "-h", "--me", "-n", name, "-t", "PENDING,RUNNING,CONFIGURING,COMPLETING", "-o", "%i|%Z"],
            capture_output=True, text=True, timeout=30, env=dict(env), check=False,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return []
    rows = (line.split("|", 1) for line in proc.stdout.splitlines() if "|" in line)
    return [job for job, workdir in rows if workdir == root or workdir.startswith(root + "/")]


def cancel(job_ids: list[str], env: Mapping[str, str]) -> None:
    """``scancel`` the jobs (their steps are signalled and the allocation released)."""
    if job_ids:
        subprocess.run(["scancel", *job_ids], capture_output=True, timeout=30, env=dict(env), check=False)
