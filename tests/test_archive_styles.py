"""Every Sentinel-2 package reads every archive style through the real STAC API (issue 20).

One stack serves the three styles side by side: each style's collection is published under its own
id (``sentinel-2-l2a-pc`` …) so pgstac can hold them together; the pixels each package computes
through the API must equal what it computes from the same style's staged catalog.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio

from eopack.services import _proc
from eopack.services.stac import StacStack, down, preflight, up

pytestmark = pytest.mark.stacapi
STYLES = ("pc", "earth-search", "stac-1.1")
ROOT = Path(__file__).resolve().parents[1]


def _combined(folder: Path, sample_style: Callable[..., Path]) -> Path:
    """A catalog whose children are the three styled collections, renamed ``sentinel-2-l2a-<style>``."""
    links = []
    for style in STYLES:
        source = sample_style(style).parent / "sentinel-2-l2a"
        target = folder / style
        shutil.copytree(source, target)
        cid = f"sentinel-2-l2a-{style}"
        for path in target.rglob("*.json"):
            doc = json.loads(path.read_text())
            if doc.get("type") == "Collection":
                doc["id"] = cid
            elif doc.get("type") == "Feature":
                doc["collection"] = cid
            path.write_text(json.dumps(doc))
        links.append({"rel": "child", "href": f"./{style}/collection.json", "type": "application/json"})
    catalog = {
        "type": "Catalog",
        "stac_version": "1.1.0",
        "id": "archive-styles",
        "description": "The sample scene in every archive style",
        "links": [{"rel": "root", "href": "./catalog.json", "type": "application/json"}, *links],
    }
    (folder / "catalog.json").write_text(json.dumps(catalog))
    return folder / "catalog.json"


@pytest.fixture(scope="module")
def styles_api(sample_style: Callable[..., Path]) -> Iterator[StacStack]:
    """A real STAC API serving the three styles (its own stack, like tests/conftest.py's stac_api)."""
    state_dir = Path(tempfile.mkdtemp(prefix="eopack-stac-styles-"))
    data_dir = Path(tempfile.mkdtemp(prefix="eopack-styles-data-"))
    for folder in (state_dir, data_dir):
        folder.chmod(0o755)
    problems = preflight(state_dir)
    if problems:
        shutil.rmtree(state_dir, ignore_errors=True)
        shutil.rmtree(data_dir, ignore_errors=True)
        pytest.skip(
            f"STAC API stack cannot run here: {'; '.join(problems)} (`make setup` as root installs it)"
        )
    _combined(data_dir, sample_style)
    for path in data_dir.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    ports = sorted({_proc.free_port() for _ in range(6)})[:3]
    try:
        yield up(data_dir, state_dir, pg_port=ports[0], api_port=ports[1], assets_port=ports[2])
    finally:
        down(state_dir)
        if not os.environ.get("EOPACK_KEEP_STAC_STATE"):
            shutil.rmtree(state_dir, ignore_errors=True)
        shutil.rmtree(data_dir, ignore_errors=True)


def _tifs(folder: Path) -> dict[str, np.ndarray]:
    out = {}
    for tif in sorted(folder.rglob("*.tif")):
        with rasterio.open(tif) as src:
            out[str(tif.relative_to(folder))] = src.read()
    return out


def _ndvi(out: Path, **source: Any) -> None:
    from eopack_ndvi.core import NdviJob, run

    run(
        NdviJob.from_args(
            aoi="11.4,46.5,11.5,46.6", start_date="2024-06-01", end_date="2024-07-31", **source
        ),
        out,
    )


def _mosaic(out: Path, **source: Any) -> None:
    from eopack_cloudless_mosaic.core import MosaicJob, run

    run(
        MosaicJob.from_args(
            aoi="11.4,46.5,11.65,46.6", start_date="2024-06-01", end_date="2024-07-31", **source
        ),
        out,
    )


def _openeo(out: Path, collection: str, **source: Any) -> None:
    from eopack_openeo_graph.core import GraphJob, run

    graph = out.parent / f"{out.name}-graph.json"
    graph.write_text((ROOT / "app-packages/openeo-graph/examples/median-ndvi.json").read_text())
    run(GraphJob.from_args(process_graph=graph, collection_map=f"SENTINEL2_L2A={collection}", **source), out)


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("package", ["ndvi", "cloudless-mosaic", "openeo-graph"])
def test_api_and_staged_give_identical_pixels(
    package: str,
    style: str,
    styles_api: StacStack,
    sample_style: Callable[..., Path],
    sample_catalog: Path,
    tmp_path: Path,
) -> None:
    collection = f"sentinel-2-l2a-{style}"
    api = {"stac_api": styles_api.api_url}
    staged = {"input_catalog": sample_style(style).parent}
    default = {"input_catalog": sample_catalog.parent}
    if package == "ndvi":
        _ndvi(tmp_path / "api", collection=collection, **api)
        _ndvi(tmp_path / "staged", **staged)
        _ndvi(tmp_path / "default", **default)
    elif package == "cloudless-mosaic":
        _mosaic(tmp_path / "api", collection=collection, **api)
        _mosaic(tmp_path / "staged", **staged)
        _mosaic(tmp_path / "default", **default)
    else:
        _openeo(tmp_path / "api", collection, **api)
        _openeo(tmp_path / "staged", "sentinel-2-l2a", **staged)
        _openeo(tmp_path / "default", "sentinel-2-l2a", **default)
    a, b, c = (_tifs(tmp_path / name) for name in ("api", "staged", "default"))
    assert list(a) == list(b) == list(c) and a
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=f"{package} {style} {name} api vs staged")
        np.testing.assert_array_equal(a[name], c[name], err_msg=f"{package} {style} {name} vs default style")
