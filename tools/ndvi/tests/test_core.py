"""NDVI against the generated sample data, whose ground truth is known exactly."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
from PIL import Image
from rasterio.windows import from_bounds

from eopack_eo_common.errors import ToolError, ToolInputError
from eopack_eo_common.s2 import DEFAULT_MASKED_CLASSES
from eopack_eo_common.stac import validate_tree
from eopack_ndvi.cli import main
from eopack_ndvi.core import NdviJob, run
from eopack_sample_data.s2 import TRUTH

SEED_AOI = "11.4,46.5,11.5,46.6"


def _job(catalog: Path, **kw: object) -> NdviJob:
    args: dict[str, object] = {
        "aoi": SEED_AOI,
        "start_date": "2024-06-01",
        "end_date": "2024-07-31",
        "input_catalog": catalog.parent,
    }
    args.update(kw)
    return NdviJob.from_args(**args)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def per_date(sample_catalog: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ndvi-none")
    run(_job(sample_catalog, max_cloud_cover=20), out)
    return out


def _read(path: Path) -> tuple[np.ndarray, rasterio.Affine, tuple[float, float, float, float]]:
    with rasterio.open(path) as src:
        return src.read(1), src.transform, tuple(src.bounds)


def _inside(
    bbox: tuple[float, float, float, float], transform: rasterio.Affine, shape: tuple[int, int]
) -> np.ndarray:
    """Mask of output pixels whose centre lies inside a UTM bbox."""
    rows, cols = np.indices(shape)
    xs, ys = rasterio.transform.xy(transform, rows, cols)
    xs, ys = np.asarray(xs).reshape(shape), np.asarray(ys).reshape(shape)
    return (xs > bbox[0]) & (xs < bbox[2]) & (ys > bbox[1]) & (ys < bbox[3])


def test_one_layer_per_date_with_the_scene_filter(per_date: Path) -> None:
    items = sorted(p.name for p in per_date.iterdir() if p.is_dir())
    # max_cloud_cover=20 drops the large-cloud dates, but keeps the low-cover scene with a cloudy field
    expected = sorted(f"ndvi-{d:%Y%m%d}" for d in TRUTH.dates if d not in TRUTH.large_cloud_dates)
    assert items == expected
    assert f"ndvi-{TRUTH.cloudy_field_date:%Y%m%d}" in items


def test_field_ndvi_is_exact_on_clear_dates(per_date: Path) -> None:
    checked = 0
    for when in TRUTH.field_clear_dates:
        path = per_date / f"ndvi-{when:%Y%m%d}" / "ndvi.tif"
        if not path.exists():
            continue
        pixels, transform, _ = _read(path)
        field = pixels[_inside(TRUTH.field.bbox, transform, pixels.shape)]
        assert field.size > 50
        np.testing.assert_allclose(field, TRUTH.field.ndvi_float32, rtol=0, atol=1e-6)
        np.testing.assert_allclose(field, TRUTH.field.ndvi, rtol=0, atol=1e-6)
        lake = pixels[_inside(TRUTH.lake.bbox, transform, pixels.shape)]
        np.testing.assert_allclose(lake, TRUTH.lake.ndvi_float32, rtol=0, atol=1e-6)
        checked += 1
    assert checked >= 2


def test_low_cloud_cover_scene_does_not_leak_its_cloud(per_date: Path, sample_catalog: Path) -> None:
    item = json.loads(next(sample_catalog.parent.rglob(f"{TRUTH.cloudy_field_item}.json")).read_text())
    assert item["properties"]["eo:cloud_cover"] < 20  # the scene filter lets it through...
    pixels, transform, _ = _read(per_date / f"ndvi-{TRUTH.cloudy_field_date:%Y%m%d}" / "ndvi.tif")
    assert np.isnan(pixels[_inside(TRUTH.field.bbox, transform, pixels.shape)]).all()  # ...the mask does not


def test_nan_exactly_where_scl_says_no_clear_view(per_date: Path, sample_catalog: Path) -> None:
    """Every masked SCL pixel is NaN and every clear one is a number (tile 0 covers the AOI)."""
    for folder in sorted(p for p in per_date.iterdir() if p.is_dir()):
        pixels, _, bounds = _read(folder / "ndvi.tif")
        day = folder.name.removeprefix("ndvi-")
        scl_path = next(sample_catalog.parent.rglob(f"S2B_MSIL2A_{day}T*_T{TRUTH.tiles[0].name}/SCL.tif"))
        with rasterio.open(scl_path) as src:
            scl = src.read(
                1, window=from_bounds(*bounds, transform=src.transform), boundless=True, fill_value=0
            )
        assert scl.shape == pixels.shape
        masked = np.isin(scl, DEFAULT_MASKED_CLASSES)
        assert masked.any() or day != f"{TRUTH.cloudy_field_date:%Y%m%d}"
        assert np.isnan(pixels[masked]).all(), folder.name
        assert np.isfinite(pixels[~masked]).all(), folder.name


def test_stac_and_quicklook(per_date: Path) -> None:
    report = validate_tree(per_date)
    assert report.ok, report.errors
    item = json.loads(next(per_date.glob("ndvi-*/ndvi-*.json")).read_text())
    assert item["properties"]["proj:code"] == "EPSG:32632" and item["properties"]["proj:epsg"] == 32632
    band = item["assets"]["ndvi"]["raster:bands"][0]
    assert band["nodata"] == "nan" and band["data_type"] == "float32"
    assert -1 <= band["statistics"]["minimum"] <= band["statistics"]["maximum"] <= 1
    assert item["properties"]["eopack:source_items"]  # staged inputs: ids, no temporary paths
    assert not any(link["rel"] == "derived_from" for link in item["links"])
    folder = per_date / item["id"]
    with rasterio.open(folder / "ndvi.tif") as src:
        rows, cols = src.shape
        assert src.overviews(1) or max(rows, cols) <= 512
    with Image.open(folder / "quicklook.png") as png:
        assert png.format == "PNG" and png.size == (cols, rows + 48)


def test_median_equals_nanmedian_of_the_dates(per_date: Path, sample_catalog: Path, tmp_path: Path) -> None:
    run(_job(sample_catalog, max_cloud_cover=20, aggregation="median"), tmp_path)
    (folder,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    composite, _, _ = _read(folder / "ndvi.tif")
    stack = np.stack([_read(p / "ndvi.tif")[0] for p in sorted(per_date.iterdir()) if p.is_dir()])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN pixels (cloudy on every date)
        expected = np.nanmedian(stack, axis=0)
    np.testing.assert_allclose(composite, expected, rtol=0, atol=1e-6, equal_nan=True)
    item = json.loads((folder / f"{folder.name}.json").read_text())
    assert item["properties"]["datetime"] is None
    assert item["properties"]["start_datetime"].startswith("2024-06-01")


@pytest.mark.parametrize(
    ("kw", "message", "error"),
    [
        ({"aoi": "11.5,46.5,11.4,46.6"}, "west < east", ToolInputError),
        ({"aoi": "11.4,46.5"}, "bbox must be west,south,east,north", ToolInputError),
        (
            {"start_date": "2024-07-31", "end_date": "2024-06-01"},
            "end_date 2024-06-01 is before start_date",
            ToolInputError,
        ),
        (
            {"collection": "landsat-c2-l2"},
            "collection 'landsat-c2-l2' is not in the staged catalog",
            ToolInputError,
        ),
        (
            {"start_date": "2020-01-01", "end_date": "2020-01-31"},
            "no items found in the staged catalog .* for collection=sentinel-2-l2a, bbox=11.4,46.5,11.5,46.6, "
            "datetime=2020-01-01/2020-01-31; widen the search",
            ToolInputError,
        ),
        ({"aggregation": "mean"}, "aggregation must be one of none, median", ToolInputError),
        (
            {"input_catalog": None, "stac_api": "http://127.0.0.1:1/stac"},
            "cannot reach the STAC API at http://127.0.0.1:1/stac",
            ToolError,
        ),
    ],
)
def test_bad_inputs_fail_with_one_clear_message(
    sample_catalog: Path, tmp_path: Path, kw: dict[str, object], message: str, error: type[Exception]
) -> None:
    with pytest.raises(error, match=message):
        run(_job(sample_catalog, **kw), tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_cli_exit_codes(sample_catalog: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "--input-catalog",
            str(sample_catalog.parent),
            "--aoi",
            SEED_AOI,
            "--start-date",
            "2024-06-10",
            "--end-date",
            "2024-06-01",
            "--outdir",
            str(tmp_path),
        ]
    )
    assert code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "ndvi: error: end_date 2024-06-01 is before start_date 2024-06-10; swap them"
    )
    assert list(tmp_path.iterdir()) == []
