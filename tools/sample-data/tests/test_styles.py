"""The same scene in each public archive's spelling (issue 20), and at an older processing baseline."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pytest
import rasterio

from eopack_eo_common.stac import validate_tree
from eopack_sample_data.cli import main
from eopack_sample_data.s2 import TRUTH, generate
from eopack_sample_data.styles import asset_key

# DESIGN.md §7: the offline extension schemas live beside the repository, in ../shared/stac-schemas.
_ROOT = Path(__file__).resolve().parents[3]
SCHEMAS = next(
    (p for p in (_ROOT.parent / "shared" / "stac-schemas", Path("/work/shared/stac-schemas")) if p.is_dir()),
    _ROOT.parent / "shared" / "stac-schemas",
)


def _items(catalog: Path) -> dict[str, dict[str, Any]]:
    return {
        p.stem: json.loads(p.read_text())
        for p in sorted((catalog.parent / TRUTH.collection_id).glob("*/*.json"))
    }


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _every_key(doc: Any, key: str) -> list[Any]:
    if isinstance(doc, dict):
        return [v for k, v in doc.items() if k == key] + [x for v in doc.values() for x in _every_key(v, key)]
    if isinstance(doc, list):
        return [x for v in doc for x in _every_key(v, key)]
    return []


@pytest.mark.parametrize("style", ["pc", "earth-search", "stac-1.1"])
def test_same_items_and_pixels_in_every_style(
    style: str, sample_style: Callable[..., Path], sample_catalog: Path
) -> None:
    ours, default = _items(sample_style(style)), _items(sample_catalog)
    assert sorted(ours) == sorted(default) == sorted(TRUTH.item_ids)
    for item_id, doc in ours.items():
        folder = sample_style(style).parent / TRUTH.collection_id / item_id
        for band in (*TRUTH.bands, "SCL"):
            href = doc["assets"][asset_key(style, band, TRUTH.resolution)]["href"]
            original = default[item_id]["assets"][band]["href"]
            assert _digest(folder / href) == _digest(
                sample_catalog.parent / TRUTH.collection_id / item_id / original
            )
        assert doc["geometry"] == default[item_id]["geometry"]
        assert doc["properties"]["datetime"] == default[item_id]["properties"]["datetime"]


def test_each_style_spells_what_its_archive_spells(sample_style: Callable[..., Path]) -> None:
    pc = next(iter(_items(sample_style("pc")).values()))
    assert pc["stac_version"] == "1.0.0" and pc["properties"]["proj:epsg"] == TRUTH.epsg
    assert list(pc["assets"]) == ["B02", "B03", "B04", "B08", "SCL"]
    assert not _every_key(pc, "raster:bands") and not _every_key(
        pc, "proj:code"
    )  # no scale: the rule applies
    assert pc["assets"]["B04"]["proj:transform"] == list(TRUTH.tiles[0].transform)

    es = next(iter(_items(sample_style("earth-search")).values()))
    assert list(es["assets"]) == ["blue", "green", "red", "nir", "scl"]
    assert es["assets"]["red"]["raster:bands"][0]["offset"] == -0.1
    assert es["properties"]["proj:epsg"] == TRUTH.epsg and not _every_key(es, "proj:code")

    s11 = next(iter(_items(sample_style("stac-1.1")).values()))
    assert s11["stac_version"] == "1.1.0" and list(s11["assets"]) == [
        "B02_20m",
        "B03_20m",
        "B04_20m",
        "B08_20m",
        "SCL_20m",
    ]
    assert s11["assets"]["B04_20m"]["bands"] == [
        {"name": "B04", "eo:common_name": "red", "eo:center_wavelength": 0.665, "raster:scale": 0.0001, "raster:offset": -0.1}
    ]  # fmt: skip
    assert not _every_key(s11, "proj:epsg") and not _every_key(s11, "eo:bands")
    assert s11["properties"]["proj:code"] == f"EPSG:{TRUTH.epsg}"


def test_stac_11_style_is_valid(sample_style: Callable[..., Path]) -> None:
    catalog = sample_style("stac-1.1")
    report = validate_tree(catalog.parent)
    assert report.ok, report.errors
    schema = SCHEMAS / "projection" / "v2.0.0" / "schema.json"
    if not schema.exists():
        pytest.skip(f"{schema} is absent: the projection extension stays unchecked offline")
    for doc in _items(catalog).values():
        jsonschema.validate(doc, json.loads(schema.read_text()))


@pytest.mark.parametrize("style", ["eopack", "earth-search"])
def test_old_processing_baseline_stores_dn_without_the_offset(
    style: str, sample_style: Callable[..., Path], sample_catalog: Path
) -> None:
    old, new = _items(sample_style(style, "03.01")), _items(sample_catalog)
    key = asset_key(style, "B04", TRUTH.resolution)
    for item_id, doc in old.items():
        assert doc["properties"]["s2:processing_baseline"] == "03.01"
        assert doc["assets"][key]["raster:bands"][0]["offset"] == 0.0
        with rasterio.open(
            sample_style(style, "03.01").parent / TRUTH.collection_id / item_id / "B04.tif"
        ) as src:
            dn_old = src.read(1).astype("int32")
        with rasterio.open(sample_catalog.parent / TRUTH.collection_id / item_id / "B04.tif") as src:
            dn_new = src.read(1).astype("int32")
        np.testing.assert_array_equal(dn_old == 0, dn_new == 0)
        np.testing.assert_array_equal(dn_old[dn_new > 0], dn_new[dn_new > 0] - 1000)
        assert new[item_id]["properties"]["s2:processing_baseline"] == "05.10"


def test_cli_style_default_folder_and_bad_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["--style", "pc", "--tile-size", "120", "--resolution", "100", "--months", "1"]) == 0
    assert capsys.readouterr().out.strip() == str(
        (tmp_path / "data" / "sample-pc" / "catalog.json").absolute()
    )
    assert main(["--style", "usgs"]) == 2
    assert "argument --style: invalid choice: 'usgs'" in capsys.readouterr().err
    assert main(["--processing-baseline", "4"]) == 2
    assert capsys.readouterr().err.strip() == (
        "eopack-sample-data: error: processing baseline must look like 05.10, got '4'"
    )


def test_default_record_is_unchanged(sample_catalog: Path, tmp_path: Path) -> None:
    """The default style and baseline keep the generator record they had, so existing data is reused."""
    record = json.loads((sample_catalog.parent / "generator.json").read_text())
    assert set(record["parameters"]) == {"months", "tiles", "tile_size", "resolution", "start"}
    assert generate(tmp_path / "s", tile_size=120, resolution=100.0, style="eopack").exists()
