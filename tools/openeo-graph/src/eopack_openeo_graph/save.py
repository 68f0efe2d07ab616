"""``save_result``: a computed data cube -> COGs (or netCDF) as STAC items in the staging folder.

openEO leaves the file layout to the backend. Ours is the one every eopack package writes: one
STAC item per time step (``openeo-YYYYMMDD``; one ``openeo-result`` item when the graph reduced time
away), one single-band COG asset per band label (``data`` when the graph reduced the bands away,
as an NDVI graph does). The cube is computed here, on the Dask client the run set up; nothing is
published before ``core.run`` has saved the whole catalog (eo-common's staged output).
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pystac
import xarray as xr
from pystac.extensions.projection import ProjectionExtension
from pystac.extensions.raster import RasterExtension
from rasterio.warp import transform_bounds

from eopack_eo_common.access import asset_errors
from eopack_eo_common.errors import ToolInputError
from eopack_eo_common.raster import band_statistics, write_cog

__all__ = ["FORMATS", "ResultWriter"]

log = logging.getLogger(__name__)

FORMATS = {
    "gtiff": "GTiff",
    "geotiff": "GTiff",
    "tiff": "GTiff",
    "cog": "GTiff",
    "netcdf": "netCDF",
    "nc": "netCDF",
}
_MEDIA_NETCDF = "application/netcdf"


def _safe(label: Any) -> str:
    """A band label as an asset key and file name."""
    text = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(label)).strip("._")
    return text or "band"


def _utc(value: np.datetime64) -> dt.datetime:
    seconds = value.astype("datetime64[us]").astype("int64")
    return dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=int(seconds))


@dataclass
class ResultWriter:
    """The ``save_result`` process, writing under ``stage`` and collecting the STAC items."""

    stage: Path
    version: str
    provenance: Callable[[], tuple[list[pystac.Item], dt.datetime | None, dt.datetime | None]]
    items: list[pystac.Item] = field(default_factory=list)

    def save_result(self, data: Any, format: str = "GTiff", options: dict[str, Any] | None = None) -> bool:
        """Compute ``data`` and write it; returns True as the openEO process does."""
        kind = FORMATS.get(str(format).lower())
        if kind is None:
            raise ToolInputError(f"save_result format {format!r} is not supported; use one of GTiff, netCDF")
        if not isinstance(data, xr.DataArray):
            raise ToolInputError(
                f"save_result needs a raster data cube, got {type(data).__name__}; "
                "vector cubes and single values cannot be saved as GTiff/netCDF"
            )
        cube = _spatial_last(data)
        log.info("save_result: computing %s %s as %s", cube.dtype, dict(cube.sizes), kind)
        with asset_errors():
            computed = cube.compute()
        if computed.dtype == bool:
            computed = computed.astype("uint8")
        if kind == "GTiff":
            self._gtiff(computed)
        else:
            self._netcdf(computed)
        return True

    def _item_id(self, name: str) -> str:
        taken = {i.id for i in self.items}
        candidate, n = name, 2
        while candidate in taken:
            candidate, n = f"{name}-{n}", n + 1
        return candidate

    def _gtiff(self, cube: xr.DataArray) -> None:
        time_dim = next(iter(cube.openeo.temporal_dims), None)
        band_dim = next(iter(cube.openeo.band_dims), None)
        steps: list[np.datetime64 | None] = list(cube[time_dim].values) if time_dim else [None]
        days = {_utc(s).date() for s in steps if s is not None}
        daily = len(days) == len(steps)
        for index, when in enumerate(steps):
            layer = cube.isel({time_dim: index}) if time_dim else cube
            if when is None:
                name = "openeo-result"
            else:
                name = f"openeo-{_utc(when):{'%Y%m%d' if daily else '%Y%m%dT%H%M%S'}}"
            item_id = self._item_id(name)
            folder = self.stage / item_id
            folder.mkdir()
            labels = [str(v) for v in cube[band_dim].values] if band_dim else ["data"]
            assets = []
            for b, label in enumerate(labels):
                pixels = np.asarray((layer.isel({band_dim: b}) if band_dim else layer).values)
                key = _safe(label)
                path = write_cog(folder / f"{key}.tif", pixels, *_grid(cube), descriptions=[str(label)])
                assets.append((key, str(label), path, pixels))
            self.items.append(self._item(item_id, cube, None if when is None else _utc(when), assets))
            log.info("save_result: wrote %s (%s)", item_id, ", ".join(a[0] for a in assets))

    def _netcdf(self, cube: xr.DataArray) -> None:
        item_id = self._item_id("openeo-result")
        folder = self.stage / item_id
        folder.mkdir()
        path = folder / "result.nc"
        out = cube.copy()
        out.attrs = {}
        out.name = out.name if isinstance(out.name, str) and out.name else "data"
        # netCDF3 via scipy: available without the netCDF C library in the container.
        out.to_netcdf(path, engine="scipy")
        item = self._item(item_id, cube, None, [])
        item.add_asset(
            "data", pystac.Asset(str(path), title="result (netCDF)", media_type=_MEDIA_NETCDF, roles=["data"])
        )
        self.items.append(item)
        log.info("save_result: wrote %s/result.nc", item_id)

    def _item(
        self,
        item_id: str,
        cube: xr.DataArray,
        when: dt.datetime | None,
        assets: Sequence[tuple[str, str, Path, np.ndarray]],
    ) -> pystac.Item:
        transform, crs = _grid(cube)
        rows, cols = cube.sizes[cube.openeo.y_dim], cube.sizes[cube.openeo.x_dim]
        bounds = (
            transform.c,
            transform.f + transform.e * rows,
            transform.c + transform.a * cols,
            transform.f,
        )
        west, south, east, north = transform_bounds(crs, "EPSG:4326", *bounds, densify_pts=21)
        geometry = {
            "type": "Polygon",
            "coordinates": [[[west, south], [east, south], [east, north], [west, north], [west, south]]],
        }
        sources, first, last = self.provenance()
        properties: dict[str, Any] = {"processing:software": {"eopack-openeo-graph": self.version}}
        if when is None:
            start, end = first or dt.datetime.now(dt.UTC), last or dt.datetime.now(dt.UTC)
            properties["start_datetime"] = start.isoformat().replace("+00:00", "Z")
            properties["end_datetime"] = end.isoformat().replace("+00:00", "Z")
        item = pystac.Item(item_id, geometry, [west, south, east, north], when, properties)
        for key, label, path, pixels in assets:
            asset = pystac.Asset(str(path), title=label, media_type=pystac.MediaType.COG, roles=["data"])
            item.add_asset(key, asset)
            RasterExtension.ext(asset, add_if_missing=True)
            band: dict[str, Any] = {"data_type": pixels.dtype.name}
            if np.issubdtype(pixels.dtype, np.floating):
                # The raster extension spells NaN nodata as the string "nan" (JSON has no NaN).
                band.update(nodata="nan", statistics=band_statistics(pixels))
            band["spatial_resolution"] = abs(transform.a)
            asset.extra_fields["raster:bands"] = [band]
        proj = ProjectionExtension.ext(item, add_if_missing=True)
        proj.code, proj.shape, proj.transform = crs, [rows, cols], list(transform)[:6]
        used = [s for s in sources if when is None or (s.datetime and s.datetime.date() == when.date())]
        item.properties["eopack:source_items"] = [s.id for s in used]
        for source in used:
            href = source.get_self_href()
            # Only lasting addresses: a staged input's path is a runner's temporary copy.
            if href and href.startswith(("http://", "https://")):
                item.add_link(pystac.Link("derived_from", href, media_type=pystac.MediaType.GEOJSON))
        return item


def _spatial_last(data: xr.DataArray) -> xr.DataArray:
    """Order dims (t, bands, y, x); any other dimension cannot become a GeoTIFF band set."""
    accessor = data.openeo
    x, y = accessor.x_dim, accessor.y_dim
    if x is None or y is None:
        raise ToolInputError(
            f"save_result needs a cube with spatial dimensions x and y; got dimensions {list(data.dims)}"
        )
    extra = [d for d in data.dims if d not in (*accessor.temporal_dims[:1], *accessor.band_dims[:1], x, y)]
    if extra:
        raise ToolInputError(
            f"save_result cannot write dimension(s) {', '.join(map(str, extra))}: a result may have t, bands, y, x; "
            "reduce or drop the others first"
        )
    order = [*accessor.temporal_dims[:1], *accessor.band_dims[:1], y, x]
    return data.transpose(*order)


def _grid(cube: xr.DataArray) -> tuple[Any, str]:
    """The affine transform and CRS of the cube's x/y grid (odc-geo's accessor)."""
    geobox = cube.odc.geobox
    if geobox is None or geobox.crs is None:
        raise ToolInputError("save_result: the cube has lost its georeferencing (no CRS on x/y)")
    epsg = geobox.crs.epsg
    return geobox.affine, f"EPSG:{epsg}" if epsg else geobox.crs.to_wkt()
