"""Finding the Slurm cluster a client (``sbatch``, ``sinfo``, Toil) should talk to."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["SYSTEM_CONF", "client_env"]

SYSTEM_CONF = Path("/etc/slurm/slurm.conf")


def client_env(conf: Path) -> dict[str, str]:
    """``SLURM_CONF`` pointing at ``conf`` (eopack's cluster), when nothing else is configured.

    Empty when the user already points at a cluster (``SLURM_CONF``, ``/etc/slurm/slurm.conf``)
    or eopack's cluster was never configured: then their cluster is the one to use.
    """
    if os.environ.get("SLURM_CONF") or not conf.exists():
        return {}
    if SYSTEM_CONF.exists() and SYSTEM_CONF.resolve() != conf.resolve():
        return {}
    return {"SLURM_CONF": str(conf)}
