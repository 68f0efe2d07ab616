"""Fixtures shared by every test in the repository (tools and runners alike)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).parent
# Helpers, not tests: some run inside isolated venvs with their own dependencies (zoo_wes_driver).
collect_ignore_glob = ["tests/support/*"]
sys.path.insert(0, str(ROOT / "tests" / "support"))

from imageserver import ImageServer, make_images  # noqa: E402


@pytest.fixture(scope="session")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("images")
    make_images(folder)
    return folder


@pytest.fixture(scope="session")
def image_server(images: Path) -> Iterator[str]:
    """Base URL of a loopback server for the generated images (see tests/support/imageserver.py)."""
    with ImageServer(images) as url:
        yield url


@pytest.fixture(scope="session")
def sample_catalog() -> Path:
    """The default sample Sentinel-2 catalog in <repo>/data/sample (generated once, then reused)."""
    from eopack_sample_data.s2 import generate

    return generate(ROOT / "data" / "sample")


@pytest.fixture(scope="session")
def sample_style() -> Callable[..., Path]:
    """``make(style, baseline="05.10")``: the sample scene spelt like a public archive.

    Styles ``eopack`` (the default catalog), ``pc``, ``earth-search``, ``stac-1.1``; a baseline
    before 04.00 stores the same reflectances without the +1000 DN offset. Generated once into
    <repo>/data/sample-<style>[-<baseline>] (what ``eopack sample-data --style`` writes), then reused.
    """
    from eopack_sample_data.s2 import generate

    def make(style: str, baseline: str = "05.10") -> Path:
        name = "sample" if style == "eopack" else f"sample-{style}"
        if baseline != "05.10":
            name += f"-{baseline}"
        return generate(ROOT / "data" / name, style=style, processing_baseline=baseline)

    return make


@pytest.fixture
def allow_private(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EOPACK_ALLOW_PRIVATE_URLS", "1")


@pytest.fixture
def repo_root() -> Path:
    return ROOT
