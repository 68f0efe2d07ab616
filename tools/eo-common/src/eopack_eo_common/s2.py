"""Sentinel-2 L2A specifics: band names, scene classification (SCL) masking, and lazy loading.

Loading goes through odc-stac: it reads only the windows a chunk needs, reprojects onto one grid and
fuses same-day tiles. We then apply the product's own ``raster:bands`` scale and offset in float32
(uint16 arithmetic wraps silently) and turn nodata into NaN.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pystac
import xarray as xr

from .errors import ToolInputError

__all__ = [
    "BANDS",
    "DEFAULT_MASKED_CLASSES",
    "SCL_CLASSES",
    "band_id",
    "clear_mask",
    "dominant_epsg",
    "load_reflectance",
    "parse_masked_classes",
]

log = logging.getLogger(__name__)

# Common name -> Sentinel-2 band id (the asset keys of Earth Search / Planetary Computer style items).
BANDS = {
    "coastal": "B01", "blue": "B02", "green": "B03", "red": "B04", "rededge1": "B05", "rededge2": "B06",
    "rededge3": "B07", "nir": "B08", "nir08": "B8A", "nir09": "B09", "swir16": "B11", "swir22": "B12",
}  # fmt: skip

SCL_CLASSES = {
    0: "no data", 1: "saturated or defective", 2: "dark area pixels", 3: "cloud shadows", 4: "vegetation",
    5: "not vegetated", 6: "water", 7: "unclassified", 8: "cloud medium probability",
    9: "cloud high probability", 10: "thin cirrus", 11: "snow",
}  # fmt: skip

# Never a clear view of the ground: no data, defective, cloud shadow, clouds, cirrus.
DEFAULT_MASKED_CLASSES = (0, 1, 3, 8, 9, 10)


def band_id(name: str) -> str:
    """``red`` or ``B04`` -> ``B04``; anything else is an input error listing what is known.

    >>> band_id("nir"), band_id("b04")
    ('B08', 'B04')
    """
    key = name.strip()
    if key.lower() in BANDS:
        return BANDS[key.lower()]
    if key.upper() in BANDS.values():
        return key.upper()
    known = ", ".join(f"{k} ({v})" for k, v in BANDS.items())
    raise ToolInputError(f"unknown band {name!r}; use a Sentinel-2 band id or common name: {known}")


def parse_masked_classes(text: str | None) -> tuple[int, ...]:
    """SCL classes from ``"0,1,3,8,9,10"`` (spaces allowed); the default set when empty.

    >>> parse_masked_classes("3, 8,9"), parse_masked_classes(None) == DEFAULT_MASKED_CLASSES
    ((3, 8, 9), True)
    """
    if not text:
        return DEFAULT_MASKED_CLASSES
    try:
        return tuple(int(c) for c in text.replace(" ", ",").split(",") if c)
    except ValueError:
        raise ToolInputError(
            f"masked_classes must be SCL class numbers like 0,1,3,8,9,10; got {text!r}"
        ) from None


def clear_mask(scl: xr.DataArray, masked: Iterable[int] = DEFAULT_MASKED_CLASSES) -> xr.DataArray:
    """True where the pixel shows the ground (its SCL class is not one of ``masked``)."""
    return ~scl.isin(list(masked))


def dominant_epsg(items: Sequence[pystac.Item]) -> int:
    """The EPSG code most items are in (the dominant UTM zone), from proj:code or proj:epsg."""
    codes: Counter[int] = Counter()
    for item in items:
        code = item.properties.get("proj:epsg")
        text = item.properties.get("proj:code")
        if code is None and isinstance(text, str) and text.upper().startswith("EPSG:"):
            code = int(text.split(":", 1)[1])
        if code is not None:
            codes[int(code)] += 1
    if not codes:
        raise ToolInputError("the items carry no proj:code/proj:epsg; give epsg explicitly")
    return codes.most_common(1)[0][0]


def _scale_offset(item: pystac.Item, asset: str) -> tuple[float, float, float | None]:
    bands: list[dict[str, Any]] = item.assets[asset].extra_fields.get("raster:bands") or [{}]
    first = bands[0]
    return float(first.get("scale", 1.0)), float(first.get("offset", 0.0)), first.get("nodata")


def load_reflectance(
    items: Sequence[pystac.Item],
    bands: Sequence[str],
    bbox: tuple[float, float, float, float],
    epsg: int,
    resolution: float,
    chunk: int = 1024,
    with_scl: bool = True,
) -> tuple[xr.DataArray, xr.DataArray | None]:
    """Lazy float32 reflectance ``(time, band, y, x)`` over ``bbox`` and the matching SCL ``(time, y, x)``.

    Same-day items (adjacent tiles) are fused into one time step. Nodata becomes NaN; scale and
    offset come from each asset's ``raster:bands``.
    """
    import odc.stac

    ids = [band_id(b) for b in bands]
    missing = sorted({b for b in [*ids, *(["SCL"] if with_scl else [])] for i in items if b not in i.assets})
    if missing:
        raise ToolInputError(
            f"the items have no asset(s) {', '.join(missing)}; available: {', '.join(items[0].assets)}"
        )
    wanted = [*ids, "SCL"] if with_scl else ids
    data = odc.stac.load(
        items,
        bands=wanted,
        crs=f"EPSG:{epsg}",
        resolution=resolution,
        bbox=bbox,
        chunks={"x": chunk, "y": chunk},
        groupby="solar_day",
        resampling="nearest",
    )
    layers = []
    for bid in ids:
        scale, offset, nodata = _scale_offset(items[0], bid)
        raw = data[bid]
        value = raw.astype("float32") * np.float32(scale) + np.float32(offset)
        bad = raw == (nodata if nodata is not None else 0)
        layers.append(value.where(~bad))
    cube = xr.concat(layers, dim=xr.Variable("band", list(ids))).transpose("time", "band", "y", "x")
    scl = data["SCL"] if with_scl else None
    log.info(
        "cube %s over %d date(s), EPSG:%d at %g m", dict(cube.sizes), cube.sizes["time"], epsg, resolution
    )
    return cube, scl
