"""The job each package runs in the cross-runner tests: its default job, with convert-url's image on
the session's loopback image server (these machines have no internet)."""

from __future__ import annotations

from pathlib import Path

from eopack.job import load_job
from eopack.package import Package
from eopack.sample_data import ensure_for_job


def job_for(package: Package, folder: Path, image_server: str) -> Path:
    """The package's default job (sample data made first); convert-url's fetches from ``image_server``."""
    if package.name == "convert-url":
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "convert-url.yml"
        path.write_text(f"fn: resize\nurl: {image_server}/sample-rgb.png\nsize: 50%\n")
        return path
    ensure_for_job(load_job(package.default_job))
    return package.default_job
