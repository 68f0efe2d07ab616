"""openeo-graph on the catalogs users actually have (issue 20): every archive style gives the same pixels."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio

from eopack_openeo_graph.core import GraphJob, run
from eopack_openeo_graph.load import CollectionLoader
from eopack_sample_data.s2 import TRUTH

EXAMPLES = Path(__file__).resolve().parents[3] / "app-packages" / "openeo-graph" / "examples"
STYLES = ("pc", "earth-search", "stac-1.1")
GRAPHS = ("ndvi", "median-ndvi")


def _run(tmp_path: Path, graph: str, catalog: Path) -> dict[str, np.ndarray]:
    doc = tmp_path / f"{graph}.json"
    doc.write_text((EXAMPLES / f"{graph}.json").read_text())
    out = tmp_path / f"out-{graph}"
    run(GraphJob.from_args(process_graph=doc, input_catalog=catalog.parent), out)
    layers = {}
    for path in sorted(out.glob("*/*.tif")):
        with rasterio.open(path) as src:
            layers[f"{path.parent.name}/{path.name}"] = src.read()
    return layers


@pytest.fixture(scope="module")
def reference(
    sample_catalog: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, dict[str, np.ndarray]]:
    tmp = tmp_path_factory.mktemp("openeo-reference")
    return {graph: _run(tmp, graph, sample_catalog) for graph in GRAPHS}


@pytest.mark.parametrize("style", STYLES)
def test_every_archive_style_gives_identical_pixels(
    style: str, sample_style: Callable[..., Path], reference: dict[str, Any], tmp_path: Path
) -> None:
    catalog = sample_style(style)
    for graph in GRAPHS:
        ours = _run(tmp_path, graph, catalog)
        assert list(ours) == list(reference[graph]) and ours
        for name, pixels in ours.items():
            np.testing.assert_array_equal(pixels, reference[graph][name], err_msg=f"{style} {graph} {name}")


@pytest.mark.parametrize("style", STYLES)
def test_bands_by_common_name_id_and_lowercase_scl(style: str, sample_style: Callable[..., Path]) -> None:
    loader = CollectionLoader(input_catalog=sample_style(style).parent)
    extent = {"west": 11.4, "south": 46.5, "east": 11.5, "north": 46.6}
    cube = loader.load_collection(
        "SENTINEL2_L2A", extent, ["2024-06-01", "2024-06-10"], ["red", "B08", "scl"]
    )
    assert list(cube["bands"].values) == ["red", "B08", "scl"]
    x0, y0, x1, y1 = TRUTH.field.bbox
    field = cube.sel(x=slice(x0 + 100, x1 - 100), y=slice(y1 - 100, y0 + 100)).isel(t=0).compute()
    np.testing.assert_allclose(field.sel(bands="red"), TRUTH.field.reflectance["B04"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(field.sel(bands="B08"), TRUTH.field.reflectance["B08"], rtol=0, atol=1e-6)
    assert (field.sel(bands="scl") == TRUTH.field.scl).all()
    # no bands named: every reflectance band the items offer, by meaning, then SCL
    default = loader.load_collection("SENTINEL2_L2A", extent, ["2024-06-01", "2024-06-10"])
    assert list(default["bands"].values) == ["B02", "B03", "B04", "B08", "SCL"]
    assert loader.loaded[0].resolution == TRUTH.resolution
