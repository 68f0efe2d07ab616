"""The generator keeps the promises ``TRUTH`` makes, pixel for pixel, and writes valid STAC and COGs."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pystac
import pytest
import rasterio
from pystac.validation import validate_dict
from pystac.validation.stac_validator import JsonSchemaSTACValidator
from rasterio.warp import transform_bounds
from rio_cogeo.cogeo import cog_validate

from eopack_sample_data.s2 import TRUTH, SampleDataInputError, generate, truth

SMALL = {"tile_size": 120, "resolution": 100.0}
CLOUD = (8, 9, 10)


# ------------------------------------------------------------------------------------------ helpers


def items(catalog: Path) -> Iterator[tuple[Path, dict[str, Any]]]:
    """Every item JSON under the catalog, sorted by id."""
    for path in sorted((catalog.parent / "sentinel-2-l2a").glob("*/*.json")):
        yield path, json.loads(path.read_text())


def by_id(catalog: Path) -> dict[str, tuple[Path, dict[str, Any]]]:
    return {doc["id"]: (path, doc) for path, doc in items(catalog)}


def read(item_path: Path, asset: str) -> np.ndarray:
    doc = json.loads(item_path.read_text())
    with rasterio.open(item_path.parent / doc["assets"][asset]["href"]) as src:
        return src.read(1)


def box_mask(doc: dict[str, Any], box: tuple[float, float, float, float], margin: float = 0.0) -> np.ndarray:
    """Pixels whose centre lies in ``box`` grown by ``margin``, from proj:transform and proj:shape."""
    a, _, c, _, e, f = doc["properties"]["proj:transform"][:6]
    rows, cols = doc["properties"]["proj:shape"]
    x = c + (np.arange(cols) + 0.5) * a
    y = f + (np.arange(rows) + 0.5) * e
    in_x = (x >= box[0] - margin) & (x < box[2] + margin)
    in_y = (y >= box[1] - margin) & (y < box[3] + margin)
    return in_y[:, None] & in_x[None, :]


def tile0_items(catalog: Path) -> dict[str, tuple[Path, dict[str, Any]]]:
    """Tile-0 items keyed by their ISO datetime."""
    return {
        doc["properties"]["datetime"]: (path, doc)
        for path, doc in items(catalog)
        if doc["properties"]["s2:mgrs_tile"] == TRUTH.tiles[0].name
    }


def iso(date: Any) -> str:
    return date.strftime("%Y-%m-%dT%H:%M:%SZ")


# --------------------------------------------------------------------------------------------- grid


def test_tile_zero_covers_the_seed_bbox() -> None:
    minx, miny, maxx, maxy = transform_bounds("EPSG:4326", "EPSG:32632", *TRUTH.seed_bbox, densify_pts=21)
    assert (round(minx), round(miny), round(maxx), round(maxy)) == (683816, 5152402, 691827, 5163751)
    left, bottom, right, top = TRUTH.tiles[0].bounds
    assert (left, bottom, right, top) == (682000, 5152000, 694000, 5164000)
    assert left <= minx and bottom <= miny and maxx <= right and maxy <= top


def test_tiles_overlap_by_1200_m() -> None:
    t0, t1 = TRUTH.tiles
    assert (t0.name, t1.name) == ("32TPS", "32TQS")
    assert t0.bounds[2] - t1.bounds[0] == 1200
    assert t1.transform == (20.0, 0.0, 692800.0, 0.0, -20.0, 5164000.0)


def test_dates_are_three_a_month() -> None:
    days = [d.strftime("%Y-%m-%dT%H:%M:%SZ") for d in TRUTH.dates]
    assert days == [
        "2024-06-05T10:15:59Z", "2024-06-15T10:15:59Z", "2024-06-25T10:15:59Z",
        "2024-07-05T10:15:59Z", "2024-07-15T10:15:59Z", "2024-07-25T10:15:59Z",
    ]  # fmt: skip
    assert iso(TRUTH.cloudy_field_date) == "2024-06-15T10:15:59Z"
    assert TRUTH.cloudy_field_item == "S2B_MSIL2A_20240615T101559_T32TPS"
    assert TRUTH.nodata_item == "S2B_MSIL2A_20240625T101559_T32TQS"
    for month in (6, 7):
        assert sum(d.month == month for d in TRUTH.field_clear_dates) >= 2
        assert sum(d.month == month for d in TRUTH.large_cloud_dates) == 1


def test_field_ndvi_truth() -> None:
    field = TRUTH.field
    assert field.dn == {"B02": 1300, "B03": 1600, "B04": 1400, "B08": 5000}
    assert field.reflectance == {"B02": 0.03, "B03": 0.06, "B04": 0.04, "B08": 0.40}
    assert field.ndvi == pytest.approx(9 / 11, abs=1e-15)
    red = np.float32(1400) * np.float32(0.0001) + np.float32(-0.1)
    nir = np.float32(5000) * np.float32(0.0001) + np.float32(-0.1)
    assert field.ndvi_float32 == float((nir - red) / (nir + red))
    assert field.ndvi_float32 == pytest.approx(9 / 11, abs=1e-6)
    assert TRUTH.lake.ndvi == pytest.approx(-0.5)
    assert TRUTH.dn(0.40) == 5000


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"months": 0}, "months"),
        ({"tiles": 1}, "tiles"),
        ({"tile_size": 32}, "tile-size"),
        ({"resolution": 30.0}, "resolution"),
        ({"tile_size": 64, "resolution": 20.0}, "12000 m"),
        ({"start": "2024-13"}, "start"),
        ({"start": "June"}, "start"),
    ],
)
def test_bad_parameters_are_refused(kwargs: dict[str, Any], words: str) -> None:
    with pytest.raises(SampleDataInputError, match=words):
        truth(**kwargs)


# ------------------------------------------------------------------------------------------ the data


def test_catalog_lists_exactly_the_promised_items(default_catalog: Path) -> None:
    catalog = pystac.Catalog.from_file(str(default_catalog))
    collection = catalog.get_child("sentinel-2-l2a")
    assert isinstance(collection, pystac.Collection)
    ids = sorted(item.id for item in collection.get_items())
    assert ids == sorted(TRUTH.item_ids)
    assert len(ids) == 12
    assert catalog.catalog_type == pystac.CatalogType.SELF_CONTAINED
    assert collection.license == "proprietary" and "ynthetic" in collection.description
    interval = collection.extent.temporal.intervals[0]
    assert (iso(interval[0]), iso(interval[1])) == (iso(TRUTH.dates[0]), iso(TRUTH.dates[-1]))


def test_field_pixels_hold_exact_dns_when_clear(default_catalog: Path) -> None:
    clear = {iso(d) for d in TRUTH.field_clear_dates}
    for when, (path, doc) in tile0_items(default_catalog).items():
        field = box_mask(doc, TRUTH.field.bbox)
        assert field.sum() == 100 * 100  # 2 km × 2 km at 20 m
        scl = read(path, "SCL")
        veg = field & (scl == 4)
        assert veg.sum() == (field.sum() if when in clear else veg.sum())
        assert (scl[~field] != 4).all()  # the field is the only vegetation
        for band, dn in TRUTH.field.dn.items():
            assert (read(path, band)[veg] == dn).all(), (doc["id"], band)
    for when in clear:
        path, doc = tile0_items(default_catalog)[when]
        assert (read(path, "SCL")[box_mask(doc, TRUTH.field.bbox)] == 4).all(), when


def test_lake_is_clear_water_on_every_date(default_catalog: Path) -> None:
    for path, doc in tile0_items(default_catalog).values():
        lake = box_mask(doc, TRUTH.lake.bbox)
        assert (read(path, "SCL")[lake] == 6).all()
        for band, dn in TRUTH.lake.dn.items():
            assert (read(path, band)[lake] == dn).all()


def test_the_trap_scene_hides_the_field_under_a_low_cover(default_catalog: Path) -> None:
    path, doc = by_id(default_catalog)[TRUTH.cloudy_field_item]
    assert doc["properties"]["eo:cloud_cover"] < 10
    scl = read(path, "SCL")
    around = box_mask(doc, TRUTH.field.bbox, margin=TRUTH.cloudy_field_margin)
    assert np.isin(scl[around], (8, 9)).all()
    # nothing much else: the cloud is at most twice the area of the field and its margin
    assert np.isin(scl, CLOUD).sum() < 2 * around.sum()
    cloud = read(path, "B04")[around] * 0.0001 - 0.1
    assert cloud.min() >= 0.5 - 1e-9 and cloud.max() <= 0.7 + 1e-9


def test_cloud_cover_is_computed_from_the_scl(default_catalog: Path) -> None:
    for path, doc in items(default_catalog):
        scl = read(path, "SCL")
        expected = round(100 * np.isin(scl, CLOUD).sum() / np.count_nonzero(scl), 2)
        assert doc["properties"]["eo:cloud_cover"] == expected, doc["id"]


def test_weather_plan(default_catalog: Path) -> None:
    tile0 = tile0_items(default_catalog)
    for date in TRUTH.large_cloud_dates:
        assert tile0[iso(date)][1]["properties"]["eo:cloud_cover"] > 40
    for date in TRUTH.field_shadow_dates:
        path, doc = tile0[iso(date)]
        field = read(path, "SCL")[box_mask(doc, TRUTH.field.bbox)]
        assert 0 < (field == 3).sum() < field.size and not np.isin(field, CLOUD).any()
    shadow_on_land = cirrus_on_land = False
    for path, _ in items(default_catalog):
        scl, b04 = read(path, "SCL"), read(path, "B04")
        shadow_on_land |= bool((scl == 3).any())
        cirrus_on_land |= bool((scl == 10).any())
        cloud = np.isin(scl, (8, 9))
        if cloud.any():
            reflectance = b04[cloud] * 0.0001 - 0.1
            assert reflectance.min() >= 0.5 - 1e-9 and reflectance.max() <= 0.7 + 1e-9
    assert shadow_on_land and cirrus_on_land


def test_shadows_are_darkened_ground(default_catalog: Path) -> None:
    path, doc = tile0_items(default_catalog)[iso(TRUTH.field_shadow_dates[0])]
    shaded = box_mask(doc, TRUTH.field.bbox) & (read(path, "SCL") == 3)
    assert shaded.any()
    for band, dn in TRUTH.field.dn.items():
        expected = round((dn - 1000) * 0.3) + 1000
        assert (read(path, band)[shaded] == expected).all()


def test_swath_edge_is_nodata_in_every_band(default_catalog: Path) -> None:
    for item_id, (path, _) in by_id(default_catalog).items():
        scl = read(path, "SCL")
        if item_id != TRUTH.nodata_item:
            assert (scl != 0).all(), item_id
            continue
        nodata = scl == 0
        assert 0.1 < nodata.mean() < 0.3
        assert nodata[:, -1].all() and not nodata[:, : scl.shape[1] // 2].any()  # the east edge
        for band in TRUTH.bands:
            values = read(path, band)
            assert (values[nodata] == 0).all() and (values[~nodata] > 0).all()


def test_overlapping_tiles_show_identical_pixels(default_catalog: Path) -> None:
    by_date: dict[str, dict[str, Path]] = {}
    for path, doc in items(default_catalog):
        by_date.setdefault(doc["properties"]["datetime"], {})[doc["properties"]["s2:mgrs_tile"]] = path
    overlap = int(1200 / TRUTH.resolution)
    for tiles in by_date.values():
        p0, p1 = tiles["32TPS"], tiles["32TQS"]
        for asset in ("SCL", *TRUTH.bands):
            assert np.array_equal(read(p0, asset)[:, -overlap:], read(p1, asset)[:, :overlap]), (p0, asset)


def test_soil_is_smooth_bare_soil(default_catalog: Path) -> None:
    for path, _ in items(default_catalog):
        scl = read(path, "SCL")
        soil = scl == 5
        for band, mean in TRUTH.soil.reflectance.items():
            reflectance = read(path, band)[soil] * 0.0001 - 0.1
            assert mean - 0.03 < reflectance.min() and reflectance.max() < mean + 0.03


# ------------------------------------------------------------------------------------ STAC and COGs


class _CoreValidator(JsonSchemaSTACValidator):
    """Core schemas ship with pystac; extension schemas live on the web, which tests must not need.

    The extension fields that matter are asserted one by one below instead.
    """

    def validate_extension(self, *args: Any, **kwargs: Any) -> None:
        return None


def test_stac_is_valid_and_self_contained(default_catalog: Path) -> None:
    validator = _CoreValidator()
    documents = sorted(default_catalog.parent.rglob("*.json"))
    checked = 0
    for path in documents:
        doc = json.loads(path.read_text())
        if "stac_version" not in doc:
            continue  # generator.json
        validate_dict(doc, href=str(path), validator=validator)
        checked += 1
        for link in doc["links"]:
            assert "://" not in link["href"] and not link["href"].startswith("/"), (path, link)
            if link["rel"] in ("root", "parent", "child", "item", "collection"):
                assert (path.parent / link["href"]).resolve().exists(), (path, link)
        if doc["type"] != "Feature":
            continue
        props = doc["properties"]
        assert props["proj:code"] == "EPSG:32632" and props["proj:epsg"] == 32632
        assert props["grid:code"] == f"MGRS-{props['s2:mgrs_tile']}"
        assert props["platform"] == "sentinel-2b" and props["instruments"] == ["msi"]
        assert props["proj:shape"] == [600, 600]
        assert doc["collection"] == "sentinel-2-l2a"
        assert {"eo", "raster", "projection"} <= {u.split("/")[3] for u in doc["stac_extensions"]}
        assert set(doc["assets"]) == {"B02", "B03", "B04", "B08", "SCL"}
        for key, asset in doc["assets"].items():
            assert asset["href"] == f"./{key}.tif"
            assert (path.parent / asset["href"]).exists()
            assert asset["type"] == "image/tiff; application=geotiff; profile=cloud-optimized"
            raster = asset["raster:bands"][0]
            assert raster["nodata"] == 0
            if key == "SCL":
                assert asset["roles"] == ["data"] and raster["data_type"] == "uint8"
            else:
                assert asset["roles"] == ["data", "reflectance"]
                assert (raster["data_type"], raster["scale"], raster["offset"]) == ("uint16", 0.0001, -0.1)
                assert raster["spatial_resolution"] == 20.0
                assert asset["eo:bands"][0]["name"] == key
        lon_lat = doc["bbox"]
        assert 11.3 < lon_lat[0] < lon_lat[2] < 11.8 and 46.4 < lon_lat[1] < lon_lat[3] < 46.7
    assert checked == 2 + 12


def test_collection_describes_its_items(default_catalog: Path) -> None:
    doc = json.loads((default_catalog.parent / "sentinel-2-l2a" / "collection.json").read_text())
    assert doc["id"] == "sentinel-2-l2a"
    assert set(doc["item_assets"]) == {"B02", "B03", "B04", "B08", "SCL"}
    assert doc["summaries"]["s2:mgrs_tile"] == ["32TPS", "32TQS"]
    west, south, east, north = doc["extent"]["spatial"]["bbox"][0]
    assert west < TRUTH.seed_bbox[0] and south < TRUTH.seed_bbox[1]
    assert east > TRUTH.seed_bbox[2] and north > TRUTH.seed_bbox[3]


def test_assets_are_valid_cogs_with_overviews(default_catalog: Path) -> None:
    tifs = sorted(default_catalog.parent.rglob("*.tif"))
    assert len(tifs) == 12 * 5
    for tif in tifs:
        valid, errors, _ = cog_validate(str(tif), quiet=True)
        assert valid and not errors, (tif, errors)
        with rasterio.open(tif) as src:
            assert src.overviews(1) and src.nodata == 0 and src.crs.to_epsg() == 32632
            assert src.dtypes[0] == ("uint8" if tif.name == "SCL.tif" else "uint16")
            assert src.compression is not None and src.compression.name.lower() == "deflate"


def test_default_output_is_small(default_catalog: Path) -> None:
    total = sum(p.stat().st_size for p in default_catalog.parent.rglob("*") if p.is_file())
    assert total < 8e6, f"{total / 1e6:.1f} MB"


# ------------------------------------------------------------------------------ determinism, re-runs


def _digest(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_two_runs_write_identical_bytes(small_catalog: Path, tmp_path: Path) -> None:
    again = generate(tmp_path / "again", **SMALL)
    assert _digest(again.parent) == _digest(small_catalog.parent)


def test_small_catalog_keeps_the_promises(small_catalog: Path) -> None:
    promised = truth(**SMALL)
    assert sorted(by_id(small_catalog)) == sorted(promised.item_ids)
    trap_path, trap = by_id(small_catalog)[promised.cloudy_field_item]
    assert trap["properties"]["eo:cloud_cover"] < 10
    assert np.isin(
        read(trap_path, "SCL")[box_mask(trap, promised.field.bbox, promised.cloudy_field_margin)], (8, 9)
    ).all()
    for date in promised.large_cloud_dates:
        item = item_id_of(date, "32TPS")
        assert by_id(small_catalog)[item][1]["properties"]["eo:cloud_cover"] > 40


def item_id_of(date: Any, tile: str) -> str:
    return f"S2B_MSIL2A_{date.strftime('%Y%m%dT%H%M%S')}_T{tile}"


def test_tiles_beyond_the_swath_edge_are_not_produced(tmp_path: Path) -> None:
    catalog = generate(tmp_path / "three", months=1, tiles=3, **SMALL)
    promised = truth(months=1, tiles=3, **SMALL)
    ids = sorted(by_id(catalog))
    assert ids == sorted(promised.item_ids)
    assert len(ids) == 3 * 3 - 1
    assert "S2B_MSIL2A_20240625T101559_T32TRS" not in ids


def test_up_to_date_output_is_not_rewritten(small_catalog: Path) -> None:
    before = {p: p.stat().st_mtime_ns for p in small_catalog.parent.rglob("*")}
    assert generate(small_catalog.parent, **SMALL) == small_catalog
    assert {p: p.stat().st_mtime_ns for p in small_catalog.parent.rglob("*")} == before


def test_changed_parameters_or_force_regenerate(tmp_path: Path) -> None:
    out = tmp_path / "sample"
    generate(out, months=1, **SMALL)
    stamp = (out / "catalog.json").stat().st_ino, (out / "generator.json").read_text()
    generate(out, months=1, force=True, **SMALL)
    assert (out / "catalog.json").stat().st_ino != stamp[0]
    generate(out, months=2, **SMALL)
    assert len(list(items(out / "catalog.json"))) == 12
    assert not [p for p in tmp_path.iterdir() if p.name != "sample"]  # no staging left behind


def test_incomplete_output_is_regenerated(tmp_path: Path) -> None:
    out = tmp_path / "sample"
    catalog = generate(out, months=1, **SMALL)
    victim = next(out.rglob("B04.tif"))
    victim.unlink()
    assert generate(out, months=1, **SMALL) == catalog
    assert victim.exists()


def test_foreign_directory_is_not_replaced(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("keep me")
    with pytest.raises(SampleDataInputError, match="not made by eopack-sample-data"):
        generate(tmp_path, months=1, **SMALL)
    assert (tmp_path / "precious.txt").read_text() == "keep me"
