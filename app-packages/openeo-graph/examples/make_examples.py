"""Regenerate the example process graphs with the openEO Python client, offline.

The JSON files are committed; this script is how they were made, so they stay what a real openEO
client writes (node ids, ``{"process_graph": ...}`` envelope, callbacks) rather than hand-written
approximations. ``DataCube.load_collection(..., connection=None, fetch_metadata=False)`` builds the
graph without contacting a backend.

Run: ``.venv/bin/python app-packages/openeo-graph/examples/make_examples.py``
"""

from __future__ import annotations

import json
from pathlib import Path

from openeo.processes import eq, or_
from openeo.rest.datacube import DataCube
from openeo.rest.result import SaveResult

HERE = Path(__file__).parent
# Seed 000: the openEO NDVI example over 11.4-11.5 E, 46.5-46.6 N.
SPATIAL_EXTENT = {"west": 11.4, "south": 46.5, "east": 11.5, "north": 46.6}


def ndvi() -> SaveResult:
    """Seed 000 exactly: B04/B08 for June 2024, (nir - red) / (nir + red), saved as GTiff."""
    cube = DataCube.load_collection(
        "SENTINEL2_L2A",
        connection=None,
        fetch_metadata=False,
        spatial_extent=SPATIAL_EXTENT,
        temporal_extent=["2024-06-01", "2024-06-30"],
        bands=["B04", "B08"],
    )
    red = cube.band("B04")
    nir = cube.band("B08")
    result: DataCube = (nir - red) / (nir + red)
    return result.save_result(format="GTiff")


def median_ndvi() -> SaveResult:
    """A cloud-masked median NDVI of June: filter_temporal + mask (from SCL) + reduce_dimension(median).

    The mask is true (pixel dropped) where SCL is no data, defective, cloud shadow, cloud or cirrus
    (classes 0, 1, 3, 8, 9, 10: the ndvi package's default), the median skips the masked dates.
    """
    cube = DataCube.load_collection(
        "SENTINEL2_L2A",
        connection=None,
        fetch_metadata=False,
        spatial_extent=SPATIAL_EXTENT,
        temporal_extent=["2024-06-01", "2024-08-01"],
        bands=["B04", "B08", "SCL"],
    )
    june = cube.filter_temporal(["2024-06-01", "2024-07-01"])
    scl = june.band("SCL")
    cloudy = scl.apply(
        lambda x: or_(
            or_(or_(eq(x, 0), eq(x, 1)), or_(eq(x, 3), eq(x, 8))),
            or_(eq(x, 9), eq(x, 10)),
        )
    )
    red = june.band("B04")
    nir = june.band("B08")
    ndvi: DataCube = ((nir - red) / (nir + red)).mask(cloudy)
    median = ndvi.reduce_dimension(dimension="t", reducer="median")
    return median.save_result(format="GTiff")


def write(name: str, cube: SaveResult) -> Path:
    path = HERE / f"{name}.json"
    path.write_text(json.dumps({"process_graph": cube.flat_graph()}, indent=2) + "\n")
    return path


if __name__ == "__main__":
    for name, build in (("ndvi", ndvi), ("median-ndvi", median_ndvi)):
        print(write(name, build()))
