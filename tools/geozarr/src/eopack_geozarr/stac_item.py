"""Step 6: the STAC item describing the store, and the optional tarball."""

from __future__ import annotations

import datetime as dt
import logging
import tarfile
from collections.abc import Mapping
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pystac
import xarray as xr
from pystac.extensions.projection import ProjectionExtension

from .job import VERSION, ZARR_MEDIA_TYPE, GeozarrJob
from .verify import Level

log = logging.getLogger(__name__)


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
