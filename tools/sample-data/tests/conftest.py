"""Catalogs shared by the tests: one at the default size, one small and coarse (fast)."""

from __future__ import annotations

from pathlib import Path

import pytest

from eopack_sample_data.s2 import generate

SMALL = {"tile_size": 120, "resolution": 100.0}  # 12 km tiles at 100 m: the smallest allowed extent


@pytest.fixture(scope="session")
def default_catalog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The catalog ``eopack-sample-data`` writes with no arguments (what demos use)."""
    return generate(tmp_path_factory.mktemp("default") / "sample")


@pytest.fixture(scope="session")
def small_catalog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate(tmp_path_factory.mktemp("small") / "sample", **SMALL)
