"""``load_collection``: an openEO collection id -> STAC search (eo-common) -> lazy float32 data cube.

What the openEO processes expect and what we guarantee:

* dims ``t``, ``bands``, ``y``, ``x`` (the names openEO clients use: ``reduce_dimension(dimension="t")``
  is what the Python client writes); band labels are the names the graph asked for, so a later
  ``array_element(label="B04")`` finds them;
* reflectance in **float32** with the product's scale/offset applied and nodata as NaN (eo-common's
  ``load_reflectance``): the processes do plain arithmetic, and on the raw uint16 numbers
  ``B08 - B04`` wraps around silently, giving a wrong NDVI with no error;
* ``SCL`` can be requested as a band (its class codes as float32, exact) so a graph can build its own
  cloud mask with ``mask``.

The parser hands us pydantic objects: ``spatial_extent`` is a ``BoundingBox`` whose ``crs`` is WKT
(EPSG:4326 unless the graph says otherwise), ``temporal_extent`` a ``TemporalInterval`` of
timezone-aware (UTC) pendulum datetimes whose end is *exclusive* (openEO) while eo-common's search
end is inclusive.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pystac
import xarray as xr

from eopack_eo_common import archive
from eopack_eo_common.errors import ToolInputError
from eopack_eo_common.s2 import BANDS, dominant_epsg, load_reflectance
from eopack_eo_common.search import Search, collection_ids, select_items

__all__ = [
    "DEFAULT_COLLECTION_MAP",
    "CollectionLoader",
    "Loaded",
    "bbox_lonlat",
    "parse_collection_map",
    "temporal_range",
]

log = logging.getLogger(__name__)

# The openEO name of Sentinel-2 L2A on the big backends -> the STAC collection of the sample data
# (and of Earth Search / Planetary Computer).
DEFAULT_COLLECTION_MAP = {"SENTINEL2_L2A": "sentinel-2-l2a"}
SCL = "SCL"
# Open-ended temporal extents still need bounds for the search.
_EARLIEST = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_LATEST = dt.datetime(2100, 1, 1, tzinfo=dt.UTC)


def parse_collection_map(text: str | None) -> dict[str, str]:
    """``OPENEO_ID=stac-id`` pairs separated by commas or spaces, on top of the default map.

    >>> parse_collection_map("S2=sentinel-2-l2a, L8=landsat-c2-l2")["L8"]
    'landsat-c2-l2'
    >>> parse_collection_map(None)
    {'SENTINEL2_L2A': 'sentinel-2-l2a'}
    """
    mapping = dict(DEFAULT_COLLECTION_MAP)
    for pair in (text or "").replace(",", " ").split():
        key, sep, value = pair.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ToolInputError(
                f"collection_map entry {pair!r} must look like OPENEO_ID=stac-collection-id, "
                "e.g. SENTINEL2_L2A=sentinel-2-l2a"
            )
        mapping[key.strip()] = value.strip()
    return mapping


def bbox_lonlat(extent: Any) -> tuple[float, float, float, float]:
    """``spatial_extent`` (a parsed BoundingBox, or a plain dict) as west, south, east, north in degrees."""
    from openeo_pg_parser_networkx.pg_schema import BoundingBox
    from pydantic import ValidationError

    if extent is None:
        raise ToolInputError(
            "load_collection needs a spatial_extent {west, south, east, north}; "
            "an unbounded load of a whole collection is refused"
        )
    if isinstance(extent, dict):
        try:
            extent = BoundingBox(**extent)
        except (ValidationError, TypeError) as err:
            raise ToolInputError(
                f"load_collection spatial_extent must be a bounding box {{west, south, east, north[, crs]}}; "
                f"got {extent!r} ({str(err).splitlines()[0]})"
            ) from None
    if not isinstance(extent, BoundingBox):
        raise ToolInputError(
            f"load_collection spatial_extent must be a bounding box, got {type(extent).__name__}"
        )
    from pyproj import CRS

    crs = CRS.from_user_input(extent.crs)
    west, south, east, north = extent.west, extent.south, extent.east, extent.north
    if crs.to_epsg() != 4326:
        from rasterio.crs import CRS as RioCRS
        from rasterio.warp import transform_bounds

        west, south, east, north = transform_bounds(
            RioCRS.from_wkt(crs.to_wkt()), "EPSG:4326", west, south, east, north, densify_pts=21
        )
    if west >= east or south >= north:
        raise ToolInputError(
            f"load_collection spatial_extent must have west < east and south < north; "
            f"got west={extent.west}, south={extent.south}, east={extent.east}, north={extent.north}"
        )
    return float(west), float(south), float(east), float(north)


def _instant(value: Any) -> dt.datetime | None:
    """A pendulum/pydantic/str/date instant as a stdlib UTC datetime."""
    root = getattr(value, "root", value)
    if root is None:
        return None
    if isinstance(root, str):
        try:
            root = dt.datetime.fromisoformat(root.replace("Z", "+00:00"))
        except ValueError:
            raise ToolInputError(
                f"load_collection temporal_extent: {value!r} is not a date or date-time"
            ) from None
    if isinstance(root, dt.datetime):
        if root.tzinfo is None:
            return root.replace(tzinfo=dt.UTC)
        # pendulum's DateTime is a datetime subclass; the timestamp makes it a plain one.
        return dt.datetime.fromtimestamp(root.timestamp(), dt.UTC)
    if isinstance(root, dt.date):
        return dt.datetime.combine(root, dt.time.min, dt.UTC)
    raise ToolInputError(f"load_collection temporal_extent: {value!r} is not a date or date-time")


def temporal_range(extent: Any) -> tuple[dt.datetime, dt.datetime]:
    """openEO ``[start, end)`` as eo-common's inclusive ``(start, end)``; ``null`` ends are open.

    >>> s, e = temporal_range(["2024-06-01", "2024-06-30"])
    >>> s.isoformat(), e.isoformat()
    ('2024-06-01T00:00:00+00:00', '2024-06-29T23:59:59.999999+00:00')
    """
    if extent is None:
        return _EARLIEST, _LATEST
    parts = list(extent)
    if len(parts) != 2:
        raise ToolInputError(f"load_collection temporal_extent must be [start, end]; got {extent!r}")
    start, end = _instant(parts[0]), _instant(parts[1])
    first = start or _EARLIEST
    last = end - dt.timedelta(microseconds=1) if end is not None else _LATEST
    if last < first:
        raise ToolInputError(
            f"load_collection temporal_extent is empty: end {end} is not after start {start} (the end is exclusive)"
        )
    return first, last


def _native_resolution(items: Sequence[pystac.Item], bands: Sequence[str]) -> float:
    """The finest pixel size of the requested bands, from gsd / raster:bands / proj:transform."""
    sizes = []
    item = items[0]
    for band in bands:
        key = archive.find_asset(item, band)
        if key is None:
            continue
        fields = item.assets[key].extra_fields
        raster = (fields.get("raster:bands") or fields.get("bands") or [{}])[0] or {}
        grid = archive.asset_grid(item, key)
        for candidate in (
            fields.get("gsd"),
            raster.get("spatial_resolution") or raster.get("raster:spatial_resolution"),
            fields.get("raster:spatial_resolution"),
            abs(grid[0][0]) if grid else None,
            item.properties.get("gsd"),
        ):
            if candidate:
                sizes.append(float(candidate))
                break
    if not sizes:
        raise ToolInputError("the items carry no gsd, raster:bands spatial_resolution or proj:transform")
    return min(sizes)


@dataclass
class Loaded:
    """What one ``load_collection`` call read: for the provenance of the results."""

    openeo_id: str
    collection: str
    items: list[pystac.Item]
    bands: list[str]
    epsg: int
    resolution: float

    @property
    def datetimes(self) -> list[dt.datetime]:
        return [i.datetime for i in self.items if i.datetime is not None]


@dataclass
class CollectionLoader:
    """The ``load_collection`` process, bound to where the collections come from."""

    stac_api: str | None = None
    input_catalog: Path | None = None
    collection_map: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_COLLECTION_MAP))
    chunk: int = 1024
    loaded: list[Loaded] = field(default_factory=list)

    def _collection(self, openeo_id: str) -> str:
        """The STAC collection of an openEO id: mapped, or used as is when the source has it."""
        if openeo_id in self.collection_map:
            return self.collection_map[openeo_id]
        offered = collection_ids(self.stac_api, self.input_catalog)
        if openeo_id in offered:
            return openeo_id
        mapped = [f"{k} (-> {v})" for k, v in sorted(self.collection_map.items())]
        raise ToolInputError(
            f"unknown collection {openeo_id!r}; available: {', '.join([*mapped, *offered])} "
            "(map more with collection_map OPENEO_ID=stac-collection-id)"
        )

    def load_collection(
        self,
        id: str,
        spatial_extent: Any = None,
        temporal_extent: Any = None,
        bands: Sequence[str] | None = None,
        properties: Any = None,
    ) -> xr.DataArray:
        """Search, then load lazily; see the module doc for what the cube looks like."""
        if properties:
            raise ToolInputError(
                "load_collection properties (metadata filters) are not supported; "
                "filter pixels with mask/filter_* processes instead"
            )
        collection = self._collection(str(id))
        start, end = temporal_range(temporal_extent)
        bbox = bbox_lonlat(spatial_extent)
        items = select_items(Search(collection, bbox, start, end), self.stac_api, self.input_catalog)
        labels = [str(b) for b in bands] if bands else _default_bands(items)
        if not labels:
            raise ToolInputError('load_collection bands is empty; name at least one band, e.g. ["B04"]')
        ids = [_band_asset(b) for b in labels]
        reflectance = [i for i in ids if i != SCL]
        with_scl = SCL in ids
        # load_reflectance needs one reflectance band for its grid; it stays unread if not selected.
        loadable = list(dict.fromkeys(reflectance)) or [_first_band(items)]
        epsg = dominant_epsg(items)
        resolution = _native_resolution(items, ids)
        cube, scl = load_reflectance(
            items, loadable, bbox, epsg, resolution, chunk=self.chunk, with_scl=with_scl
        )
        layers = []
        for asset in ids:
            if asset == SCL:
                assert scl is not None
                layer = scl.astype("float32")
            else:
                layer = cube.sel(band=asset, drop=True)
            layers.append(layer.drop_vars("band", errors="ignore"))
        data = xr.concat(layers, dim=xr.Variable("bands", labels), coords="minimal", compat="override")
        data = data.rename({"time": "t"}).transpose("t", "bands", "y", "x").rename(str(id))
        data.attrs = {}
        self.loaded.append(Loaded(str(id), collection, list(items), labels, epsg, resolution))
        log.info(
            "load_collection %s -> %s: %d item(s), bands %s, cube %s (float32, EPSG:%d, %g m)",
            id, collection, len(items), ",".join(labels), dict(data.sizes), epsg, resolution,
        )  # fmt: skip
        return data


def _band_asset(name: str) -> str:
    try:
        return archive.band_id(name)
    except ToolInputError as err:
        raise ToolInputError(f"load_collection: {err}; or SCL (scene classification)") from None


def _first_band(items: Sequence[pystac.Item]) -> str:
    for bid in BANDS.values():
        if archive.find_asset(items[0], bid) is not None:
            return bid
    raise ToolInputError(
        f"item {items[0].id} has no Sentinel-2 reflectance band; it offers: {archive.offered(items[0])}"
    )


def _default_bands(items: Sequence[pystac.Item]) -> list[str]:
    """No ``bands`` given: every Sentinel-2 reflectance band the items have (by meaning), then SCL."""
    present = [bid for bid in sorted(set(BANDS.values())) if archive.find_asset(items[0], bid) is not None]
    return [*present, *([SCL] if archive.find_asset(items[0], SCL) is not None else [])]
