"""The synthetic EOPF-like Zarr product: layout, CRS, both Zarr formats, reuse and refusal."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr

from eopack_sample_data.cli import main
from eopack_sample_data.eopf import BANDS, EPSG, ORIGIN, EopfInputError, band_values, generate


@pytest.mark.parametrize("fmt", [2, 3])
def test_layout_values_and_crs(tmp_path: Path, fmt: int) -> None:
    store = generate(tmp_path / "eopf", size=48, zarr_format=fmt)
    assert zarr.open_group(str(store), mode="r").metadata.zarr_format == fmt
    tree = xr.open_datatree(str(store), engine="zarr")
    assert set(tree.children) == {"measurements", "quality", "conditions"}
    assert tree.attrs["other_metadata"]["horizontal_CRS_code"] == f"EPSG:{EPSG}"
    for name, (res, bands) in BANDS.items():
        ds = tree[f"/measurements/reflectance/{name}"].dataset
        n = 48 * 10 // res
        assert sorted(ds.data_vars) == sorted(bands)
        assert ds.sizes == {"y": n, "x": n}
        # pixel centres, half a pixel in from the upper-left corner
        assert ds.x.values[0] == ORIGIN[0] + res / 2 and ds.y.values[0] == ORIGIN[1] - res / 2
        np.testing.assert_array_equal(np.diff(ds.x.values), res)
        for band in bands:
            assert ds[band].dtype == np.uint16 and ds[band].attrs["proj:epsg"] == EPSG
            np.testing.assert_array_equal(ds[band].values, band_values(band, n, n))


def test_without_crs(tmp_path: Path) -> None:
    tree = xr.open_datatree(str(generate(tmp_path / "e", size=24, crs=False)), engine="zarr")
    assert "horizontal_CRS_code" not in tree.attrs["other_metadata"]
    for path in tree.groups:
        for var in tree[path].data_vars.values():
            assert not any(k.startswith("proj:") for k in var.attrs)


def test_stac_item_points_to_the_store(tmp_path: Path) -> None:
    store = generate(tmp_path / "e", size=24)
    item = json.loads((store.parent / "sample-eopf.json").read_text())
    assert item["assets"]["product"] == {
        "href": "./sample-eopf.zarr",
        "type": "application/vnd+zarr",
        "title": "EOPF Zarr product",
        "roles": ["data"],
    }
    west, south, east, north = item["bbox"]
    assert 11.3 < west < east < 11.5 and 46.5 < south < north < 46.7


def test_reuses_and_refuses(tmp_path: Path) -> None:
    store = generate(tmp_path / "e", size=24)
    stamp = (store / "zarr.json").stat().st_mtime_ns
    assert generate(tmp_path / "e", size=24) == store
    assert (store / "zarr.json").stat().st_mtime_ns == stamp
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "generator.json").write_text('{"kind": "s2"}')
    with pytest.raises(EopfInputError, match="was not made by eopack-sample-data --geozarr"):
        generate(foreign, size=24)
    assert (foreign / "generator.json").exists()
    with pytest.raises(EopfInputError, match="even number"):
        generate(tmp_path / "odd", size=25)


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--geozarr", "--out", str(tmp_path / "c"), "--size", "24", "--zarr-format", "2"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "c" / "sample-eopf.zarr")
    assert main(["--geozarr", "--out", str(tmp_path / "d"), "--size", "7"]) == 2
    assert "size must be an even number" in capsys.readouterr().err
