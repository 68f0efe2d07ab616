"""STAC writing and offline validation."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pystac
import pytest
from pystac.extensions.projection import ProjectionExtension

from eopack_eo_common.errors import ToolError
from eopack_eo_common.output import staged_output
from eopack_eo_common.stac import save_catalog, validate_tree


def _catalog(folder: Path) -> Path:
    (folder / "a").mkdir(parents=True)
    (folder / "a" / "a.tif").write_bytes(b"II*\x00")
    item = pystac.Item(
        "a",
        {"type": "Point", "coordinates": [11.4, 46.5]},
        [11.4, 46.5, 11.4, 46.5],
        dt.datetime(2024, 5, 1, tzinfo=dt.UTC),
        {},
    )
    item.add_asset(
        "data", pystac.Asset(str(folder / "a" / "a.tif"), media_type=pystac.MediaType.COG, roles=["data"])
    )
    ProjectionExtension.ext(item, add_if_missing=True).code = "EPSG:32632"
    cat = pystac.Catalog("c", "test")
    cat.add_item(item)
    return save_catalog(cat, folder)


def test_saved_catalog_is_self_contained_and_valid(tmp_path: Path) -> None:
    catalog = _catalog(tmp_path)
    item = json.loads((tmp_path / "a" / "a.json").read_text())
    assert item["assets"]["data"]["href"] == "./a.tif"
    assert item["properties"]["proj:epsg"] == 32632  # stackstac reads only this one
    assert all(not link["href"].startswith("/") for link in item["links"])
    report = validate_tree(catalog.parent)
    assert report.ok, report.errors
    assert report.documents == 2


def test_validation_finds_schema_and_house_rule_errors(tmp_path: Path) -> None:
    _catalog(tmp_path)
    path = tmp_path / "a" / "a.json"
    item = json.loads(path.read_text())
    del item["properties"]["datetime"]
    item["assets"]["data"].pop("roles")
    item["assets"]["data"]["href"] = "./gone.tif"
    path.write_text(json.dumps(item))
    errors = "\n".join(validate_tree(tmp_path).errors)
    assert "datetime" in errors
    assert "asset 'data' has no roles" in errors
    assert "points to './gone.tif', which does not exist" in errors


def test_staged_output_leaves_nothing_on_failure(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), staged_output(tmp_path) as stage:
        (stage / "catalog.json").write_text("{}")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_staged_output_refuses_to_overwrite(tmp_path: Path) -> None:
    (tmp_path / "catalog.json").write_text("old")
    with pytest.raises(ToolError, match="already holds catalog.json"), staged_output(tmp_path) as stage:
        (stage / "catalog.json").write_text("new")
    assert (tmp_path / "catalog.json").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["catalog.json"]
