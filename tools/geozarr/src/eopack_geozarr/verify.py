"""Step 5: fix the overview grids eopf-geozarr writes, then verify every level against the input."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
import zarr

from eopack_eo_common.errors import ToolError
from eopack_eo_common.progress import Progress

from .job import GeozarrJob

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Level:
    """One multiscale level of a converted group: its path in the store and its grid."""

    path: str
    shape: tuple[int, int]
    transform: tuple[float, float, float, float, float, float]


def _levels_attr(group: zarr.Group) -> list[dict[str, Any]]:
    multiscales = group.attrs.get("multiscales")
    layout = multiscales.get("layout") if isinstance(multiscales, dict) else None
    return list(layout) if isinstance(layout, list) else []


def _level_path(group: str, asset: str) -> str:
    return group.strip("/") if asset in (".", "") else f"{group.strip('/')}/{asset}"


def _array(group: zarr.Group, name: str) -> zarr.Array:
    node = group[name]
    if not isinstance(node, zarr.Array):
        raise ToolError(f"verification: {group.path}/{name} is not an array")
    return node


def _centres(parent: np.ndarray, n: int) -> np.ndarray:
    """Centres of a 2× coarser grid: the mean of each pair of parent centres (no half-pixel shift)."""
    return parent[: 2 * n].astype("float64").reshape(n, 2).mean(axis=1)


def fix_overview_grids(store: Path, groups: Iterable[str]) -> int:
    """Rewrite overview coordinates and transforms from the parent grid; return the levels fixed.

    eopf-geozarr 0.12 writes overview ``x``/``y`` with ``linspace(left, right, n, endpoint=False)``
    (pixel corners, so every reader that derives the transform from coordinates is half a
    pixel off) and, when a parent dimension is odd, a transform stretched over the native bounds
    while the pixels are block means of the cropped parent. The truth is the parent grid: centres
    are the mean of each 2×2 parent block's centres and the pixel size doubles.
    """
    from eopf_geozarr.conversion.geozarr import consolidate_metadata

    root = zarr.open_group(str(store), mode="r+")
    fixed = 0
    touched: list[str] = []
    for group in groups:
        gpath = group.strip("/")
        zgroup = root[gpath]
        assert isinstance(zgroup, zarr.Group)
        layout = _levels_attr(zgroup)
        by_asset = {entry.get("asset"): entry for entry in layout}
        for entry in layout:
            parent_asset = entry.get("derived_from")
            if parent_asset is None or _level_path(gpath, entry["asset"]) not in root:
                continue  # a level eopf-geozarr announced but did not write: verify() reports it
            parent = root[_level_path(gpath, parent_asset)]
            level = root[_level_path(gpath, entry["asset"])]
            assert isinstance(parent, zarr.Group) and isinstance(level, zarr.Group)
            px = np.asarray(_array(parent, "x")[:], dtype="float64")
            py = np.asarray(_array(parent, "y")[:], dtype="float64")
            xs, ys = _array(level, "x"), _array(level, "y")
            x, y = _centres(px, xs.shape[0]), _centres(py, ys.shape[0])
            nx, ny = x.size, y.size
            xs[:] = x
            ys[:] = y
            rx, ry = 2 * (px[1] - px[0]), 2 * (py[1] - py[0])
            left, top = float(x[0] - rx / 2), float(y[0] - ry / 2)
            transform = [float(rx), 0.0, left, 0.0, float(ry), top]
            bbox = (
                [left, top + ry * ny, left + rx * nx, top]
                if ry < 0
                else [left, top, left + rx * nx, top + ry * ny]
            )
            entry["spatial:transform"] = transform
            by_asset[entry["asset"]] = entry
            if "spatial:transform" in level.attrs:
                level.attrs.update({"spatial:transform": transform, "spatial:bbox": bbox})
            if "spatial_ref" in level:
                ref = level["spatial_ref"]
                ref.attrs["GeoTransform"] = f"{left} {float(rx)} 0.0 {top} 0.0 {float(ry)}"
            fixed += 1
            touched.append(_level_path(gpath, entry["asset"]))
        if layout:
            multiscales = dict(zgroup.attrs["multiscales"])  # type: ignore[arg-type]
            multiscales["layout"] = layout
            zgroup.attrs["multiscales"] = multiscales
            touched.append(gpath)
    # Consolidated metadata copies every attribute: refresh it deepest first, then the root.
    for path in sorted(set(touched), key=lambda p: -p.count("/")):
        consolidate_metadata(zarr.storage.LocalStore(str(store / path)))
    consolidate_metadata(zarr.storage.LocalStore(str(store)))
    if fixed:
        log.info(
            "fixed the grid of %d overview level(s) (pixel-centre coordinates, exact 2x transforms)", fixed
        )
    return fixed


def _open_level(store: Path, path: str) -> xr.Dataset:
    """A level with its variables as Dask arrays in the store's own chunks (read only when compared)."""
    return xr.open_dataset(str(store), group=path or None, engine="zarr", chunks={}, consolidated=False)


def _equal_lazy(got: Any, want: Any, nan: bool) -> Any:
    """A lazy boolean: every element of ``got`` equals ``want`` (NaN equal to NaN when ``nan``)."""
    import dask.array as da

    a, b = da.asarray(got), da.asarray(want)
    same = a == b
    if nan:
        same = same | (da.isnan(a) & da.isnan(b))
    return same.all()


def _check_level0(group: str, pending: list[tuple[str, Any]]) -> None:
    """Compare every variable of a group's level 0 chunk by chunk, all at once, on the current Dask
    client (the cluster that did the conversion): one parallel pass over the pixels, not one
    single-threaded read per variable after the cluster is gone."""
    import dask

    results = dask.compute(*(lazy for _, lazy in pending))
    for (name, _), equal in zip(pending, results, strict=True):
        if not bool(equal):
            raise ToolError(f"verification: {group}/{name} level 0 differs from the input")


def _level_crs(ds: xr.Dataset, attrs: Mapping[str, Any]) -> Any:
    from pyproj import CRS

    wkt = ds["spatial_ref"].attrs.get("crs_wkt") if "spatial_ref" in ds.variables else None
    code = wkt or attrs.get("proj:code") or attrs.get("proj:wkt2")
    return CRS.from_user_input(code) if code else None


def verify(tree: xr.DataTree, store: Path, job: GeozarrJob, crs: Mapping[str, str]) -> dict[str, list[Level]]:
    """Check the store against the input; return the levels per group. Any mismatch is a ToolError.

    Checked: the group exists, carries multiscales with the expected number of levels (generic
    layout), every input variable at level 0 equals the input bit for bit (same dtype, same
    values), every level has a CRS equal to the input's, and every overview's pixel centres are
    the means of its parent's 2×2 blocks.
    """
    from eopf_geozarr.conversion.geozarr import calculate_overview_levels
    from pyproj import CRS

    root = zarr.open_group(str(store), mode="r")
    result: dict[str, list[Level]] = {}
    for group in job.groups:
        gpath = group.strip("/")
        if gpath not in root:
            raise ToolError(f"verification: {group} is missing from the output; eopf-geozarr skipped it")
        source = tree[group].dataset
        # s2-optimized puts one multiscales block on the parent of the resolution groups
        holder = root[gpath] if job.layout == "generic" else root[gpath.rsplit("/", 1)[0]]
        assert isinstance(holder, zarr.Group)
        layout = _levels_attr(holder)
        if not layout:
            raise ToolError(
                f"verification: {group} has no multiscales in the output (CRS lost or overviews failed)"
            )
        out0 = _open_level(store, gpath)
        pending: list[tuple[str, Any]] = []
        for name, var in source.data_vars.items():
            if name not in out0.data_vars:
                raise ToolError(f"verification: variable {name} of {group} is missing from the output")
            got = out0[name]
            # s2-optimized stores uint16 bands as float32: exact for 16-bit integers, so the values
            # must still match exactly; said out loud because it doubles the store's size.
            widened = (
                job.layout == "s2-optimized"
                and var.dtype.kind in "ui"
                and var.dtype.itemsize <= 2
                and got.dtype == np.float32
            )
            if widened:
                log.warning(
                    "eopf-geozarr stored %s/%s as float32 (input %s); values checked exactly",
                    group,
                    name,
                    var.dtype,
                )
            if (got.dtype != var.dtype and not widened) or got.shape != var.shape:
                raise ToolError(
                    f"verification: {group}/{name} is {got.dtype}{got.shape} in the output, "
                    f"{var.dtype}{var.shape} in the input"
                )
            pending.append((str(name), _equal_lazy(got.data, var.data, nan=var.dtype.kind in "fc")))
        _check_level0(group, pending)
        want = CRS.from_user_input(crs[group])
        if job.layout == "s2-optimized":
            got_crs = _level_crs(out0, dict(holder.attrs))
            if got_crs is None or got_crs != want:
                raise ToolError(
                    f"verification: {group} has no readable CRS equal to {want.to_string()} in the output"
                )
            continue
        h, w = source[next(iter(source.data_vars))].shape[-2:]
        expected = len(calculate_overview_levels(w, h, job.min_dimension))
        if len(layout) != expected:
            raise ToolError(
                f"verification: {group} has {len(layout)} multiscale level(s); expected {expected}"
            )
        levels: list[Level] = []
        datasets: dict[str, xr.Dataset] = {}
        progress = Progress(f"{group} level", len(layout), log)
        for entry in layout:
            path = _level_path(gpath, entry["asset"])
            if path not in root:
                raise ToolError(
                    f"verification: level {path} is listed in the multiscales but was not written"
                )
            ds = out0 if path == gpath else _open_level(store, path)
            datasets[entry["asset"]] = ds
            level_attrs = dict(root[path].attrs)
            got_crs = _level_crs(ds, level_attrs or dict(holder.attrs))
            if got_crs is None or got_crs != want:
                raise ToolError(f"verification: level {path} has no readable CRS equal to {want.to_string()}")
            parent_asset = entry.get("derived_from")
            if parent_asset is not None:
                parent = datasets[parent_asset]
                for axis in ("x", "y"):
                    n = ds.sizes[axis]
                    if not np.allclose(ds[axis].values, _centres(parent[axis].values, n), rtol=0, atol=1e-6):
                        raise ToolError(
                            f"verification: {axis} of {path} are not the centres of its parent's 2x2 blocks"
                        )
            t = entry.get("spatial:transform")
            transform = tuple(float(v) for v in t) if t else _transform_of(ds)
            levels.append(Level(path, (ds.sizes["y"], ds.sizes["x"]), transform))  # type: ignore[arg-type]
            progress.advance(f"{path} {ds.sizes['x']}x{ds.sizes['y']} checked")
        result[group] = levels
        log.info("verified %s: %d level(s), level 0 equals the input", group, len(levels))
    return result


def _transform_of(ds: xr.Dataset) -> tuple[float, float, float, float, float, float]:
    x, y = ds["x"].values, ds["y"].values
    rx, ry = float(x[1] - x[0]), float(y[1] - y[0])
    return (rx, 0.0, float(x[0] - rx / 2), 0.0, ry, float(y[0] - ry / 2))


def s2_levels(store: Path, job: GeozarrJob) -> dict[str, list[Level]]:
    """Levels of the s2-optimized layout: the siblings listed in the parent's multiscales."""
    root = zarr.open_group(str(store), mode="r")
    result: dict[str, list[Level]] = {}
    for group in job.groups:
        parent = group.strip("/").rsplit("/", 1)[0]
        holder = root[parent]
        assert isinstance(holder, zarr.Group)
        result[group] = [
            Level(f"{parent}/{e['asset']}", tuple(e["spatial:shape"]), tuple(e["spatial:transform"]))  # type: ignore[arg-type]
            for e in _levels_attr(holder)
        ]
    return result
