"""Convert an EOPF Zarr product to GeoZarr with eopf-geozarr, and check what it wrote.

eopf-geozarr 0.12 does the conversion well when everything is right, but reports success when
it is not, so every step it skips silently is checked here before or after it runs:

* a requested group that does not exist is skipped with an info log (exit 0), and when no group
  matches the "conversion" writes nothing useful (exit 0): we validate the groups first and
  name the close candidates under ``/measurements``;
* without a CRS it writes no multiscales and still exits 0: we require a CRS first;
* overview ``x``/``y`` coordinates are the pixel *corners* (half an overview pixel off the
  centres the level-0 coordinates hold), and on odd sizes the overview transform is stretched
  over the native bounds: we rewrite both from the parent grid (:func:`fix_overview_grids`);
* we verify the output: multiscales on every group, level 0 equal to the input bit for bit,
  a readable CRS and consistent pixel centres on every level. Any doubt is a non-zero exit.

Steps, in order: preflight (URL inputs), open + validate groups, check CRS, convert on the
eo-common Dask client (optionally inside a performance report), fix and verify, then the STAC
item and the optional tarball, all in a staging folder that is published only on success.
"""

from __future__ import annotations

import datetime as dt
import difflib
import json
import logging
import socket
import sys
import tarfile
import tempfile
import time
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import numpy as np
import pystac
import xarray as xr
import zarr
from pystac.extensions.projection import ProjectionExtension

from eopack_eo_common.dask_cluster import dask_client, performance_report
from eopack_eo_common.download import check_address, fetch
from eopack_eo_common.errors import ToolError, ToolInputError
from eopack_eo_common.output import staged_output
from eopack_eo_common.stac import save_catalog

__all__ = [
    "DEFAULT_GROUPS",
    "LAYOUTS",
    "VERSION",
    "ZARR_MEDIA_TYPE",
    "GeozarrJob",
    "find_crs",
    "fix_overview_grids",
    "normalise_groups",
    "preflight",
    "run",
    "suggest",
    "validate_groups",
    "verify",
]

log = logging.getLogger(__name__)

VERSION = version("eopack-geozarr")  # one source: tools/geozarr/pyproject.toml
LAYOUTS = ("generic", "s2-optimized")
ZARR_MEDIA_TYPE = "application/vnd+zarr"
DEFAULT_GROUPS = (
    "/measurements/reflectance/r10m",
    "/measurements/reflectance/r20m",
    "/measurements/reflectance/r60m",
)
_URL_SCHEMES = ("http", "https", "s3")
_PREFLIGHT_TIMEOUT = 10.0


def normalise_groups(text: str | Iterable[str] | None) -> tuple[str, ...]:
    """Group paths from space- or comma-separated text: absolute, no trailing ``/``, no duplicates.

    >>> normalise_groups("measurements/reflectance/r10m, /measurements/reflectance/r20m/")
    ('/measurements/reflectance/r10m', '/measurements/reflectance/r20m')
    """
    if text is None:
        return DEFAULT_GROUPS
    parts = text.replace(",", " ").split() if isinstance(text, str) else list(text)
    groups: list[str] = []
    for part in parts:
        path = "/" + part.strip().strip("/")
        if path != "/" and path not in groups:
            groups.append(path)
    if not groups:
        raise ToolInputError(
            "groups is empty; give at least one group such as /measurements/reflectance/r10m"
        )
    return tuple(groups)


@dataclass(frozen=True)
class GeozarrJob:
    """The tool's inputs, validated. ``source`` is a local path or an http(s)/s3 URL of the store."""

    source: str
    groups: tuple[str, ...] = DEFAULT_GROUPS
    layout: str = "generic"
    spatial_chunk: int = 4096
    min_dimension: int = 256
    dask_report: bool = False
    tarball: bool = False
    item: dict[str, Any] | None = field(default=None, compare=False)

    @property
    def is_url(self) -> bool:
        return urlsplit(self.source).scheme in _URL_SCHEMES

    @property
    def name(self) -> str:
        """The product name: the store's last path element without ``.zarr``."""
        last = urlsplit(self.source).path.rstrip("/").rsplit("/", 1)[-1] or "product"
        return last.removesuffix(".zarr") or "product"

    @classmethod
    def from_args(
        cls,
        *,
        zarr_url: str | None = None,
        stac_item: str | None = None,
        input_zarr: Path | None = None,
        groups: str | None = None,
        layout: str = "generic",
        spatial_chunk: int = 4096,
        min_dimension: int = 256,
        dask_report: bool = False,
        tarball: bool = False,
    ) -> GeozarrJob:
        given = [
            n for n, v in (("zarr_url", zarr_url), ("stac_item", stac_item), ("input_zarr", input_zarr)) if v
        ]
        if len(given) != 1:
            raise ToolInputError(
                f"give exactly one of zarr_url, stac_item, input_zarr; got {', '.join(given) or 'none'}"
            )
        if layout not in LAYOUTS:
            raise ToolInputError(f"layout must be one of {', '.join(LAYOUTS)}; got {layout!r}")
        if spatial_chunk < 16:
            raise ToolInputError(f"spatial_chunk must be at least 16 pixels; got {spatial_chunk}")
        if min_dimension < 1:
            raise ToolInputError(f"min_dimension must be a positive number of pixels; got {min_dimension}")
        item: dict[str, Any] | None = None
        if zarr_url:
            if urlsplit(zarr_url).scheme not in _URL_SCHEMES:
                raise ToolInputError(f"zarr_url must start with http://, https:// or s3://; got {zarr_url!r}")
            source = zarr_url.rstrip("/")
        elif stac_item:
            item, source = resolve_stac_item(stac_item)
        else:
            assert input_zarr is not None
            if not input_zarr.is_dir():
                raise ToolInputError(f"input_zarr {input_zarr} is not a folder; give the .zarr store folder")
            source = str(input_zarr.resolve())
        return cls(
            source, normalise_groups(groups), layout, spatial_chunk, min_dimension, dask_report, tarball, item
        )


def _zarr_asset(item: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The asset holding the Zarr store: by media type, then by href, preferring role ``data``."""
    assets = item.get("assets") or {}
    candidates = [
        (key, asset)
        for key, asset in assets.items()
        if "zarr" in str(asset.get("type", "")).lower()
        or str(asset.get("href", "")).rstrip("/").endswith(".zarr")
    ]
    candidates.sort(key=lambda kv: "data" not in (kv[1].get("roles") or []))
    if not candidates:
        raise ToolInputError(
            f"STAC item {item.get('id', '?')!r} has no Zarr asset (type {ZARR_MEDIA_TYPE} or href ending "
            f".zarr); its assets are: {', '.join(assets) or 'none'}"
        )
    return candidates[0]


def resolve_stac_item(ref: str) -> tuple[dict[str, Any], str]:
    """Read a STAC item (URL or local file) and return it with the absolute location of its Zarr asset."""
    if urlsplit(ref).scheme in ("http", "https"):
        with tempfile.TemporaryDirectory() as tmp:
            got = fetch(
                ref, Path(tmp) / "item.json", max_bytes=10 * 1024**2, timeout=_PREFLIGHT_TIMEOUT, deadline=60
            )
            text = got.path.read_text()
            base = got.url
    else:
        path = Path(ref.removeprefix("file://"))
        if not path.is_file():
            raise ToolInputError(f"stac_item {ref} is not a file or an http(s) URL")
        text, base = path.read_text(), path.resolve().as_uri()
    try:
        item = json.loads(text)
    except ValueError as err:
        raise ToolInputError(f"stac_item {ref} is not JSON: {err}") from None
    if not isinstance(item, dict) or item.get("type") != "Feature":
        raise ToolInputError(f'stac_item {ref} is not a STAC item (no "type": "Feature")')
    key, asset = _zarr_asset(item)
    href = urljoin(base, str(asset["href"]))
    if href.startswith("file://"):
        href = href.removeprefix("file://")
        if not Path(href).is_dir():
            raise ToolInputError(
                f"asset {key!r} of STAC item {ref} points to {href}, which is not a folder here; "
                "stage the store with the item or use an item whose asset href is a URL"
            )
    log.info("STAC item %s: asset %r -> %s", item.get("id", "?"), key, href)
    return item, href.rstrip("/")


# ---- step 1: preflight ---------------------------------------------------------------------------


def _check_host(url: str) -> None:
    """Refuse private addresses (eo-common's download rules) before anything, xarray included, connects."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as err:
        raise ToolInputError(
            f"cannot resolve host {host!r} of {url}: {err.strerror}; check the URL"
        ) from None
    for info in infos:
        check_address(host, str(info[4][0]))


def preflight(url: str, timeout: float = _PREFLIGHT_TIMEOUT) -> list[tuple[str, int | None, float]]:
    """HEAD (then GET) the store's metadata documents; log status and timing of each.

    Best effort: an HTTP error status is only logged (some servers refuse HEAD, or serve only
    chunks). A host that cannot be reached at all is fatal, because opening would fail too, after
    much longer retries.

    Returns:
        ``(url, status or None, seconds)`` per request made.
    """
    import urllib3

    if urlsplit(url).scheme not in ("http", "https"):
        log.info("preflight: skipped for %s (not http)", url)
        return []
    _check_host(url)
    http = urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=min(timeout, 5.0), read=timeout), retries=False
    )
    results: list[tuple[str, int | None, float]] = []
    for doc in ("zarr.json", ".zmetadata", ".zgroup"):
        target = f"{url}/{doc}"
        for method in ("HEAD", "GET"):
            started = time.monotonic()
            try:
                resp = http.request(method, target, preload_content=False, redirect=True)
                resp.release_conn()
            except urllib3.exceptions.HTTPError as err:
                took = time.monotonic() - started
                reason = getattr(err, "reason", None) or err
                raise ToolError(
                    f"cannot reach {url} (preflight {method} {doc} failed after {took:.1f} s: {reason}); "
                    "check the URL and that the server is up"
                ) from None
            took = time.monotonic() - started
            results.append((target, resp.status, took))
            log.info("preflight: %s %s -> HTTP %d in %.3f s", method, target, resp.status, took)
            if resp.status != 405:  # Method Not Allowed: retry with GET
                break
        if results[-1][1] == 200:
            return results
    log.warning("preflight: no Zarr metadata document answered 200 at %s; trying to open it anyway", url)
    return results


# ---- step 2: open and validate groups ---------------------------------------------------------------


def _storage_options(source: str) -> dict[str, Any] | None:
    if source.startswith("s3://"):
        from eopf_geozarr.conversion.fs_utils import get_storage_options

        return dict(get_storage_options(source) or {})
    return None


def open_tree(source: str) -> xr.DataTree:
    """Open the product lazily (dask chunks), as eopf-geozarr's own CLI does."""
    started = time.monotonic()
    try:
        tree = xr.open_datatree(
            source, engine="zarr", chunks="auto", storage_options=_storage_options(source)
        )
    except FileNotFoundError as err:
        raise ToolInputError(f"{source} is not a Zarr store (no zarr.json / .zgroup found): {err}") from None
    except Exception as err:
        raise ToolInputError(
            f"cannot open {source} as a Zarr datatree: {type(err).__name__}: {err}"
        ) from None
    log.info("opened %s in %.2f s (%d groups)", source, time.monotonic() - started, len(tree.groups))
    return tree


def tree_lines(tree: xr.DataTree) -> list[str]:
    """One line per group: path, dimensions and variables (what the seed's validation step printed)."""
    lines = []
    for path in tree.groups:
        node = tree[path]
        dims = ", ".join(f"{k}={v}" for k, v in node.dataset.sizes.items())
        names = ", ".join(str(v) for v in node.data_vars)
        lines.append(f"{path}" + (f"  ({dims})  [{names}]" if names else ""))
    return lines


def _data_groups(tree: xr.DataTree, under: str = "") -> list[str]:
    return [p for p in tree.groups if p.startswith(under) and tree[p].data_vars]


def suggest(missing: str, tree: xr.DataTree) -> list[str]:
    """Groups with data under ``/measurements`` that look like ``missing`` (closest first).

    Matches on the whole path and on the last element, so ``/measurements/r10m`` finds
    ``/measurements/reflectance/r10m``.
    """
    candidates = _data_groups(tree, "/measurements") or _data_groups(tree)
    close = difflib.get_close_matches(missing, candidates, n=3, cutoff=0.5)
    leaf = missing.rsplit("/", 1)[-1]
    by_leaf = [c for c in candidates if c.rsplit("/", 1)[-1] == leaf]
    return list(dict.fromkeys(by_leaf + close))


def validate_groups(tree: xr.DataTree, groups: Iterable[str]) -> None:
    """Fail with "did you mean" candidates for every requested group that is absent or empty."""
    problems = []
    for group in groups:
        if group in tree.groups and tree[group].data_vars:
            continue
        what = "has no data variables" if group in tree.groups else "is not in the product"
        close = suggest(group, tree)
        hint = f"did you mean {' or '.join(close)}?" if close else "no similar group under /measurements"
        problems.append(f"group {group} {what}; {hint}")
    if problems:
        available = ", ".join(_data_groups(tree, "/measurements")) or "none"
        raise ToolInputError(f"{'; '.join(problems)} (groups with data under /measurements: {available})")


# ---- step 3: CRS -----------------------------------------------------------------------------------


def find_crs(tree: xr.DataTree, group: str) -> str | None:
    """The CRS eopf-geozarr will use for ``group``, as a string pyproj understands, or None.

    Same sources as the converter: ``proj:epsg``/``proj:code``/``proj:wkt2`` on a variable, a CF
    grid-mapping variable, then the root ``other_metadata.horizontal_CRS_code`` (CPM ≥ 2.6).
    """
    ds = tree[group].dataset
    for var in ds.data_vars.values():
        attrs = var.attrs
        if attrs.get("proj:epsg") is not None:
            return f"EPSG:{attrs['proj:epsg']}"
        for key in ("proj:code", "proj:wkt2"):
            if isinstance(attrs.get(key), str) and attrs[key]:
                return str(attrs[key])
    for name in ("spatial_ref", "crs"):
        if name in ds.variables and ds[name].attrs.get("crs_wkt"):
            return str(ds[name].attrs["crs_wkt"])
    other = tree.attrs.get("other_metadata") or {}
    code = other.get("horizontal_CRS_code") or other.get("horizontal_crs_code")
    return f"EPSG:{str(code).split(':')[-1]}" if code else None


def _regular_axis(values: np.ndarray, name: str, group: str) -> float:
    """Pixel size of a regular coordinate axis (signed); refuse irregular or too-short axes."""
    if values.ndim != 1 or values.size < 2:
        raise ToolInputError(f"group {group} needs a 1-D {name} coordinate with at least 2 values")
    steps = np.diff(values.astype("float64"))
    if not np.allclose(steps, steps[0], rtol=1e-9, atol=1e-6):
        raise ToolInputError(f"group {group}: {name} coordinate is not regular; GeoZarr needs a regular grid")
    return float(steps[0])


def check_crs(tree: xr.DataTree, groups: Iterable[str]) -> dict[str, str]:
    """CRS per group; a group without one (or without regular x/y) is an input error."""
    from pyproj import CRS

    found: dict[str, str] = {}
    for group in groups:
        crs = find_crs(tree, group)
        if crs is None:
            raise ToolInputError(
                f"no CRS found for group {group}: eopf-geozarr would write it without multiscales and exit 0; "
                "the product needs proj:epsg on its variables or the root attribute "
                "other_metadata.horizontal_CRS_code (e.g. 'EPSG:32632')"
            )
        try:
            CRS.from_user_input(crs)
        except Exception as err:
            raise ToolInputError(f"group {group}: CRS {crs!r} is not understood: {err}") from None
        ds = tree[group].dataset
        for axis in ("x", "y"):
            if axis not in ds.coords:
                raise ToolInputError(
                    f"group {group} has no {axis} coordinate; GeoZarr needs x/y in the CRS units"
                )
            _regular_axis(ds[axis].values, axis, group)
        found[group] = crs
        log.info("CRS of %s: %s", group, crs if len(crs) < 40 else crs[:37] + "...")
    return found


# ---- step 4: convert ------------------------------------------------------------------------------


def _route_structlog(verbose: bool) -> None:
    """eopf-geozarr logs with structlog, which prints to stdout by default; stdout is ours."""
    import structlog

    structlog.configure(
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG if verbose else logging.WARNING),
    )


def convert(job: GeozarrJob, tree: xr.DataTree, store: Path, verbose: bool = False) -> None:
    """Run the eopf-geozarr Python API (not its CLI: that one always starts its own LocalCluster)."""
    _route_structlog(verbose)
    if not verbose:
        # Noise, not news: xarray's fallback when eopf-geozarr reopens its own unconsolidated
        # groups, pydantic's schema note, and the CF name table it tries to download on import.
        warnings.filterwarnings("ignore", message="Failed to open Zarr store with consolidated")
        warnings.filterwarnings("ignore", message="TypedDict class")
        warnings.filterwarnings("ignore", message="Could not fetch the CF standard name table")
    started = time.monotonic()
    try:
        if job.layout == "s2-optimized":
            from eopf_geozarr.s2_optimization.s2_converter import convert_s2_optimized

            log.info("eopf-geozarr: Sentinel-2 optimized layout (groups are checked, not selected, here)")
            convert_s2_optimized(
                tree,
                output_path=str(store),
                enable_sharding=False,
                spatial_chunk=job.spatial_chunk,
                compression_level=3,
                validate_output=True,
                keep_scale_offset=False,
            )
        else:
            from eopf_geozarr.conversion.geozarr import create_geozarr_dataset

            log.info("eopf-geozarr: generic layout, groups %s", " ".join(job.groups))
            create_geozarr_dataset(
                tree,
                groups=list(job.groups),
                output_path=str(store),
                spatial_chunk=job.spatial_chunk,
                min_dimension=job.min_dimension,
            )
    except ToolError:
        raise
    except Exception as err:
        raise ToolError(f"eopf-geozarr failed: {type(err).__name__}: {err}") from err
    log.info("eopf-geozarr wrote %s in %.1f s", store, time.monotonic() - started)


# ---- step 5: fix overview grids, verify ------------------------------------------------------------


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
    return xr.open_dataset(str(store), group=path or None, engine="zarr", chunks=None, consolidated=False)


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
            if not np.array_equal(
                np.asarray(got.values), np.asarray(var.values), equal_nan=var.dtype.kind in "fc"
            ):
                raise ToolError(f"verification: {group}/{name} level 0 differs from the input")
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


# ---- step 6: STAC item and tarball -----------------------------------------------------------------


def _datetime(tree: xr.DataTree, item: dict[str, Any] | None) -> dt.datetime:
    props = dict((tree.attrs.get("stac_discovery") or {}).get("properties") or {})
    if item:
        props = {**props, **(item.get("properties") or {})}
    for key in ("datetime", "start_datetime"):
        if props.get(key):
            return dt.datetime.fromisoformat(str(props[key]).replace("Z", "+00:00"))
    log.warning("the product has no datetime (stac_discovery.properties); using the processing time")
    return dt.datetime.now(dt.UTC)


def _footprint(crs: str, level: Level) -> tuple[list[float], dict[str, Any]]:
    from rasterio.warp import transform_bounds

    rx, _, left, _, ry, top = level.transform
    rows, cols = level.shape
    xs = (left, left + rx * cols)
    ys = (top, top + ry * rows)
    west, south, east, north = transform_bounds(
        crs, "EPSG:4326", min(xs), min(ys), max(xs), max(ys), densify_pts=21
    )
    ring = [[west, south], [east, south], [east, north], [west, north], [west, south]]
    return [west, south, east, north], {"type": "Polygon", "coordinates": [ring]}


def build_item(
    job: GeozarrJob,
    tree: xr.DataTree,
    store: Path,
    levels: Mapping[str, list[Level]],
    crs: Mapping[str, str],
    archive: Path | None,
) -> pystac.Item:
    """A STAC item whose ``geozarr`` asset is the store, with proj info and the levels of each group."""

    from pyproj import CRS

    first = job.groups[0]
    base = levels[first][0]
    bbox, geometry = _footprint(crs[first], base)
    item = pystac.Item(
        job.name,
        geometry,
        bbox,
        _datetime(tree, job.item),
        {
            "processing:software": {"eopack-geozarr": VERSION, "eopf-geozarr": version("eopf-geozarr")},
            "eopack:layout": job.layout,
            # A URL is a lasting address; a staged input's path is a runner's temporary copy.
            "eopack:source": job.source if job.is_url else f"{job.name}.zarr",
        },
    )
    asset = pystac.Asset(
        str(store),
        title="GeoZarr store",
        media_type=ZARR_MEDIA_TYPE,
        roles=["data"],
        extra_fields={
            "eopack:multiscales": {
                group: [
                    {"path": lvl.path, "shape": list(lvl.shape), "transform": list(lvl.transform)}
                    for lvl in lvls
                ]
                for group, lvls in levels.items()
            }
        },
    )
    item.add_asset("geozarr", asset)
    if archive is not None:
        item.add_asset(
            "archive",
            pystac.Asset(
                str(archive), title="GeoZarr store (tar.gz)", media_type="application/gzip", roles=["archive"]
            ),
        )
    proj = ProjectionExtension.ext(item, add_if_missing=True)
    epsg = CRS.from_user_input(crs[first]).to_epsg()
    if epsg:
        proj.code = f"EPSG:{epsg}"
    else:
        proj.wkt2 = CRS.from_user_input(crs[first]).to_wkt()
    proj.shape = list(base.shape)
    proj.transform = list(base.transform)
    return item


def write_tarball(store: Path, dest: Path) -> Path:
    """``dest`` holding the store as one top-level folder (what the seed hands out as its artifact)."""
    with tarfile.open(dest, "w:gz", compresslevel=6) as tar:
        tar.add(store, arcname=store.name)
    log.info("wrote %s (%.1f MiB)", dest, dest.stat().st_size / 1024**2)
    return dest


# ---- the whole run ------------------------------------------------------------------------------------


@dataclass
class Outcome:
    """What a run produced (for callers and tests)."""

    catalog: Path
    store: Path
    levels: dict[str, list[Level]]
    fixed_levels: int


def _log_tree(tree: xr.DataTree) -> None:
    log.info("product tree:")
    for line in tree_lines(tree):
        log.info("  %s", line)


def run(job: GeozarrJob, outdir: Path, verbose: bool = False) -> Outcome:
    """Preflight, validate, convert, fix, verify and publish into ``outdir``; return what was written."""
    if job.is_url:
        preflight(job.source)
    tree = open_tree(job.source)
    _log_tree(tree)
    validate_groups(tree, job.groups)
    crs = check_crs(tree, job.groups)
    with staged_output(outdir) as stage:
        folder = stage / job.name
        folder.mkdir()
        store = folder / f"{job.name}.zarr"
        report = stage / "dask-report.html" if job.dask_report else None
        with dask_client() as client, performance_report(report):
            log.info("converting on %s", client)
            convert(job, tree, store, verbose)
        fixed = 0
        if job.layout == "generic":
            fixed = fix_overview_grids(store, job.groups)
        levels = verify(tree, store, job, crs)
        if job.layout == "s2-optimized":
            levels = s2_levels(store, job)
        archive = write_tarball(store, stage / "geozarr.tar.gz") if job.tarball else None
        item = build_item(job, tree, store, levels, crs, archive)
        catalog = pystac.Catalog("geozarr", f"GeoZarr conversion of {job.name}", title="GeoZarr")
        catalog.add_item(item)
        save_catalog(catalog, stage)
    return Outcome(outdir / "catalog.json", outdir / job.name / store.name, levels, fixed)
