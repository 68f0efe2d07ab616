"""Finding the Slurm cluster a client (``sbatch``, ``sinfo``, Toil) should talk to."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["MARK", "SYSTEM_CONF", "client_env", "machine_conf", "written_by_eopack"]

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
