"""Synthetic Sentinel-2 L2A time series with a STAC catalog, for demos and tests.

No EO archive is reachable from the build machines, so eopack makes its own inputs (DESIGN.md §6).
The scene is small, deterministic and tells a story whose numbers tests can assert.

The grid (UTM 32N, EPSG:32632)
    ``tiles`` square tiles of ``tile_size`` pixels at ``resolution`` metres. Tile 0's upper-left
    corner is x=682000, y=5164000; each further tile sits ``extent - 1200`` m east, so neighbours
    overlap by 1200 m. With the defaults (600 px at 20 m) tile 0 spans x 682000–694000,
    y 5152000–5164000 and covers the seed bbox 11.4–11.5 E, 46.5–46.6 N. Tiles are named 32TPS,
    32TQS, 32TRS, then on through the MGRS letters — synthetic names, not the real MGRS tiles.

The dates
    Days 05, 15 and 25 of ``months`` months from ``start``, at 10:15:59Z, all from S2B.

The ground (identical on every tile that sees it; a pixel belongs to a box if its centre does)
    * bare soil everywhere (SCL 5): B02 0.08, B03 0.10, B04 0.12, B08 0.20, ±0.02 in smooth
      kilometre-scale waves, a few percent darker or brighter from date to date;
    * a vegetated field, x 684000–686000, y 5156000–5158000 (SCL 4) with the same reflectances
      on every date: B02 0.03, B03 0.06, B04 0.04, B08 0.40 (DN 1300 1600 1400 5000), so its NDVI
      is 0.36 / 0.44 = 9/11 exactly;
    * a lake, x 689000–690500, y 5160000–5161500 (SCL 6): 0.05 0.04 0.03 0.01, NDVI −0.5.

The weather (seeded from the date string, so every run draws the same clouds)
    Clouds are wobbly blobs: SCL 9 core, SCL 8 rim, reflectance 0.5–0.7 in every band; each casts
    a shadow (SCL 3, 0.3 × the ground) 600 m west and 600 m south of itself. Thin cirrus (SCL 10)
    brightens the ground by 0.03–0.06. Per month:

    * day 05: a cloud deck over the south and east of tile 0 (``eo:cloud_cover`` > 40) and a
      cirrus band over the soil in the north-east; the field and the lake stay clear;
    * day 15: the first month's is the trap: one cloud covers the field and 200 m around it and
      nothing else is cloudy in tile 0, so ``eo:cloud_cover`` is below 10 while every field pixel
      is SCL 8 or 9 — a mosaic that filters scenes by cloud cover alone gets a white field. Later
      months have only fair-weather cumulus there;
    * day 25: the first month's has a slanted swath edge in tile 1 (no data, all bands and SCL
      0, east of it; tiles entirely beyond it are not produced, as with real orbits); later
      months have a small cloud whose shadow falls on the field's north-east corner.

    Fair-weather cumulus and cirrus are scattered over the grid on every date but never within
    300 m of the field or the lake, so the field is clear (all SCL 4) on at least two dates a month.

Files
    ``DIR/catalog.json`` → ``DIR/sentinel-2-l2a/collection.json`` → one folder per item holding
    ``<id>.json`` and B02, B03, B04, B08 (uint16, DN = reflectance × 10000 + 1000, as the real
    product since processing baseline 04.00) and SCL (uint8), all Cloud-Optimized GeoTIFFs with
    nodata 0. Every href is relative. ``style`` spells the STAC documents like a public archive
    (``pc``, ``earth-search``, ``stac-1.1``; see ``styles``); the pixels are the same in every style.
    ``processing_baseline`` before 04.00 (e.g. ``03.01``) writes DN = reflectance × 10000 without
    the +1000 and declares offset 0 (where the style declares one): same reflectances, old encoding. ``DIR/generator.json`` records the parameters, so a second
    call with the same parameters returns at once.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pystac
import rasterio
from rasterio.warp import transform, transform_bounds

from .scene import (
    BANDS,
    EPSG,
    FIELD_BBOX,
    FIELD_DN,
    FIELD_MARGIN,
    LAKE_BBOX,
    LAKE_DN,
    OFFSET,
    SCALE,
    SCL_CLASSES,
    SHADOW_OFFSET,
    SOIL_REFLECTANCE,
    Acquisition,
    Raster,
    Tile,
    acquisitions,
    render,
    tile_names,
    weather,
)
from .styles import DEFAULT_STYLE, STYLES, restyle_collection, restyle_item

__all__ = [
    "COLLECTION_ID",
    "FORMAT_VERSION",
    "SEED_BBOX",
    "TRUTH",
    "SampleDataInputError",
    "Target",
    "TileTruth",
    "Truth",
    "baseline_offset",
    "generate",
    "item_id",
    "truth",
]

log = logging.getLogger(__name__)

FORMAT_VERSION = 1  # bump whenever the output changes, so the fast path regenerates old data
COLLECTION_ID = "sentinel-2-l2a"
SEED_BBOX = (11.4, 46.5, 11.5, 46.6)  # lon/lat area of interest that tile 0 must cover
_MEDIA_COG = "image/tiff; application=geotiff; profile=cloud-optimized"
_BAND_INFO = {  # common name, centre wavelength (µm), band number
    "B02": ("blue", 0.49, 2),
    "B03": ("green", 0.56, 3),
    "B04": ("red", 0.665, 4),
    "B08": ("nir", 0.842, 8),
}
_EXTENSIONS = [
    "https://stac-extensions.github.io/eo/v1.1.0/schema.json",
    "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
    "https://stac-extensions.github.io/projection/v2.0.0/schema.json",
    "https://stac-extensions.github.io/grid/v1.1.0/schema.json",
    "https://stac-extensions.github.io/classification/v2.0.0/schema.json",
]
BASELINE = "05.10"  # processing baseline of the items; before 04.00 the DN carry no -1000 offset
_MIN_EXTENT = 12000.0  # metres: tile 0 must hold the field, the lake, the seed bbox and the weather plan
_GENERATOR_FILE = "generator.json"


class SampleDataInputError(ValueError):
    """A parameter is out of range; the message names it, the value and what is allowed."""


@dataclass(frozen=True)
class Target:
    """A ground feature with known values: where it is and what every clear pixel holds."""

    name: str
    bbox: tuple[float, float, float, float]  # UTM (minx, miny, maxx, maxy); pixel centres inside
    scl: int
    reflectance: dict[str, float]
    dn: dict[str, int]
    ndvi: float  # from the reflectances, in float64
    ndvi_float32: float  # from the DNs with scale/offset, computed in float32 throughout


@dataclass(frozen=True)
class TileTruth:
    name: str  # "32TPS"
    bounds: tuple[float, float, float, float]  # UTM (minx, miny, maxx, maxy)
    transform: tuple[float, float, float, float, float, float]  # GDAL order, as proj:transform
    shape: tuple[int, int]


@dataclass(frozen=True)
class Truth:
    """What the generator promises, for tests of the tools that consume its output.

    ``field_clear_dates`` and friends refer to tile 0, which holds the field and the lake.
    """

    crs: str
    epsg: int
    resolution: float
    tiles: tuple[TileTruth, ...]
    dates: tuple[dt.datetime, ...]
    item_ids: tuple[str, ...]  # every item written (tiles beyond the swath edge are missing)
    field: Target
    lake: Target
    soil: Target  # mean values; the soil varies by ±0.02 in space and a few percent in time
    scale: float
    offset: float
    cloudy_field_date: dt.datetime  # low eo:cloud_cover on tile 0, yet every field pixel is cloud
    cloudy_field_item: str
    cloudy_field_margin: float  # metres of cloud around the field on that date, at least
    field_clear_dates: tuple[dt.datetime, ...]  # every field pixel is SCL 4 on tile 0
    large_cloud_dates: tuple[dt.datetime, ...]  # eo:cloud_cover > 40 on tile 0, field clear
    field_shadow_dates: tuple[dt.datetime, ...]  # a cloud shadow (SCL 3) covers part of the field
    nodata_item: str  # tile 1 on the swath-edge date: a no-data strip at its east edge
    shadow_offset: tuple[float, float]
    seed_bbox: tuple[float, float, float, float]  # lon/lat, inside tile 0
    collection_id: str = COLLECTION_ID
    bands: tuple[str, ...] = BANDS

    def dn(self, reflectance: float) -> int:
        """The digital number that stores ``reflectance``.

        >>> TRUTH.dn(0.04)
        1400
        """
        return round((reflectance - self.offset) / self.scale)


def baseline_offset(baseline: str) -> float:
    """The reflectance offset of L2A DN at a processing baseline: -0.1 from 04.00 on, 0 before.

    >>> baseline_offset("05.10"), baseline_offset("03.01")
    (-0.1, 0.0)
    """
    return OFFSET if tuple(int(p) for p in baseline.split(".")) >= (4, 0) else 0.0


def item_id(date: dt.datetime, tile: str) -> str:
    """``S2B_MSIL2A_20240615T101559_T32TPS``, the product-id style of Earth Search items.

    >>> item_id(dt.datetime(2024, 6, 15, 10, 15, 59), "32TPS")
    'S2B_MSIL2A_20240615T101559_T32TPS'
    """
    return f"S2B_MSIL2A_{date.strftime('%Y%m%dT%H%M%S')}_T{tile}"


def _target(name: str, bbox: tuple[float, float, float, float], scl: int, dn: dict[str, int]) -> Target:
    reflectance = {b: round(v * SCALE + OFFSET, 6) for b, v in dn.items()}
    red, nir = reflectance["B04"], reflectance["B08"]
    scale, offset = np.float32(SCALE), np.float32(OFFSET)
    red32 = np.float32(dn["B04"]) * scale + offset
    nir32 = np.float32(dn["B08"]) * scale + offset
    return Target(
        name=name,
        bbox=bbox,
        scl=scl,
        reflectance=reflectance,
        dn=dict(dn),
        ndvi=(nir - red) / (nir + red),
        ndvi_float32=float((nir32 - red32) / (nir32 + red32)),
    )


def _check(months: int, tiles: int, tile_size: int, resolution: float, start: str) -> None:
    """Reject parameters the scene cannot honour, with one line saying what is allowed."""
    if not 1 <= months <= 120:
        raise SampleDataInputError(f"months must be between 1 and 120, got {months}")
    if not 2 <= tiles <= 24:
        raise SampleDataInputError(f"tiles must be between 2 and 24 (overlaps need two), got {tiles}")
    if tile_size < 64:
        raise SampleDataInputError(f"tile-size must be at least 64 pixels, got {tile_size}")
    if not (0 < resolution <= 100 and abs(100 / resolution - round(100 / resolution)) < 1e-9):
        raise SampleDataInputError(
            f"resolution must divide 100 m (e.g. 10, 20, 50, 100) so pixels align across tile "
            f"overlaps and field edges, got {resolution:g}"
        )
    if tile_size * resolution < _MIN_EXTENT:
        raise SampleDataInputError(
            f"tile-size × resolution must be at least {_MIN_EXTENT:.0f} m so tile 0 holds the field, "
            f"the lake and the seed bbox, got {tile_size} × {resolution:g} = {tile_size * resolution:.0f} m"
        )
    if tile_size > 20000:
        raise SampleDataInputError(f"tile-size must be at most 20000 pixels, got {tile_size}")
    match = re.fullmatch(r"(\d{4})-(\d{2})", start)
    if not match or not 1 <= int(match[2]) <= 12 or int(match[1]) < 2017:
        raise SampleDataInputError(f"start must be YYYY-MM (2017 or later), got {start!r}")


def _plan(
    months: int, tiles: int, tile_size: int, resolution: float, start: str
) -> tuple[list[Tile], list[Acquisition]]:
    _check(months, tiles, tile_size, resolution, start)
    grid = [Tile(i, name, tile_size, resolution) for i, name in enumerate(tile_names(tiles))]
    return grid, acquisitions(start, months)


def _swath_edge_x(grid: list[Tile]) -> float:
    """Where the swath edge crosses tile 1's centre line: 80 % of the way across it."""
    return grid[1].left + 0.8 * grid[1].extent


def _beyond_swath(tile: Tile, grid: list[Tile]) -> bool:
    """True if the whole tile lies east of the swath edge (it is then not produced)."""
    edge = _swath_edge_x(grid) + 0.15 * 0.5 * tile.extent  # the edge's easternmost point
    return tile.left >= edge


def truth(
    months: int = 2, tiles: int = 2, tile_size: int = 600, resolution: float = 20.0, start: str = "2024-06"
) -> Truth:
    """What ``generate`` with the same parameters writes; see the module docstring for the story."""
    grid, acqs = _plan(months, tiles, tile_size, resolution, start)
    ids = [
        item_id(a.date, t.name) for a in acqs for t in grid if not (a.swath_edge and _beyond_swath(t, grid))
    ]
    trap = next(a for a in acqs if a.role == "trap")
    edge = next(a for a in acqs if a.swath_edge)
    soil_dn = {b: round((v - OFFSET) / SCALE) for b, v in SOIL_REFLECTANCE.items()}
    return Truth(
        crs=f"EPSG:{EPSG}",
        epsg=EPSG,
        resolution=float(resolution),
        tiles=tuple(TileTruth(t.name, t.bounds, t.transform, (t.size, t.size)) for t in grid),
        dates=tuple(a.date for a in acqs),
        item_ids=tuple(ids),
        field=_target("field", FIELD_BBOX, 4, FIELD_DN),
        lake=_target("lake", LAKE_BBOX, 6, LAKE_DN),
        soil=_target("soil", grid[0].bounds, 5, soil_dn),
        scale=SCALE,
        offset=OFFSET,
        cloudy_field_date=trap.date,
        cloudy_field_item=item_id(trap.date, grid[0].name),
        cloudy_field_margin=FIELD_MARGIN,
        field_clear_dates=tuple(a.date for a in acqs if a.role in ("large-cloud", "fair")),
        large_cloud_dates=tuple(a.date for a in acqs if a.role == "large-cloud"),
        field_shadow_dates=tuple(a.date for a in acqs if a.role == "field-shadow"),
        nodata_item=item_id(edge.date, grid[1].name),
        shadow_offset=SHADOW_OFFSET,
        seed_bbox=SEED_BBOX,
    )


TRUTH = truth()


# --------------------------------------------------------------------------------------------- writing


def _write_cog(path: Path, array: np.ndarray, tile: Tile, resampling: str) -> None:
    """One-band COG: DEFLATE with a predictor (smooth fields shrink ~10×), 256² blocks, overviews."""
    profile: dict[str, Any] = {
        "driver": "COG",
        "width": tile.size,
        "height": tile.size,
        "count": 1,
        "dtype": array.dtype.name,
        "crs": f"EPSG:{EPSG}",
        "transform": rasterio.Affine(*tile.transform),
        "nodata": 0,
        "compress": "DEFLATE",
        "predictor": 2,
        "blocksize": 256,
        "overview_resampling": resampling,
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(array, 1)


def _footprint(tile: Tile) -> tuple[dict[str, Any], list[float]]:
    """The tile outline and bbox in lon/lat (rounded to ~1 cm so PROJ versions agree)."""
    minx, miny, maxx, maxy = tile.bounds
    xs, ys = transform(f"EPSG:{EPSG}", "EPSG:4326", [minx, maxx, maxx, minx], [maxy, maxy, miny, miny])
    ring = [[round(x, 7), round(y, 7)] for x, y in zip(xs, ys, strict=True)]
    ring.append(ring[0])
    bbox = transform_bounds(f"EPSG:{EPSG}", "EPSG:4326", *tile.bounds, densify_pts=21)
    return {"type": "Polygon", "coordinates": [ring]}, [round(v, 7) for v in bbox]


def _band_asset(band: str, resolution: float, offset: float = OFFSET) -> dict[str, Any]:
    common, wavelength, number = _BAND_INFO[band]
    return {
        "type": _MEDIA_COG,
        "title": f"Band {number} - {common.capitalize()} - {resolution:g}m",
        "roles": ["data", "reflectance"],
        "gsd": resolution,
        "eo:bands": [{"name": band, "common_name": common, "center_wavelength": wavelength}],
        "raster:bands": [
            {
                "nodata": 0,
                "data_type": "uint16",
                "scale": SCALE,
                "offset": offset,
                "spatial_resolution": resolution,
                "unit": "1",
            }
        ],
    }


def _scl_asset(resolution: float) -> dict[str, Any]:
    return {
        "type": _MEDIA_COG,
        "title": f"Scene classification map (SCL) - {resolution:g}m",
        "roles": ["data"],
        "gsd": resolution,
        "raster:bands": [{"nodata": 0, "data_type": "uint8", "spatial_resolution": resolution}],
        "classification:classes": [
            {"value": v, "name": name, "description": text} for v, (name, text) in SCL_CLASSES.items()
        ],
    }


def _item(tile: Tile, acq: Acquisition, raster: Raster, baseline: str = BASELINE) -> pystac.Item:
    geometry, bbox = _footprint(tile)
    item = pystac.Item(
        id=item_id(acq.date, tile.name),
        geometry=geometry,
        bbox=bbox,
        datetime=acq.date,
        properties={
            "platform": "sentinel-2b",
            "constellation": "sentinel-2",
            "instruments": ["msi"],
            "gsd": tile.resolution,
            "eo:cloud_cover": raster.cloud_cover,
            "proj:code": f"EPSG:{EPSG}",
            "proj:epsg": EPSG,
            "proj:shape": [tile.size, tile.size],
            "proj:transform": list(tile.transform),
            "proj:bbox": list(tile.bounds),
            "grid:code": f"MGRS-{tile.name}",
            "s2:mgrs_tile": tile.name,
            "s2:product_type": "S2MSI2A",
            "s2:processing_baseline": baseline,
            "eopack:synthetic": True,
        },
        stac_extensions=list(_EXTENSIONS),
        collection=COLLECTION_ID,
    )
    for band in BANDS:
        item.add_asset(
            band,
            pystac.Asset.from_dict(
                {"href": f"./{band}.tif", **_band_asset(band, tile.resolution, baseline_offset(baseline))}
            ),
        )
    item.add_asset("SCL", pystac.Asset.from_dict({"href": "./SCL.tif", **_scl_asset(tile.resolution)}))
    return item


def _collection(
    items: list[pystac.Item], grid: list[Tile], acqs: list[Acquisition], baseline: str = BASELINE
) -> pystac.Collection:
    boxes = [item.bbox for item in items if item.bbox]
    spatial = [
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[2] for b in boxes),
        max(b[3] for b in boxes),
    ]
    resolution = grid[0].resolution
    collection = pystac.Collection(
        id=COLLECTION_ID,
        title="Sentinel-2 Level-2A (synthetic)",
        description=(
            "Synthetic Sentinel-2 L2A surface reflectance made by eopack-sample-data for demos and "
            "tests: bare soil with a vegetated field and a lake, moving clouds with shadows, cirrus "
            "and a swath edge, on a UTM 32N grid. Not real data; tile names are synthetic."
        ),
        extent=pystac.Extent(
            pystac.SpatialExtent([spatial]),
            pystac.TemporalExtent([[acqs[0].date, acqs[-1].date]]),
        ),
        license="proprietary",
        keywords=["sentinel-2", "l2a", "synthetic", "eopack"],
        providers=[pystac.Provider("eopack", roles=[pystac.ProviderRole.PRODUCER, pystac.ProviderRole.HOST])],
        summaries=pystac.Summaries(
            {
                "platform": ["sentinel-2b"],
                "constellation": ["sentinel-2"],
                "instruments": ["msi"],
                "gsd": [resolution],
                "proj:code": [f"EPSG:{EPSG}"],
                "s2:mgrs_tile": [t.name for t in grid],
                "eo:bands": [
                    {"name": b, "common_name": _BAND_INFO[b][0], "center_wavelength": _BAND_INFO[b][1]}
                    for b in BANDS
                ],
                "eo:cloud_cover": {
                    "minimum": min(float(i.properties["eo:cloud_cover"]) for i in items),
                    "maximum": max(float(i.properties["eo:cloud_cover"]) for i in items),
                },
            }
        ),
        stac_extensions=list(_EXTENSIONS),
    )
    item_assets = {band: _band_asset(band, resolution, baseline_offset(baseline)) for band in BANDS}
    item_assets["SCL"] = _scl_asset(resolution)
    collection.extra_fields["item_assets"] = item_assets
    return collection


def _add_epsg(doc: dict[str, Any]) -> None:
    """Put ``proj:epsg`` next to ``proj:code``: stackstac 0.5 reads only the former (DESIGN.md §8)."""
    props = doc.get("properties", {})
    if "proj:code" in props:
        rebuilt: dict[str, Any] = {}
        for key, value in props.items():
            rebuilt[key] = value
            if key == "proj:code":
                rebuilt["proj:epsg"] = int(str(value).split(":", 1)[1])
        doc["properties"] = rebuilt


# ------------------------------------------------------------------------------------ the fast path


def _parameters(months: int, tiles: int, tile_size: int, resolution: float, start: str) -> dict[str, Any]:
    return {
        "months": months,
        "tiles": tiles,
        "tile_size": tile_size,
        "resolution": float(resolution),
        "start": start,
    }


def _is_current(out: Path, parameters: dict[str, Any]) -> bool:
    """True if ``out`` holds a complete catalog made by this generator version with these parameters."""
    try:
        record = json.loads((out / _GENERATOR_FILE).read_text())
    except (OSError, ValueError):
        return False
    if record.get("format_version") != FORMAT_VERSION or record.get("parameters") != parameters:
        return False
    files = record.get("files", {})
    try:
        return bool(files) and all((out / rel).stat().st_size == size for rel, size in files.items())
    except OSError:
        return False


def _ours_or_empty(out: Path) -> bool:
    return not out.exists() or (out.is_dir() and (not any(out.iterdir()) or (out / _GENERATOR_FILE).exists()))


# ----------------------------------------------------------------------------------------- generate


def generate(
    out: Path,
    months: int = 2,
    tiles: int = 2,
    tile_size: int = 600,
    resolution: float = 20.0,
    start: str = "2024-06",
    force: bool = False,
    style: str = DEFAULT_STYLE,
    processing_baseline: str = BASELINE,
) -> Path:
    """Write the sample catalog to ``out`` (unless it is already there) and return its catalog.json.

    The catalog is built in a temporary folder next to ``out`` and renamed into place at the end,
    so readers never see half a catalog. ``out`` is replaced only if it is empty or was made by
    this generator; anything else is refused rather than deleted.

    Raises:
        SampleDataInputError: a parameter is out of range, or ``out`` holds something else.
    """
    out = Path(out).absolute()
    grid, acqs = _plan(months, tiles, tile_size, resolution, start)
    if style not in STYLES:
        raise SampleDataInputError(f"style must be one of {', '.join(STYLES)}, got {style!r}")
    parameters = _parameters(months, tiles, tile_size, resolution, start)
    if not re.fullmatch(r"\d\d\.\d\d", processing_baseline):
        raise SampleDataInputError(f"processing baseline must look like 05.10, got {processing_baseline!r}")
    # the defaults' record stays as it was, so existing data is reused
    if style != DEFAULT_STYLE:
        parameters["style"] = style
    if processing_baseline != BASELINE:
        parameters["processing_baseline"] = processing_baseline
    if not force and _is_current(out, parameters):
        log.info("%s is up to date", out)
        return out / "catalog.json"
    if not _ours_or_empty(out):
        raise SampleDataInputError(
            f"{out} exists and was not made by eopack-sample-data (no {_GENERATOR_FILE}); "
            "choose another --out or remove it"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-staging-", dir=out.parent))
    try:
        _build(staging, grid, acqs, parameters, style, processing_baseline)
        _replace(staging, out, parameters)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out / "catalog.json"


def _build(
    root: Path,
    grid: list[Tile],
    acqs: list[Acquisition],
    parameters: dict[str, Any],
    style: str = DEFAULT_STYLE,
    baseline: str = BASELINE,
) -> None:
    items: list[pystac.Item] = []
    shift = round(baseline_offset(baseline) / SCALE - OFFSET / SCALE)  # 0, or +1000 DN before 04.00
    collection_dir = root / COLLECTION_ID
    edge_x = _swath_edge_x(grid)
    for n, acq in enumerate(acqs, 1):
        blobs = weather(acq, grid)
        log.info("date %d/%d %s (%s): %d clouds", n, len(acqs), acq.date.date(), acq.role, len(blobs))
        for tile in grid:
            if acq.swath_edge and _beyond_swath(tile, grid):
                continue
            raster = render(tile, acq, blobs, edge_x if acq.swath_edge else None)
            item = _item(tile, acq, raster, baseline)
            folder = collection_dir / item.id
            folder.mkdir(parents=True)
            for band in BANDS:
                dn = raster.bands[band]
                if shift:  # the same reflectance without BOA_ADD_OFFSET; 0 stays nodata
                    dn = np.where(dn > 0, np.clip(dn.astype("int32") - shift, 1, None), 0).astype(dn.dtype)
                _write_cog(folder / f"{band}.tif", dn, tile, "average")
            _write_cog(folder / "SCL.tif", raster.scl, tile, "nearest")
            items.append(item)

    catalog = pystac.Catalog(
        id="eopack-sample-data",
        title="eopack sample data",
        description="Deterministic synthetic Earth-observation inputs for eopack demos and tests.",
    )
    collection = _collection(items, grid, acqs, baseline)
    catalog.add_child(collection)
    collection.add_items(items)
    # the trailing separator stops pystac from taking a folder name with a dot for a file name
    catalog.normalize_hrefs(os.path.join(root, ""))
    catalog.save(catalog_type=pystac.CatalogType.SELF_CONTAINED)
    for item in items:
        path = collection_dir / item.id / f"{item.id}.json"
        doc = json.loads(path.read_text())
        _add_epsg(doc)
        doc = restyle_item(doc, style, grid[0].resolution)
        path.write_text(json.dumps(doc, indent=2) + "\n")
    if style != DEFAULT_STYLE:
        path = collection_dir / "collection.json"
        doc = restyle_collection(json.loads(path.read_text()), style, grid[0].resolution)
        path.write_text(json.dumps(doc, indent=2) + "\n")

    files = {p.relative_to(root).as_posix(): p.stat().st_size for p in sorted(root.rglob("*")) if p.is_file()}
    record = {
        "generator": "eopack-sample-data",
        "format_version": FORMAT_VERSION,
        "parameters": parameters,
        "files": files,
    }
    (root / _GENERATOR_FILE).write_text(json.dumps(record, indent=2) + "\n")
    total = sum(files.values())
    log.info("wrote %d items, %d files, %.1f MB", len(items), len(files), total / 1e6)


def _replace(staging: Path, out: Path, parameters: dict[str, Any]) -> None:
    """Move the finished catalog into place; the old one (ours) goes only once the new one is in."""
    old: Path | None = None
    if out.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}-old-", dir=out.parent))
        os.replace(out, old / out.name)
    try:
        os.replace(staging, out)
    except OSError:
        # someone else finished first; theirs is as good as ours if it has our parameters
        if not _is_current(out, parameters):
            raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
