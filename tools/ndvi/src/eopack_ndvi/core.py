"""NDVI from Sentinel-2 L2A, masked per pixel with the scene classification (SCL).

Scene-level ``eo:cloud_cover`` filtering (``max_cloud_cover``) only chooses which scenes to read;
every pixel whose SCL class is cloud, cloud shadow, cirrus, defective or no data becomes NaN, so a
cloud in an accepted scene can never reach the result. Reflectance is computed in float32 from the
product's scale and offset before the division: in uint16 the difference wraps silently.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import pystac
import xarray as xr
from pystac.extensions.projection import ProjectionExtension
from pystac.extensions.raster import RasterExtension
from rasterio.warp import transform_bounds

from eopack_eo_common.access import asset_errors
from eopack_eo_common.dask_cluster import dask_client, performance_report
from eopack_eo_common.errors import ToolInputError
from eopack_eo_common.output import staged_output
from eopack_eo_common.progress import Progress
from eopack_eo_common.raster import band_statistics, quicklook, write_cog
from eopack_eo_common.s2 import (
    DEFAULT_MASKED_CLASSES,
    clear_mask,
    dominant_epsg,
    load_reflectance,
    parse_masked_classes,
)
from eopack_eo_common.search import Search, select_items
from eopack_eo_common.stac import save_catalog

__all__ = ["AGGREGATIONS", "NdviJob", "ndvi", "run"]

log = logging.getLogger(__name__)

AGGREGATIONS = ("none", "median")
VERSION = version("eopack-ndvi")  # one source: tools/ndvi/pyproject.toml


@dataclass(frozen=True)
class NdviJob:
    """The tool's inputs, validated."""

    search: Search
    aggregation: str = "none"
    resolution: float = 20.0
    epsg: int | None = None
    masked_classes: tuple[int, ...] = DEFAULT_MASKED_CLASSES
    stac_api: str | None = None
    input_catalog: Path | None = None
    dask_report: bool = False

    @classmethod
    def from_args(
        cls,
        *,
        aoi: str,
        start_date: str,
        end_date: str,
        collection: str = "sentinel-2-l2a",
        max_cloud_cover: float | None = None,
        aggregation: str = "none",
        resolution: float = 20.0,
        epsg: int | None = None,
        masked_classes: str | None = None,
        stac_api: str | None = None,
        input_catalog: Path | None = None,
        dask_report: bool = False,
    ) -> NdviJob:
        if aggregation not in AGGREGATIONS:
            raise ToolInputError(f"aggregation must be one of {', '.join(AGGREGATIONS)}; got {aggregation!r}")
        if not resolution > 0:
            raise ToolInputError(f"resolution must be a positive number of metres; got {resolution!r}")
        search = Search.from_args(collection, aoi, start_date, end_date, max_cloud_cover)
        classes = parse_masked_classes(masked_classes)
        return cls(search, aggregation, resolution, epsg, classes, stac_api, input_catalog, dask_report)


def ndvi(cube: xr.DataArray, scl: xr.DataArray | None, masked: tuple[int, ...]) -> xr.DataArray:
    """``(nir - red) / (nir + red)`` in float32, NaN wherever the SCL says the ground is not seen.

    With no masked classes (``masked_classes: ""``) there is no SCL and only nodata is NaN.
    """
    red, nir = cube.sel(band="B04"), cube.sel(band="B08")
    total = nir + red
    value = (nir - red) / total.where(total > 0)
    if scl is not None and masked:
        value = value.where(clear_mask(scl, masked))
    return value.astype("float32").rename("ndvi")


def _layers(result: xr.DataArray, job: NdviJob) -> list[tuple[str, dict[str, Any], np.ndarray]]:
    """(item id, datetime properties, pixels) per output layer."""
    search = job.search
    if job.aggregation == "median":
        composite = result.median("time", skipna=True).values.astype("float32")
        props = {"datetime": None, "start_datetime": search.start, "end_datetime": search.end}
        name = f"ndvi-median-{search.start:%Y%m%d}-{search.end:%Y%m%d}"
        return [(name, props, composite)]
    layers = []
    for index, when in enumerate(result["time"].values):
        day = dt.datetime.fromtimestamp(when.astype("datetime64[s]").astype(int), dt.UTC)
        layers.append((f"ndvi-{day:%Y%m%d}", {"datetime": day}, result.isel(time=index).values))
    return layers


def _item(
    name: str,
    props: dict[str, Any],
    pixels: np.ndarray,
    folder: Path,
    transform: Any,
    epsg: int,
    job: NdviJob,
    sources: list[pystac.Item],
) -> pystac.Item:
    rows, cols = pixels.shape
    cog = write_cog(folder / "ndvi.tif", pixels, transform, f"EPSG:{epsg}", descriptions=["ndvi"])
    size = quicklook(folder / "quicklook.png", pixels, label="NDVI", vmin=-0.2, vmax=1.0)
    bounds = (transform.c, transform.f + transform.e * rows, transform.c + transform.a * cols, transform.f)
    west, south, east, north = transform_bounds(f"EPSG:{epsg}", "EPSG:4326", *bounds, densify_pts=21)
    geometry = {
        "type": "Polygon",
        "coordinates": [[[west, south], [east, south], [east, north], [west, north], [west, south]]],
    }
    properties: dict[str, Any] = {
        "processing:software": {"eopack-ndvi": VERSION},
        "eopack:aggregation": job.aggregation,
        "eopack:masked_scl_classes": list(job.masked_classes),
    }
    when = props.pop("datetime")
    for key, value in props.items():
        properties[key] = value.isoformat().replace("+00:00", "Z")
    item = pystac.Item(name, geometry, [west, south, east, north], when, properties)
    stats = band_statistics(pixels)
    item.properties["eopack:clear_percent"] = stats["valid_percent"]
    asset = pystac.Asset(str(cog), title="NDVI", media_type=pystac.MediaType.COG, roles=["data"])
    item.add_asset("ndvi", asset)
    RasterExtension.ext(asset, add_if_missing=True)
    # Written as a dict: the raster extension spells NaN nodata as the string "nan" (JSON has no NaN).
    asset.extra_fields["raster:bands"] = [
        {"nodata": "nan", "data_type": "float32", "spatial_resolution": job.resolution, "statistics": stats}
    ]
    item.add_asset(
        "quicklook",
        pystac.Asset(
            str(folder / "quicklook.png"),
            title=f"NDVI quicklook ({size[0]}x{size[1]})",
            media_type=pystac.MediaType.PNG,
            roles=["overview", "visual"],
        ),
    )
    proj = ProjectionExtension.ext(item, add_if_missing=True)
    proj.code, proj.shape, proj.transform = f"EPSG:{epsg}", [rows, cols], list(transform)[:6]
    item.properties["eopack:source_items"] = [source.id for source in sources]
    for source in sources:
        href = source.get_self_href()
        # Only lasting addresses: a staged input's path is a runner's temporary copy.
        if href and href.startswith(("http://", "https://")):
            item.add_link(pystac.Link("derived_from", href, media_type=pystac.MediaType.GEOJSON))
    if stats["valid_percent"] == 0:
        log.warning("%s has no clear pixel (everything masked by the SCL)", name)
    return item


def run(job: NdviJob, outdir: Path) -> Path:
    """Compute NDVI for ``job`` into ``outdir``; return the path of catalog.json."""
    items = select_items(job.search, job.stac_api, job.input_catalog)
    epsg = job.epsg or dominant_epsg(items)
    with staged_output(outdir) as stage:
        report = stage / "dask-report.html" if job.dask_report else None
        with dask_client(profile=report is not None) as client, performance_report(report):
            cube, scl = load_reflectance(
                items,
                ["red", "nir"],
                job.search.bbox,
                epsg,
                job.resolution,
                with_scl=bool(job.masked_classes),
            )
            result = ndvi(cube, scl, job.masked_classes)
            log.info("computing NDVI on %s", client)
            with asset_errors():
                result = result.compute()
        transform = result.odc.geobox.affine
        catalog = pystac.Catalog("ndvi", f"NDVI for {job.search.describe()}", title="NDVI")
        layers = _layers(result, job)
        progress = Progress("date", len(layers), log)
        for name, props, pixels in layers:
            folder = stage / name
            folder.mkdir()
            used = (
                items
                if job.aggregation == "median"
                else [i for i in items if i.datetime and f"ndvi-{i.datetime:%Y%m%d}" == name]
            )
            catalog.add_item(_item(name, props, pixels, folder, transform, epsg, job, used))
            progress.advance(f"wrote {name}")
        save_catalog(catalog, stage)
    return outdir / "catalog.json"
