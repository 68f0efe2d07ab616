"""Checks on the outputs of tests/workflows/openeo-graph/test_cwltool.yml (the real CLI through cwltool).

"Same pixels as the ndvi package" means, for the seed graph and the ndvi package run on the same
sample catalog, area and dates:

* the same layers (one per date), on the same grid (CRS, transform, shape), in float32;
* with the ndvi package told to mask nothing (``masked_classes=255``, a class no pixel has: the seed
  graph does no cloud masking), every pixel equal within 1e-6, NaN where the other is NaN;
* with the ndvi package's default SCL mask, every pixel it reports (the clear ones) equal within
  1e-6, and the seed graph has a value where ndvi masked a cloud (it does not mask).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio

from eopack.services.stac import StacStack
from eopack_eo_common.stac import validate_tree
from eopack_ndvi.core import NdviJob, run
from eopack_sample_data.s2 import TRUTH

SEED = "openeo-graph cwltool seed ndvi graph"


def _rasters(folder: Path, pattern: str) -> dict[str, tuple[np.ndarray, rasterio.Affine, str]]:
    out = {}
    for tif in sorted(folder.glob(pattern)):
        with rasterio.open(tif) as src:
            out[tif.parent.name.split("-")[-1]] = (src.read(1), src.transform, src.crs.to_string())
    return out


def _ndvi(
    catalog: Path, outdir: Path, masked_classes: str | None
) -> dict[str, tuple[np.ndarray, rasterio.Affine, str]]:
    job = NdviJob.from_args(
        aoi="11.4,46.5,11.5,46.6",
        start_date="2024-06-01",
        end_date="2024-06-29",  # the seed's ["2024-06-01", "2024-06-30"): openEO ends are exclusive
        masked_classes=masked_classes,
        input_catalog=catalog.parent,
    )
    run(job, outdir)
    return _rasters(outdir, "ndvi-*/ndvi.tif")


@pytest.mark.workflow(SEED)
def test_seed_graph_gives_the_same_pixels_as_the_ndvi_package(
    workflow_dir: Path, sample_catalog: Path, tmp_path: Path
) -> None:
    out = workflow_dir / "out" / "openeo_results"
    report = validate_tree(out)
    assert report.ok, report.errors
    june = [f"{d:%Y%m%d}" for d in TRUTH.dates if d.month == 6]
    assert report.documents == 1 + len(june)
    graph = _rasters(out, "openeo-*/data.tif")
    assert list(graph) == june

    unmasked = _ndvi(sample_catalog, tmp_path / "unmasked", "255")
    masked = _ndvi(sample_catalog, tmp_path / "masked", None)
    assert list(unmasked) == list(masked) == june
    clouds = 0
    for day in june:
        pixels, transform, crs = graph[day]
        assert pixels.dtype == np.float32
        assert (transform, crs, pixels.shape) == (*unmasked[day][1:], unmasked[day][0].shape)
        np.testing.assert_allclose(pixels, unmasked[day][0], rtol=0, atol=1e-6, equal_nan=True, err_msg=day)
        reference = masked[day][0]
        clear = np.isfinite(reference)
        np.testing.assert_allclose(pixels[clear], reference[clear], rtol=0, atol=1e-6, err_msg=day)
        assert np.isfinite(pixels[~clear]).all()
        clouds += int((~clear).sum())
    assert clouds > 1000  # the comparison covered cloudy pixels too, not just a clear scene


@pytest.mark.workflow(SEED)
def test_seed_graph_field_value(workflow_dir: Path) -> None:
    out = workflow_dir / "out" / "openeo_results"
    clear = next(d for d in TRUTH.field_clear_dates if d.month == 6)
    with rasterio.open(out / f"openeo-{clear:%Y%m%d}" / "data.tif") as src:
        x0, y0, x1, y1 = TRUTH.field.bbox
        window = rasterio.windows.from_bounds(x0 + 100, y0 + 100, x1 - 100, y1 - 100, transform=src.transform)
        field = src.read(1, window=window)
    np.testing.assert_allclose(field, TRUTH.field.ndvi_float32, rtol=0, atol=1e-6)


@pytest.mark.stacapi
def test_stac_api_and_staged_catalog_give_identical_rasters(
    root: Path, stac_api: StacStack, sample_catalog: Path, tmp_path: Path
) -> None:
    """The ``stac_api`` input: the same graph, searching the real STAC API, reads the same pixels."""
    from eopack_openeo_graph.core import GraphJob
    from eopack_openeo_graph.core import run as run_graph

    graph = root / "app-packages" / "openeo-graph" / "examples" / "ndvi.json"
    run_graph(GraphJob.from_args(process_graph=graph, stac_api=stac_api.api_url), tmp_path / "api")
    run_graph(
        GraphJob.from_args(process_graph=graph, input_catalog=sample_catalog.parent), tmp_path / "staged"
    )
    api, staged = (
        _rasters(tmp_path / "api", "openeo-*/data.tif"),
        _rasters(tmp_path / "staged", "openeo-*/data.tif"),
    )
    assert list(api) == list(staged) and len(api) == 3
    for day in api:
        np.testing.assert_array_equal(api[day][0], staged[day][0], err_msg=day)
        assert api[day][1:] == staged[day][1:]
    assert validate_tree(tmp_path / "api").ok


@pytest.mark.stacapi
def test_unknown_collection_on_the_stac_api_lists_the_available_ones(
    stac_api: StacStack, tmp_path: Path
) -> None:
    from eopack_eo_common.errors import ToolInputError
    from eopack_openeo_graph.load import CollectionLoader

    loader = CollectionLoader(stac_api=stac_api.api_url)
    with pytest.raises(ToolInputError, match=r"unknown collection 'S2'; available: SENTINEL2_L2A \(-> sentinel-2-l2a\), sentinel-2-l2a"):  # fmt: skip
        loader.load_collection("S2", {"west": 11.4, "south": 46.5, "east": 11.5, "north": 46.6})
