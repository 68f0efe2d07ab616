"""The project's generated inputs (DESIGN.md §6), made by the ``eopack-sample-data`` tool.

The runner side only calls the tool's console script (runners never import tools) and generates
the staged sample catalog on first use, when a job points at it and it is missing.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .console import notice
from .errors import ServiceUnavailableError
from .package import repo_root

__all__ = ["default_dir", "ensure_for_job", "generate"]


def default_dir() -> Path:
    return repo_root() / "data" / "sample"


def eopf_dir() -> Path:
    """Where ``--geozarr`` writes the EOPF-like Zarr product (the geozarr package's default job)."""
    return repo_root() / "data" / "sample-eopf"


def _command() -> list[str]:
    local = Path(sys.executable).parent / "eopack-sample-data"
    found = str(local) if local.exists() else shutil.which("eopack-sample-data")
    if not found:
        raise ServiceUnavailableError(
            "eopack-sample-data",
            "the generator is not installed",
            "Run `make setup` (it installs the workspace tools).",
        )
    return [found]


def _style(args: Sequence[str]) -> str | None:
    """The ``--style`` among the generator's arguments (``--style pc`` or ``--style=pc``), if any."""
    for index, arg in enumerate(args):
        if arg == "--style" and index + 1 < len(args):
            return args[index + 1]
        if arg.startswith("--style="):
            return arg.split("=", 1)[1]
    return None


def default_out(args: Sequence[str] = ()) -> Path:
    """Where the generator writes for ``args``: data/sample, data/sample-<style>, or data/sample-eopf.

    >>> default_out(["--style", "pc"]).name, default_out(["--style=eopack"]).name, default_out().name
    ('sample-pc', 'sample', 'sample')
    """
    if "--geozarr" in args:
        return eopf_dir()
    style = _style(args)
    # another style must never replace the default catalog the demos and tests use
    return default_dir() if style in (None, "eopack") else default_dir().with_name(f"sample-{style}")


def generate(out: Path | None = None, args: Sequence[str] = ()) -> Path:
    """Run the generator (fast when the data already exists); return the root catalog path."""
    cmd = [*_command(), "--out", str(out or default_out(args)), *args]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=False)
    if proc.returncode != 0:
        raise ServiceUnavailableError(
            "eopack-sample-data", f"exited {proc.returncode}", "See the message above."
        )
    return Path(proc.stdout.strip().splitlines()[-1])


def ensure_for_job(job: Mapping[str, Any]) -> None:
    """Generate the default sample catalog (or EOPF product) when a Directory input needs it and it is missing."""
    target = default_dir().resolve()
    eopf = eopf_dir().resolve()
    for value in job.values():
        if isinstance(value, dict) and value.get("class") == "Directory":
            location = Path(str(value.get("location") or value.get("path", "")).removeprefix("file://"))
            if location.resolve() == target and not (target / "catalog.json").exists():
                notice(f"generating the sample data into {target} (first use)")
                generate(target)
            elif location.resolve().parent == eopf and not location.exists():
                notice(f"generating the sample EOPF product into {eopf} (first use)")
                generate(eopf, ["--geozarr"])
