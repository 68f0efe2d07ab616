"""Checks on the outputs of tests/workflows/geozarr/test_cwltool.yml (the real CLI through cwltool)."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from eopack_eo_common.stac import validate_tree


def _level(store: Path, group: str) -> xr.Dataset:
    return xr.open_dataset(str(store), group=group, engine="zarr", consolidated=False)


@pytest.mark.workflow("geozarr cwltool default job")
def test_default_job_level0_overviews_and_stac(workflow_dir: Path, tmp_path: Path) -> None:
    out = workflow_dir / "out" / "geozarr_results"
    report = validate_tree(out)
    assert report.ok, report.errors
    assert report.documents == 2
    store = out / "sample-eopf" / "sample-eopf.zarr"
    source = xr.open_datatree(str(workflow_dir / "data/sample-eopf/sample-eopf.zarr"), engine="zarr")
    item = json.loads((out / "sample-eopf" / "sample-eopf.json").read_text())
    levels = item["assets"]["geozarr"]["eopack:multiscales"]
    assert sorted(levels) == ["/measurements/reflectance/r10m", "/measurements/reflectance/r20m"]
    assert [lvl["shape"][0] for lvl in levels["/measurements/reflectance/r10m"]] == [512, 256, 128, 64]
    for group in levels:
        level0 = _level(store, group.strip("/"))
        for name, var in source[group].data_vars.items():
            assert level0[name].dtype == np.uint16
            np.testing.assert_array_equal(level0[name].values, var.values)
        r2 = _level(store, levels[group][1]["path"])
        n = r2.sizes["x"]
        name = next(iter(source[group].data_vars))
        mean = source[group][name].values.astype("float64").reshape(n, 2, n, 2).mean(axis=(1, 3))
        np.testing.assert_allclose(r2[name].values, mean, rtol=0, atol=1e-9)
        np.testing.assert_allclose(r2.x.values, source[group].x.values.reshape(n, 2).mean(axis=1), atol=1e-6)
    with tarfile.open(out / "sample-eopf" / "geozarr.tar.gz") as tar:
        tar.extractall(tmp_path, filter="data")
    copy = tmp_path / "sample-eopf.zarr"
    xr.testing.assert_identical(
        _level(copy, "measurements/reflectance/r10m/r2"), _level(store, "measurements/reflectance/r10m/r2")
    )
