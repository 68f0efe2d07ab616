"""A synthetic EOPF-like Sentinel-2 L2A Zarr product, for the geozarr package's demos and tests.

No EOPF archive is reachable from the build machines (DESIGN.md §6), so we write a small store
with the shape eopf-geozarr expects from a real product:

* root children ``measurements``, ``quality`` and ``conditions`` (what eopf-geozarr 0.12 checks
  to auto-detect a Sentinel-2 product in a Zarr v3 store);
* ``/measurements/reflectance/r10m`` (b02 b03 b04 b08), ``r20m`` (b05 b06 b07 b8a b11 b12) and
  ``r60m`` (b01 b09): uint16 ``(y, x)`` bands with regular ``x``/``y`` pixel-centre coordinates
  in metres, UTM 32N;
* ``/quality/mask/r20m`` (``scl``, uint8) and ``/conditions/geometry`` (a coarse sun-angle grid);
* the CRS twice, as real products of different CPM versions carry it: ``proj:epsg`` on every
  band and the root attribute ``other_metadata.horizontal_CRS_code = "EPSG:32632"``. The
  ``crs=False`` variant carries neither, for the "no CRS" failure path;
* root ``stac_discovery`` attributes (id, datetime, bbox) as in real products;
* consolidated metadata, so the store can be opened over plain HTTP (no directory listing).

Pixel values are a deterministic function of position (smooth waves plus seeded noise, DN 1000
to ~7000), so any test can recompute them. With the default ``size=512`` the r10m grid is 512²
(5.12 km), r20m 256², r60m 128²; the upper-left corner is x=682000, y=5164000 (the area of the
Sentinel-2 sample catalog). ``size`` must be a multiple of 24 or of 6·2ⁿ... in practice any
multiple of 6 works for all three grids (r20m = size/2, r60m = size/6 rounded down).

``DIR/<name>.zarr`` is the store and ``DIR/<name>.json`` a STAC item whose ``product`` asset
points to it (relative href), for the ``stac_item`` input of the package. ``DIR/generator.json``
records the parameters, so a second call with the same ones returns at once.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

__all__ = [
    "BANDS",
    "EPSG",
    "ORIGIN",
    "EopfInputError",
    "band_values",
    "build_tree",
    "generate",
]

log = logging.getLogger(__name__)

EPSG = 32632
ORIGIN = (682000.0, 5164000.0)  # upper-left corner (x, y) in metres
DATETIME = "2024-06-15T10:15:59.024000Z"
BANDS: dict[str, tuple[int, tuple[str, ...]]] = {
    "r10m": (10, ("b02", "b03", "b04", "b08")),
    "r20m": (20, ("b05", "b06", "b07", "b8a", "b11", "b12")),
    "r60m": (60, ("b01", "b09")),
}
_GENERATOR_FILE = "generator.json"
_VERSION = 1


class EopfInputError(ValueError):
    """A parameter is out of range or the output folder holds something else."""


def _axis(origin: float, res: float, n: int, sign: int) -> np.ndarray:
    """Pixel-centre coordinates: the first centre is half a pixel in from the corner."""
    return origin + sign * (np.arange(n, dtype="float64") + 0.5) * res


def band_values(band: str, rows: int, cols: int) -> np.ndarray:
    """The uint16 DN of ``band`` on a ``rows`` × ``cols`` grid; deterministic, so tests can recompute it."""
    seed = sum(ord(c) * 31**i for i, c in enumerate(band)) % 2**32
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:rows, 0:cols].astype("float64")
    wave = np.sin(xx / max(cols, 1) * 6.3 + seed % 7) * np.cos(yy / max(rows, 1) * 4.1 + seed % 5)
    values = 3000 + 1500 * wave + (seed % 1000) + rng.integers(0, 1000, size=(rows, cols))
    return values.clip(1000, 65535).astype("uint16")


def _grid(res: int, n: int, crs: bool) -> dict[str, Any]:
    x = _axis(ORIGIN[0], res, n, +1)
    y = _axis(ORIGIN[1], res, n, -1)
    return {
        "x": ("x", x, {"units": "m", "standard_name": "projection_x_coordinate"}),
        "y": ("y", y, {"units": "m", "standard_name": "projection_y_coordinate"}),
    }


def _band_attrs(band: str, crs: bool) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        "long_name": f"TOA reflectance of {band.upper()} (DN)",
        "units": "digital_counts",
    }
    if crs:
        attrs["proj:epsg"] = EPSG
    return attrs


def build_tree(size: int = 512, crs: bool = True) -> xr.DataTree:
    """The product as an in-memory DataTree (``size`` is the r10m width and height in pixels)."""
    if size < 12 or size % 2:
        raise EopfInputError(f"size must be an even number of pixels, at least 12; got {size}")
    nodes: dict[str, xr.Dataset] = {}
    for name, (res, bands) in BANDS.items():
        n = size * 10 // res
        coords = _grid(res, n, crs)
        data = {b: (("y", "x"), band_values(b, n, n), _band_attrs(b, crs)) for b in bands}
        nodes[f"/measurements/reflectance/{name}"] = xr.Dataset(data, coords=coords)
    n20 = size // 2
    scl = np.full((n20, n20), 4, dtype="uint8")
    scl[: n20 // 4, : n20 // 4] = 8
    nodes["/quality/mask/r20m"] = xr.Dataset(
        {"scl": (("y", "x"), scl, _band_attrs("scl", crs))}, coords=_grid(20, n20, crs)
    )
    angles = np.linspace(30.0, 31.0, 9 * 9).reshape(9, 9)
    nodes["/conditions/geometry"] = xr.Dataset(
        {"sun_zenith": (("angle_y", "angle_x"), angles, {"units": "deg"})},
        coords={"angle_x": ("angle_x", np.arange(9) * 5000.0), "angle_y": ("angle_y", np.arange(9) * 5000.0)},
    )
    root = xr.Dataset(attrs=_root_attrs(size, crs))
    return xr.DataTree.from_dict({"/": root, **nodes})


def _bbox_lonlat(size: int) -> list[float]:
    from pyproj import Transformer

    extent = size * 10.0
    to_wgs84 = Transformer.from_crs(EPSG, 4326, always_xy=True)
    xs = [ORIGIN[0], ORIGIN[0] + extent]
    ys = [ORIGIN[1] - extent, ORIGIN[1]]
    lons, lats = to_wgs84.transform([xs[0], xs[1], xs[0], xs[1]], [ys[0], ys[0], ys[1], ys[1]])
    return [round(min(lons), 6), round(min(lats), 6), round(max(lons), 6), round(max(lats), 6)]


def _root_attrs(size: int, crs: bool) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        "stac_discovery": {
            "id": "S2B_MSIL2A_20240615T101559_N0510_R065_T32TPS_synthetic",
            "bbox": _bbox_lonlat(size),
            "properties": {
                "datetime": DATETIME,
                "platform": "sentinel-2b",
                "constellation": "sentinel-2",
                "instruments": ["msi"],
                "product:type": "S2MSI2A",
            },
        },
        "other_metadata": {"product_origin": "eopack synthetic EOPF-like product"},
    }
    if crs:
        attrs["other_metadata"]["horizontal_CRS_code"] = f"EPSG:{EPSG}"
    return attrs


def _stac_item(name: str, tree: xr.DataTree) -> dict[str, Any]:
    """A STAC item whose ``product`` asset is the store (what a STAC catalogue of EOPF lists)."""
    discovery = tree.attrs["stac_discovery"]
    west, south, east, north = discovery["bbox"]
    return {
        "type": "Feature",
        "stac_version": "1.1.0",
        "stac_extensions": [],
        "id": name,
        "geometry": {
            "type": "Polygon",
            "coordinates": [[[west, south], [east, south], [east, north], [west, north], [west, south]]],
        },
        "bbox": [west, south, east, north],
        "properties": {"datetime": discovery["properties"]["datetime"]},
        "links": [],
        "assets": {
            "product": {
                "href": f"./{name}.zarr",
                "type": "application/vnd+zarr",
                "title": "EOPF Zarr product",
                "roles": ["data"],
            }
        },
    }


def _made_here(marker: Path) -> bool:
    """True if ``marker`` was written by this generator (not, e.g., by the S2 catalog's)."""
    try:
        return json.loads(marker.read_text()).get("kind") == "eopf"
    except (OSError, ValueError, AttributeError):
        return False


def _parameters(name: str, size: int, zarr_format: int, crs: bool) -> dict[str, Any]:
    return {
        "kind": "eopf",
        "version": _VERSION,
        "name": name,
        "size": size,
        "zarr_format": zarr_format,
        "crs": crs,
    }


def generate(
    out: Path,
    name: str = "sample-eopf",
    size: int = 512,
    zarr_format: int = 3,
    crs: bool = True,
    force: bool = False,
) -> Path:
    """Write ``out/<name>.zarr`` (and its STAC item) unless it is already there; return the store path.

    Built in a temporary folder next to ``out`` and renamed into place, so readers never see half
    a store. ``out`` is replaced only if it is empty or was made by this generator.

    Raises:
        EopfInputError: a parameter is out of range, or ``out`` holds something else.
    """
    if zarr_format not in (2, 3):
        raise EopfInputError(f"zarr_format must be 2 or 3; got {zarr_format}")
    if not name or "/" in name:
        raise EopfInputError(f"name must be a plain file name; got {name!r}")
    out = Path(out).absolute()
    store = out / f"{name}.zarr"
    parameters = _parameters(name, size, zarr_format, crs)
    marker = out / _GENERATOR_FILE
    if not force and marker.exists() and store.exists():
        try:
            if json.loads(marker.read_text()) == parameters:
                log.info("%s is up to date", store)
                return store
        except ValueError:
            pass
    if out.exists() and any(out.iterdir()) and not _made_here(marker):
        raise EopfInputError(
            f"{out} exists and was not made by eopack-sample-data --geozarr; "
            "choose another --out or remove it"
        )
    tree = build_tree(size, crs)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-staging-", dir=out.parent))
    try:
        log.info(
            "writing %s (r10m %d², Zarr v%d, CRS %s)", store, size, zarr_format, "yes" if crs else "none"
        )
        # consolidated: plain HTTP servers cannot list folders, so readers need the metadata index
        with warnings.catch_warnings():  # zarr: "consolidated metadata is not part of the v3 spec" (known)
            warnings.simplefilter("ignore")
            tree.to_zarr(staging / store.name, mode="w", consolidated=True, zarr_format=zarr_format)
        (staging / f"{name}.json").write_text(json.dumps(_stac_item(name, tree), indent=2) + "\n")
        (staging / _GENERATOR_FILE).write_text(json.dumps(parameters, indent=2) + "\n")
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return store
