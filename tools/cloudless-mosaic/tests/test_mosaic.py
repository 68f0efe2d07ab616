"""cloudless-mosaic against the generated sample data and an independent numpy reference."""

from __future__ import annotations

import datetime as dt
import json
import warnings
from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio
from rio_cogeo.cogeo import cog_validate

from eopack_cloudless_mosaic.blocks import masked_median
from eopack_cloudless_mosaic.cli import main
from eopack_cloudless_mosaic.core import MosaicJob, group_by_month, run
from eopack_eo_common.errors import ToolError, ToolInputError
from eopack_eo_common.s2 import DEFAULT_MASKED_CLASSES, clear_mask, load_reflectance
from eopack_eo_common.search import select_items
from eopack_eo_common.stac import validate_tree
from eopack_sample_data.s2 import TRUTH

BOTH_TILES = "11.4,46.5,11.65,46.6"


def _job(catalog: Path, **kw: object) -> MosaicJob:
    args: dict[str, object] = {
        "aoi": BOTH_TILES,
        "start_date": "2024-06-01",
        "end_date": "2024-07-31",
        "input_catalog": catalog.parent,
    }
    args.update(kw)
    return MosaicJob.from_args(**args)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def mosaic(sample_catalog: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("mosaic")
    # a small block size so several blocks, and block edges, are exercised
    run(_job(sample_catalog, block_size=256), out)
    return out


def _reflectance(src: rasterio.DatasetReader, window: rasterio.windows.Window | None = None) -> np.ndarray:
    """Apply the scale/offset stored in the COG (as any GDAL user would); nodata becomes NaN."""
    raw = src.read(1, window=window)
    value = raw * np.float32(src.scales[0]) + np.float32(src.offsets[0])
    return np.where(raw == src.nodata, np.nan, value).astype("float32")


def _read(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return _reflectance(src)


def test_median_equals_nanmedian_of_masked_inputs_everywhere(mosaic: Path, sample_catalog: Path) -> None:
    """An independent path (odc-stac loading + numpy.nanmedian) gives the same value for every pixel."""
    job = _job(sample_catalog)
    items = select_items(job.search, input_catalog=sample_catalog.parent)
    for key in ("2024-06", "2024-07"):
        month = [i for i in items if i.datetime and f"{i.datetime:%Y-%m}" == key]
        cube, scl = load_reflectance(month, ["red", "green", "blue", "nir"], job.search.bbox, 32632, 20.0)
        assert scl is not None
        masked = cube.where(clear_mask(scl, DEFAULT_MASKED_CLASSES)).values
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            expected = np.nanmedian(masked, axis=0)
        for b, name in enumerate(("red", "green", "blue", "nir")):
            ours = _read(mosaic / f"monthly-mosaic-{key}" / f"{name}.tif")
            assert ours.shape == expected[b].shape
            np.testing.assert_allclose(
                ours, expected[b], rtol=0, atol=2e-6, equal_nan=True, err_msg=f"{key} {name}"
            )


def test_cloud_in_a_low_cloud_cover_scene_never_contributes(sample_catalog: Path, tmp_path: Path) -> None:
    """Two dates: the low-cover scene whose cloud sits on the field, and a clear one.

    A scene filter alone would take the median of (field, cloud) = their mean; per-pixel masking
    leaves the clear field value, seen once.
    """
    day = TRUTH.cloudy_field_date
    job = _job(
        sample_catalog,
        start_date=f"{day:%Y-%m-%d}",
        end_date=f"{day + dt.timedelta(days=10):%Y-%m-%d}",
        max_cloud_cover=20,
        aoi="11.398,46.530,11.428,46.552",
    )
    items = select_items(job.search, input_catalog=sample_catalog.parent)
    assert TRUTH.cloudy_field_item in [i.id for i in items]  # the scene filter lets it through
    run(job, tmp_path)
    folder = tmp_path / f"monthly-mosaic-{day:%Y-%m}"
    with rasterio.open(folder / "red.tif") as src:
        x0, y0, x1, y1 = TRUTH.field.bbox
        window = rasterio.windows.from_bounds(x0 + 60, y0 + 60, x1 - 60, y1 - 60, transform=src.transform)
        red = _reflectance(src, window)
    with rasterio.open(folder / "clear-count.tif") as src:
        count = src.read(1, window=window)
    assert red.size > 0 and (count == 1).all()
    np.testing.assert_allclose(red, TRUTH.field.reflectance["B04"], rtol=0, atol=1e-6)


def test_outputs_are_valid_cogs_and_stac(mosaic: Path) -> None:
    report = validate_tree(mosaic)
    assert report.ok, report.errors
    months = sorted(p.name for p in mosaic.iterdir() if p.is_dir())
    assert months == ["monthly-mosaic-2024-06", "monthly-mosaic-2024-07"]
    for month in months:
        for tif in (mosaic / month).glob("*.tif"):
            valid, errors, _ = cog_validate(str(tif))
            assert valid, (tif, errors)
            with rasterio.open(tif) as src:
                assert src.overviews(1), tif
                if tif.name != "clear-count.tif":
                    assert src.nodata == 0 and src.scales[0] == 0.00005 and src.offsets[0] == -0.1
        item = json.loads((mosaic / month / f"{month}.json").read_text())
        props = item["properties"]
        assert props["start_datetime"] == f"{month[-7:]}-01T00:00:00Z"
        assert props["end_datetime"].startswith(f"{month[-7:]}-3")
        assert props["proj:epsg"] == 32632 and props["eopack:clear_observations"]["maximum"] >= 1
        assert {"red", "green", "blue", "nir", "clear_count", "quicklook"} <= set(item["assets"])
    collection = json.loads((mosaic / "collection.json").read_text())
    assert collection["summaries"]["eopack:months"] == ["2024-06", "2024-07"]


def test_month_without_clear_pixel_is_reported(
    sample_catalog: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    day = TRUTH.cloudy_field_date
    job = _job(
        sample_catalog,
        start_date=f"{day:%Y-%m-%d}",
        end_date=f"{day:%Y-%m-%d}",
        aoi="11.405,46.536,11.42,46.546",
    )  # inside the field, under the cloud
    run(job, tmp_path)
    collection = json.loads((tmp_path / "collection.json").read_text())
    assert collection["summaries"]["eopack:months_without_clear_pixel"] == [f"{day:%Y-%m}"]
    assert not list(tmp_path.glob("monthly-mosaic-*"))
    assert f"{day:%Y-%m}: no clear pixel" in caplog.text


def test_end_date_is_inclusive_in_utc(sample_catalog: Path) -> None:
    last = TRUTH.dates[-1]  # acquired at 10:15:59Z on its day
    job = _job(sample_catalog, start_date=f"{last:%Y-%m-%d}", end_date=f"{last:%Y-%m-%d}")
    items = select_items(job.search, input_catalog=sample_catalog.parent)
    assert {i.datetime for i in items} == {last}


def test_months_are_calendar_months_of_one_year() -> None:
    """The reference groups by time.month and merges January 2020 with January 2021; we do not."""

    def item(when: dt.datetime, tile: str) -> pystac.Item:
        return pystac.Item(f"{when:%Y%m%d}-{tile}", None, None, when, {})

    items = [
        item(dt.datetime(2020, 1, 31, 23, 59, tzinfo=dt.UTC), "A"),
        item(dt.datetime(2021, 1, 5, tzinfo=dt.UTC), "A"),
        item(dt.datetime(2021, 1, 5, tzinfo=dt.UTC), "B"),
        item(dt.datetime(2020, 2, 1, 0, 0, tzinfo=dt.UTC), "A"),
    ]
    months = group_by_month(items)
    assert [m.key for m in months] == ["2020-01", "2020-02", "2021-01"]
    assert [len(d) for d in months[2].days.values()] == [2]  # two tiles of one day are one date


def test_masked_median_matches_nanmedian() -> None:
    rng = np.random.default_rng(7)
    stack = rng.integers(1, 10000, size=(7, 2, 33, 17), dtype="uint16")
    valid = rng.random((7, 33, 17)) > 0.4
    twice, count = masked_median(stack, valid)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        expected = np.nanmedian(np.where(valid[:, None], stack.astype("float64"), np.nan), axis=0)
    np.testing.assert_array_equal(count, valid.sum(axis=0))
    median = np.where(twice > 0, twice / 2, np.nan)
    np.testing.assert_array_equal(median, expected)


@pytest.mark.parametrize(
    ("kw", "message", "error"),
    [
        (
            {"start_date": "2024-07-31", "end_date": "2024-06-01"},
            "end_date 2024-06-01 is before start_date",
            ToolInputError,
        ),
        (
            {"bands": ["red", "infrared"]},
            "unknown band 'infrared'; use a Sentinel-2 band id or common name",
            ToolInputError,
        ),
        ({"aoi": "11.4,46.5,191.0,46.6"}, r"longitude -180..180", ToolInputError),
        (
            {"start_date": "2019-01-01", "end_date": "2019-02-28"},
            "no items found in the staged catalog .* datetime=2019-01-01/2019-02-28; widen the search",
            ToolInputError,
        ),
        (
            {"input_catalog": None, "stac_api": "http://127.0.0.1:1"},
            "cannot reach the STAC API at http://127.0.0.1:1",
            ToolError,
        ),
    ],
)
def test_bad_inputs(
    sample_catalog: Path, tmp_path: Path, kw: dict[str, object], message: str, error: type[Exception]
) -> None:
    with pytest.raises(error, match=message):
        run(_job(sample_catalog, **kw), tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_cli_reference_style_repeated_bands(sample_catalog: Path, tmp_path: Path) -> None:
    code = main(
        [
            "--input-catalog",
            str(sample_catalog.parent),
            "--aoi",
            "11.41,46.54,11.44,46.56",
            "--start-date",
            "2024-06-01",
            "--end-date",
            "2024-06-30",
            "--bands",
            "nir",
            "--bands",
            "red",
            "--outdir",
            str(tmp_path),
        ]
    )
    assert code == 0
    assert sorted(p.name for p in (tmp_path / "monthly-mosaic-2024-06").glob("*.tif")) == [
        "clear-count.tif",
        "nir.tif",
        "red.tif",
    ]
