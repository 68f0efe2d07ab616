"""The geozarr tool against the synthetic EOPF product, whose pixels and grid are known exactly.

Also records, test by test, what eopf-geozarr 0.12 gets wrong *silently*, and that we catch it.
"""

from __future__ import annotations

import itertools
import json
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr

from eopack_eo_common.errors import ToolInputError
from eopack_eo_common.stac import validate_tree
from eopack_geozarr.cli import main
from eopack_geozarr.core import GeozarrJob, Outcome, normalise_groups, run
from eopack_sample_data.eopf import generate
from imageserver import ImageServer

SIZE, MIN_DIM = 128, 8
GROUPS = (
    "/measurements/reflectance/r10m",
    "/measurements/reflectance/r20m",
    "/measurements/reflectance/r60m",
)
ARGS = ["--spatial-chunk", "64", "--min-dimension", str(MIN_DIM)]


@pytest.fixture(scope="module")
def product(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate(tmp_path_factory.mktemp("eopf") / "p", size=SIZE)


@pytest.fixture(scope="module")
def converted(product: Path, tmp_path_factory: pytest.TempPathFactory) -> Outcome:
    job = GeozarrJob.from_args(
        input_zarr=product,
        groups=" ".join(g.lstrip("/") for g in GROUPS),
        spatial_chunk=64,
        min_dimension=MIN_DIM,
        tarball=True,
        dask_report=True,
    )
    return run(job, tmp_path_factory.mktemp("out"))


def _level(store: Path, path: str) -> xr.Dataset:
    return xr.open_dataset(str(store), group=path, engine="zarr", consolidated=False)


def test_normalise_groups() -> None:
    assert normalise_groups("measurements/a, /measurements/b  measurements/a/") == (
        "/measurements/a",
        "/measurements/b",
    )
    with pytest.raises(ToolInputError, match="groups is empty"):
        normalise_groups(" , ")


def test_level0_is_bit_identical(converted: Outcome, product: Path) -> None:
    source = xr.open_datatree(str(product), engine="zarr")
    for group in GROUPS:
        out = _level(converted.store, group.strip("/"))
        for name, var in source[group].data_vars.items():
            assert out[name].dtype == np.uint16
            np.testing.assert_array_equal(out[name].values, var.values)


def test_overviews_down_to_min_dimension_are_2x2_means(converted: Outcome) -> None:
    expected_sides = {"r10m": [128, 64, 32, 16, 8], "r20m": [64, 32, 16, 8], "r60m": [21, 10]}
    for group in GROUPS:
        levels = converted.levels[group]
        assert [lvl.shape[0] for lvl in levels] == expected_sides[group.rsplit("/", 1)[1]]
        for parent, child in itertools.pairwise(levels):
            p, c = _level(converted.store, parent.path), _level(converted.store, child.path)
            for name in c.data_vars:
                if name == "spatial_ref":
                    continue
                n = c.sizes["y"]
                block = (
                    p[name].values[: 2 * n, : 2 * n].astype("float64").reshape(n, 2, n, 2).mean(axis=(1, 3))
                )
                # overviews are float64 means of the parent (itself float64 below level 0)
                np.testing.assert_allclose(c[name].values, block, rtol=0, atol=1e-9)


def test_every_level_is_georeferenced_at_pixel_centres(converted: Outcome) -> None:
    from pyproj import CRS

    for group in GROUPS:
        res0 = {"r10m": 10, "r20m": 20, "r60m": 60}[group.rsplit("/", 1)[1]]
        for index, lvl in enumerate(converted.levels[group]):
            ds = _level(converted.store, lvl.path)
            res = res0 * 2**index
            # the upper-left corner never moves; centres are half a pixel in; pixel size doubles exactly
            np.testing.assert_allclose(
                ds.x.values, 682000 + (np.arange(ds.sizes["x"]) + 0.5) * res, atol=1e-6
            )
            np.testing.assert_allclose(
                ds.y.values, 5164000 - (np.arange(ds.sizes["y"]) + 0.5) * res, atol=1e-6
            )
            assert lvl.transform == (res, 0.0, 682000.0, 0.0, -res, 5164000.0)
            geo = [float(v) for v in ds.spatial_ref.attrs["GeoTransform"].split()]
            assert geo == [682000.0, res, 0.0, 5164000.0, 0.0, -res]
            assert CRS.from_wkt(ds.spatial_ref.attrs["crs_wkt"]).to_epsg() == 32632


def test_stac_item(converted: Outcome) -> None:
    root = converted.catalog.parent
    report = validate_tree(root)
    assert report.ok, report.errors
    assert report.documents == 2
    item = json.loads((root / "sample-eopf" / "sample-eopf.json").read_text())
    asset = item["assets"]["geozarr"]
    assert asset["type"] == "application/vnd+zarr" and asset["roles"] == ["data"]
    assert asset["href"] == "./sample-eopf.zarr"
    assert item["properties"]["proj:code"] == "EPSG:32632"
    assert item["properties"]["proj:transform"] == [10.0, 0.0, 682000.0, 0.0, -10.0, 5164000.0]
    assert item["properties"]["datetime"] == "2024-06-15T10:15:59.024000Z"
    levels = asset["eopack:multiscales"]["/measurements/reflectance/r10m"]
    assert [lvl["path"].rsplit("/", 1)[-1] for lvl in levels] == ["r10m", "r2", "r4", "r8", "r16"]
    assert item["assets"]["archive"]["href"] == "./geozarr.tar.gz"
    assert (root / "dask-report.html").stat().st_size > 1000


def test_tarball_round_trips(converted: Outcome, tmp_path: Path) -> None:
    with tarfile.open(converted.catalog.parent / "sample-eopf" / "geozarr.tar.gz") as tar:
        tar.extractall(tmp_path, filter="data")
    copy = tmp_path / "sample-eopf.zarr"
    for lvl in converted.levels[GROUPS[0]]:
        xr.testing.assert_identical(_level(copy, lvl.path), _level(converted.store, lvl.path))


def test_missing_group_lists_suggestions(
    product: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "--input-zarr",
            str(product),
            "--groups",
            "/measurements/r10m measurements/reflectance/r20m",
            "--outdir",
            str(tmp_path / "o"),
            *ARGS,
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert (
        "geozarr: error: group /measurements/r10m is not in the product; "
        "did you mean /measurements/reflectance/r10m"
    ) in err
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def test_no_crs_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    product = generate(tmp_path / "nocrs", size=24, crs=False)
    code = main(["--input-zarr", str(product), "--outdir", str(tmp_path / "o"), *ARGS])
    assert code == 2
    assert "geozarr: error: no CRS found for group /measurements/reflectance/r10m" in capsys.readouterr().err
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def test_unreachable_url_fails_fast(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], allow_private: None
) -> None:
    started = time.monotonic()
    code = main(["--zarr-url", "http://127.0.0.1:1/product.zarr", "--outdir", str(tmp_path / "o"), *ARGS])
    assert time.monotonic() - started < 15
    assert code == 1
    assert "geozarr: error: cannot reach http://127.0.0.1:1/product.zarr" in capsys.readouterr().err


def test_private_url_refused_by_default(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("EOPACK_ALLOW_PRIVATE_URLS", raising=False)
    assert main(["--zarr-url", "http://127.0.0.1:1/p.zarr", "--outdir", str(tmp_path / "o")]) == 2
    assert "refusing to fetch from 127.0.0.1" in capsys.readouterr().err


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Zarr v2 product (as real EOPF products are) on a loopback HTTP server."""
    folder = tmp_path_factory.mktemp("served")
    generate(folder / "v2", size=48, zarr_format=2)
    with ImageServer(folder) as url:
        yield url


@pytest.mark.parametrize("source", ["zarr-url", "stac-item"])
def test_over_http(
    served: str, source: str, tmp_path: Path, allow_private: None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO")
    ref = f"{served}/v2/sample-eopf.zarr" if source == "zarr-url" else f"{served}/v2/sample-eopf.json"
    assert (
        main(
            [
                f"--{source}",
                ref,
                "--groups",
                "measurements/reflectance/r10m",
                "--outdir",
                str(tmp_path),
                *ARGS,
            ]
        )
        == 0
    )
    assert "preflight: HEAD" in caplog.text and "HTTP 200" in caplog.text
    ds = _level(tmp_path / "sample-eopf" / "sample-eopf.zarr", "measurements/reflectance/r10m")
    assert ds.b02.dtype == np.uint16 and ds.sizes["x"] == 48


# ---- what eopf-geozarr 0.12 does silently (the reasons for the checks above) ------------------------


def _bare(product: Path, out: Path, groups: list[str]) -> None:
    from eopf_geozarr.conversion.geozarr import create_geozarr_dataset

    tree = xr.open_datatree(str(product), engine="zarr")
    create_geozarr_dataset(tree, groups=groups, output_path=str(out), spatial_chunk=64, min_dimension=MIN_DIM)


def test_eopf_geozarr_skips_missing_groups_silently(product: Path, tmp_path: Path) -> None:
    _bare(product, tmp_path / "o.zarr", ["/measurements/r10m"])  # no exception: a no-op "success"
    root = zarr.open_group(str(tmp_path / "o.zarr"), mode="r")
    assert all("multiscales" not in g.attrs for _, g in root.groups())
    assert "multiscales" not in root["measurements/reflectance/r10m"].attrs


def test_eopf_geozarr_without_crs_announces_missing_overviews(tmp_path: Path) -> None:
    product = generate(tmp_path / "nocrs", size=24, crs=False)
    _bare(product, tmp_path / "o.zarr", ["/measurements/reflectance/r10m"])  # no exception either
    group = zarr.open_group(str(tmp_path / "o.zarr/measurements/reflectance/r10m"), mode="r")
    # the layout announces an r2 overview that was never written (its MissingCRS error is only logged)
    assert [e["asset"] for e in group.attrs["multiscales"]["layout"]] == [".", "r2"]  # type: ignore[index, call-overload]
    assert "r2" not in group and "proj:code" not in group.attrs


def test_eopf_geozarr_overview_coordinates_are_corners(product: Path, tmp_path: Path) -> None:
    _bare(product, tmp_path / "o.zarr", ["/measurements/reflectance/r10m"])
    r2 = _level(tmp_path / "o.zarr", "measurements/reflectance/r10m/r2")
    assert r2.x.values[0] == 682000.0  # the corner; the centre of the first 20 m pixel is 682010


def test_s2_optimized_layout(product: Path, tmp_path: Path) -> None:
    """eopf-geozarr's Sentinel-2 layout: one multiscales over sibling rNNm groups, bands widened to float32."""
    job = GeozarrJob.from_args(
        input_zarr=product, groups="measurements/reflectance/r10m", layout="s2-optimized", spatial_chunk=64
    )
    outcome = run(job, tmp_path)
    paths = [lvl.path.rsplit("/", 1)[-1] for lvl in outcome.levels["/measurements/reflectance/r10m"]]
    assert paths[:3] == ["r10m", "r20m", "r60m"]
    source = xr.open_datatree(str(product), engine="zarr")["measurements/reflectance/r10m"].dataset
    out = _level(outcome.store, "measurements/reflectance/r10m")
    assert out.b02.dtype == np.float32
    np.testing.assert_array_equal(out.b02.values, source.b02.values)


def test_verification_fails_on_a_corrupt_output(converted: Outcome, product: Path, tmp_path: Path) -> None:
    """One changed pixel at level 0, or one shifted overview coordinate, fails the check by name."""
    import shutil

    from eopack_eo_common.errors import ToolError
    from eopack_geozarr.core import check_crs, open_tree, verify

    job = GeozarrJob.from_args(
        input_zarr=product, groups=" ".join(GROUPS), spatial_chunk=64, min_dimension=MIN_DIM
    )
    tree = open_tree(job.source)
    crs = check_crs(tree, job.groups)
    store = tmp_path / "copy.zarr"
    shutil.copytree(converted.store, store)
    assert verify(tree, store, job, crs)  # the untouched copy passes

    group = zarr.open_group(str(store), mode="r+")["measurements/reflectance/r10m"]
    assert isinstance(group, zarr.Group)
    band = sorted(k for k in tree[GROUPS[0]].dataset.data_vars)[0]
    arr = group[band]
    assert isinstance(arr, zarr.Array)
    arr[SIZE - 1, SIZE - 1] = arr[SIZE - 1, SIZE - 1] + 1  # the last chunk, not the first
    with pytest.raises(ToolError, match=f"r10m/{band} level 0 differs from the input"):
        verify(tree, store, job, crs)
    arr[SIZE - 1, SIZE - 1] = arr[SIZE - 1, SIZE - 1] - 1

    level1 = converted.levels[GROUPS[0]][1].path
    xs = zarr.open_group(str(store), mode="r+")[f"{level1}/x"]
    assert isinstance(xs, zarr.Array)
    xs[:] = xs[:] + 1.0  # half a pixel of the old corner bug is 5 m; one metre is enough to fail
    with pytest.raises(ToolError, match=f"x of {level1} are not the centres of its parent's 2x2 blocks"):
        verify(tree, store, job, crs)
