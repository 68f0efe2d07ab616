"""The container engine a CWL runner drives: Docker (default), Podman, or Singularity/Apptainer.

HPC sites rarely give users a root Docker daemon. With ``--engine podman`` the package images come
from a local archive cache on the shared filesystem (``eopack images export``: one OCI archive per
image), so compute nodes need no registry and no network:

- the run copy's ``DockerRequirement`` says ``dockerLoad: <archive>`` and ``dockerImageId: <tag>``
  instead of ``dockerPull``; cwltool (and Toil's workers, which run cwltool's job code) look the tag
  up in podman's storage and, when it is not there, ``podman load`` the archive: no pull.
- the engine flag (``--podman``) goes to cwltool or toil-cwl-runner; podman reads eopack's own
  configuration (clients/podman.py) through ``CONTAINERS_*`` variables.

With ``--engine singularity`` the runners pass ``--singularity`` and ``CWL_SINGULARITY_CACHE`` (the
same cache folder): cwltool looks for ``<name>.sif`` there, named as ``sif_name`` says; build it with
``apptainer build <cache>/<sif_name> oci-archive://<archive>`` (docs/runners.md). Apptainer is not
installable on this machine, so only those command lines are tested here.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from ..clients import podman
from ..errors import EopackError, ServiceUnavailableError
from ..package import Package, as_list, class_name, repo_root, service_state_dir

__all__ = [
    "CACHE_ENV",
    "ENGINES",
    "UnknownEngineError",
    "archive_path",
    "check_engine",
    "engine_env",
    "engine_flags",
    "image_cache_dir",
    "sif_name",
    "use_archives",
]

ENGINES = ("docker", "podman", "singularity")
CACHE_ENV = "EOPACK_IMAGE_CACHE"


class UnknownEngineError(EopackError):
    exit_code = 2

    def __init__(self, name: str, runner: str | None = None, runners: tuple[str, ...] = ()) -> None:
        self.name, self.runner = name, runner
        if runner is None:
            super().__init__(f"Unknown container engine {name!r}. Use one of: {', '.join(ENGINES)}.")
        else:
            super().__init__(
                f"Container engine {name!r} is not available with runner {runner!r}: "
                f"use it with {', '.join(runners)}, or drop --engine."
            )


def image_cache_dir() -> Path:
    """Where image archives live: ``$EOPACK_IMAGE_CACHE``, else ``<repo>/runs/images`` (shared storage)."""
    value = os.environ.get(CACHE_ENV)
    return Path(value).resolve() if value else repo_root() / "runs" / "images"


def archive_path(tag: str, cache: Path | None = None) -> Path:
    """The OCI archive of ``tag`` (``eopack/ndvi:1.0.0`` -> ``<cache>/eopack_ndvi_1.0.0.oci.tar``)."""
    return (cache or image_cache_dir()) / (tag.replace("/", "_").replace(":", "_") + ".oci.tar")


def sif_name(tag: str) -> str:
    """The file cwltool looks for in ``CWL_SINGULARITY_CACHE`` for ``dockerPull: tag``.

    cwl-utils' SingularityImagePuller (cwltool >= 3.3): ``_`` becomes ``___``, ``/`` becomes ``_s_``,
    then ``.sif``. A tag without ``:`` gets ``:latest`` first.
    """
    name = tag if ":" in tag.rsplit("/", 1)[-1] else f"{tag}:latest"
    return name.replace("_", "___").replace("/", "_s_") + ".sif"


def engine_flags(engine: str) -> list[str]:
    """The cwltool / toil-cwl-runner option selecting ``engine`` (none for Docker, their default)."""
    if engine not in ENGINES:
        raise UnknownEngineError(engine)
    return {"docker": [], "podman": ["--podman"], "singularity": ["--singularity"]}[engine]


def podman_state_dir() -> Path:
    return service_state_dir("podman", podman.STATE_DIR_ENV)


def engine_env(engine: str) -> dict[str, str]:
    """Variables the engine process needs (``PATH``: a folder to put first)."""
    if engine == "podman":
        return podman.configure(podman_state_dir())
    if engine == "singularity":
        return {"CWL_SINGULARITY_CACHE": str(image_cache_dir())}
    return {}


def check_engine(engine: str, package: Package, binary_needed: bool = True) -> None:
    """Fail with one line when ``engine`` cannot run ``package`` here: the engine or an archive missing."""
    if engine not in ENGINES:
        raise UnknownEngineError(engine)
    if engine == "docker":
        return
    if binary_needed:
        if engine == "podman":
            ok, why = podman.available()
            if not ok:
                raise ServiceUnavailableError("Container engine 'podman'", why, "Or use --engine docker.")
        elif not any(shutil.which(b) for b in ("apptainer", "singularity")):
            raise ServiceUnavailableError(
                "Container engine 'singularity'",
                "neither apptainer nor singularity is on PATH",
                "Install Apptainer, or use --engine podman or docker.",
            )
    cache = image_cache_dir()
    for tag in package.images():
        wanted = archive_path(tag, cache) if engine == "podman" else cache / sif_name(tag)
        if not wanted.exists():
            how = (
                f"`eopack images export {package.name}`"
                if engine == "podman"
                else f"`apptainer build {wanted} oci-archive://{archive_path(tag, cache)}`"
            )
            raise ServiceUnavailableError(
                f"Image {tag} for --engine {engine}", f"{wanted} does not exist", f"Create it with {how}."
            )


def use_archives(doc: dict[str, Any], cache: Path | None = None) -> None:
    """Make every DockerRequirement of the run copy load its image from the archive cache."""
    for tool in doc.get("$graph", []):
        for key in ("requirements", "hints"):
            if key not in tool:
                continue
            reqs = as_list(tool[key])  # copies: written back below
            for req in reqs:
                if class_name(req) == "DockerRequirement" and "dockerPull" in req:
                    tag = req.pop("dockerPull")
                    req["dockerLoad"] = str(archive_path(tag, cache))
                    req["dockerImageId"] = tag
            tool[key] = reqs
