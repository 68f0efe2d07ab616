"""Reading items the way public archives write them (issue 20): bands, projection, scale/offset."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import numpy as np
import pystac
import pytest

from eopack_eo_common import archive
from eopack_eo_common.errors import ToolInputError
from eopack_eo_common.s2 import dominant_epsg, parse_masked_classes
from eopack_eo_common.search import _unique

COG = "image/tiff; application=geotiff; profile=cloud-optimized"
GRID = {"proj:shape": [600, 600], "proj:transform": [20.0, 0.0, 682000.0, 0.0, -20.0, 5164000.0]}


def _item(
    assets: dict[str, dict[str, Any]],
    properties: dict[str, Any] | None = None,
    extensions: list[str] | None = None,
    when: dt.datetime = dt.datetime(2024, 6, 5, 10, 15, 59, tzinfo=dt.UTC),
) -> pystac.Item:
    """An item built from a plain dict, as pystac reads one from an archive."""
    doc = {
        "type": "Feature",
        "stac_version": "1.0.0",
        "stac_extensions": extensions or [],
        "id": "S2B_TEST",
        "geometry": {"type": "Point", "coordinates": [11.45, 46.55]},
        "bbox": [11.45, 46.55, 11.45, 46.55],
        "properties": {"datetime": pystac.utils.datetime_to_str(when), **(properties or {})},
        "links": [],
        "assets": {
            k: {"href": f"/data/{k}.tif", "type": COG, "roles": ["data"], **v} for k, v in assets.items()
        },
    }
    return pystac.Item.from_dict(doc)


PC: dict[
    str, dict[str, Any]
] = {  # Planetary Computer: B04 keys, eo:bands, no raster:bands, a 3-band visual image
    "B04": {"eo:bands": [{"name": "B04", "common_name": "red"}], **GRID},
    "B08": {"eo:bands": [{"name": "B08", "common_name": "nir"}], **GRID},
    "SCL": {**GRID},
    "visual": {"eo:bands": [{"name": "B04", "common_name": "red"}, {"name": "B03"}, {"name": "B02"}]},
}
EARTH_SEARCH: dict[
    str, dict[str, Any]
] = {  # Earth Search v1: lowercase common-name keys, JPEG 2000 copies beside the COGs
    "red-jp2": {"type": "image/jp2", "eo:bands": [{"name": "B04", "common_name": "red"}]},
    "red": {
        "eo:bands": [{"name": "B04", "common_name": "red"}],
        "raster:bands": [{"scale": 0.0001, "offset": -0.1}],
    },
    "nir": {
        "eo:bands": [{"name": "B08", "common_name": "nir"}],
        "raster:bands": [{"scale": 0.0001, "offset": -0.1}],
    },
    "scl": {"raster:bands": [{"data_type": "uint8", "nodata": 0}]},
}
STAC_11: dict[
    str, dict[str, Any]
] = {  # STAC 1.1 bands with eo:common_name; keys that name neither id nor common name
    "B04_20m": {
        "bands": [{"name": "B04", "eo:common_name": "red", "raster:scale": 0.0001, "raster:offset": -0.1}]
    },
    "B08_20m": {
        "bands": [{"name": "B08", "eo:common_name": "nir", "raster:scale": 0.0001, "raster:offset": -0.1}]
    },
    "SCL_20m": {"bands": [{"name": "SCL"}], "data_type": "uint8", "nodata": 0},
}
KEYS_ONLY: dict[str, dict[str, Any]] = {"b04": {}, "nir": {}, "scl": {}}  # hand-made: no band metadata at all


@pytest.mark.parametrize(
    ("assets", "red", "nir", "scl"),
    [
        (PC, "B04", "B08", "SCL"),
        (EARTH_SEARCH, "red", "nir", "scl"),
        (STAC_11, "B04_20m", "B08_20m", "SCL_20m"),
        (KEYS_ONLY, "b04", "nir", "scl"),
    ],
    ids=["pc", "earth-search", "stac-1.1", "keys-only"],
)
def test_bands_by_meaning(assets: dict[str, Any], red: str, nir: str, scl: str) -> None:
    item = _item(assets)
    for name in ("red", "B04", "b04"):
        assert archive.require_asset(item, name) == red
    assert archive.require_asset(item, "nir") == archive.require_asset(item, "B08") == nir
    assert archive.scl_asset(item) == archive.require_asset(item, "scl") == scl


def test_a_multi_band_image_never_stands_in_for_one_band() -> None:
    item = _item({"visual": PC["visual"]})
    assert archive.find_asset(item, "red") is None


def test_missing_band_names_what_the_item_offers() -> None:
    with pytest.raises(ToolInputError) as err:
        archive.require_asset(_item(EARTH_SEARCH), "swir16")
    assert str(err.value) == (
        "item S2B_TEST has no swir16 (B11) band; it offers: red-jp2 (b04, red), red (b04), nir (b08), scl"
    )


def test_missing_scl_says_how_to_run_unmasked() -> None:
    with pytest.raises(ToolInputError) as err:
        archive.scl_asset(_item({"red": EARTH_SEARCH["red"]}))
    message = str(err.value)
    assert "\n" not in message
    assert "no scene classification (SCL) asset" in message and 'masked_classes: ""' in message
    assert parse_masked_classes("") == () and parse_masked_classes(None) == (0, 1, 3, 8, 9, 10)


@pytest.mark.parametrize(
    ("properties", "asset_fields", "extensions"),
    [
        ({"proj:epsg": 32632}, {}, ["https://stac-extensions.github.io/projection/v1.0.0/schema.json"]),
        (
            {"proj:code": "EPSG:32632"},
            {},
            ["https://stac-extensions.github.io/projection/v2.0.0/schema.json"],
        ),
        ({}, {"proj:code": "EPSG:32632"}, []),  # asset level only, extension not declared
        ({"proj:epsg": 32632}, {}, []),  # undeclared
    ],
    ids=["epsg-v1", "code-v2", "asset-code-undeclared", "epsg-undeclared"],
)
def test_projection_leniently(
    properties: dict[str, Any], asset_fields: dict[str, Any], extensions: list[str]
) -> None:
    item = _item({"red": {**EARTH_SEARCH["red"], **asset_fields, **GRID}}, properties, extensions)
    assert archive.item_epsg(item) == 32632
    assert archive.asset_grid(item, "red") == (GRID["proj:transform"], GRID["proj:shape"])
    canon = archive.canonical_item(item, ["red"])
    assert canon.properties["proj:code"] == "EPSG:32632"
    assert list(canon.assets) == ["B04"]


def test_mixed_crs_dominant_wins() -> None:
    items = [_item({}, {"proj:code": f"EPSG:{c}"}) for c in (32632, 32633, 32632)]
    assert dominant_epsg(items) == 32632


@pytest.mark.parametrize(
    ("assets", "properties", "scale", "offset", "source"),
    [
        (EARTH_SEARCH, {}, 0.0001, -0.1, "raster:bands"),
        (STAC_11, {}, 0.0001, -0.1, "bands"),
        (PC, {"s2:processing_baseline": "05.10"}, 0.0001, -0.1, "processing baseline 05.10"),
        (PC, {"s2:processing_baseline": "04.00"}, 0.0001, -0.1, "processing baseline 04.00"),
        (PC, {"s2:processing_baseline": "03.01"}, 0.0001, 0.0, "processing baseline 03.01"),
        # declared wins over the rule: an archive that removed the offset says so
        (
            {"B04": {"raster:bands": [{"scale": 0.0001, "offset": 0.0}]}},
            {"s2:processing_baseline": "05.10"},
            0.0001,
            0.0,
            "raster:bands",
        ),
    ],
)
def test_scale_and_offset(
    assets: dict[str, Any], properties: dict[str, Any], scale: float, offset: float, source: str
) -> None:
    item = _item(assets, properties)
    enc = archive.encoding(item, archive.require_asset(item, "red"))
    assert (enc.scale, enc.offset, enc.source) == (scale, offset, source)
    # what it means for the NDVI of a field with red 0.04 and nir 0.36
    red_dn, nir_dn = round((0.04 - offset) / scale), round((0.36 - offset) / scale)
    red, nir = (np.float32(dn) * np.float32(enc.scale) + np.float32(enc.offset) for dn in (red_dn, nir_dn))
    assert float((nir - red) / (nir + red)) == pytest.approx(0.8, abs=1e-6)
    if offset:  # ignoring the offset would be visibly wrong
        assert (nir_dn - red_dn) / (nir_dn + red_dn) == pytest.approx(8 / 15)  # 0.53, not 0.8


def test_earth_search_harmonised_items_have_no_offset() -> None:
    """Earth Search v1 flags DN it already shifted; their raster:bands may still say -0.1."""
    item = _item(EARTH_SEARCH, {"s2:processing_baseline": "04.00", "earthsearch:boa_offset_applied": True})
    enc = archive.encoding(item, "red")
    assert (enc.scale, enc.offset, enc.source) == (0.0001, 0.0, "earthsearch:boa_offset_applied")
    flagged_false = _item(EARTH_SEARCH, {"earthsearch:boa_offset_applied": False})
    assert archive.encoding(flagged_false, "red").offset == -0.1


def test_without_baseline_the_acquisition_date_decides() -> None:
    old = _item(PC, when=dt.datetime(2021, 6, 1, tzinfo=dt.UTC))
    new = _item(PC, when=dt.datetime(2022, 6, 1, tzinfo=dt.UTC))
    assert archive.encoding(old, "B04").offset == 0.0
    assert archive.encoding(new, "B04").offset == -0.1


def test_missing_data_type_and_nan_nodata() -> None:
    item = _item(
        {
            "B04": {"raster:bands": [{"nodata": "nan", "scale": 0.0001, "offset": -0.1}]},
            "B08": {"raster:bands": [{"nodata": "nan", "data_type": "float32"}]},
            "SCL": {},
        }
    )
    red, nir, scl = (archive.encoding(item, k) for k in ("B04", "B08", "SCL"))
    # the product's types when left out; NaN cannot mark an integer pixel: Sentinel-2's 0 does
    assert (red.data_type, red.nodata) == ("uint16", 0.0)
    assert nir.data_type == "float32" and math.isnan(nir.nodata)
    assert (scl.data_type, scl.nodata, scl.scale, scl.offset) == ("uint8", 0.0, 1.0, 0.0)


def test_duplicate_ids_across_pages_are_read_once(caplog: pytest.LogCaptureFixture) -> None:
    first, again, other = _item(PC), _item(PC), _item(PC)
    other.id = "S2B_OTHER"
    assert [i.id for i in _unique([first, other, again], "STAC API x")] == ["S2B_TEST", "S2B_OTHER"]
    assert "1 duplicate item id(s) from the STAC API x were read once" in caplog.text
