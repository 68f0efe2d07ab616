"""Sentinel-2 L2A specifics: band names, scene classification (SCL) masking, and lazy loading.

Loading goes through odc-stac: it reads only the windows a chunk needs, reprojects onto one grid and
fuses same-day tiles. Items are first re-spelt by ``archive.canonical_item`` (bands by meaning,
``proj:epsg``/``proj:code``, undeclared extensions); we then apply each item's scale and offset
(``archive.encoding``) in float32 (uint16 arithmetic wraps silently) and turn nodata into NaN.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np
import pystac
import xarray as xr

from .archive import BANDS, SCL, band_id, canonical_item, encoding, item_epsg
from .errors import ToolInputError

__all__ = [
    "BANDS",
    "DEFAULT_MASKED_CLASSES",
    "SCL",
    "SCL_CLASSES",
    "band_id",
    "clear_mask",
    "dominant_epsg",
    "load_reflectance",
    "parse_masked_classes",
]

log = logging.getLogger(__name__)

SCL_CLASSES = {
    0: "no data", 1: "saturated or defective", 2: "dark area pixels", 3: "cloud shadows", 4: "vegetation",
    5: "not vegetated", 6: "water", 7: "unclassified", 8: "cloud medium probability",
    9: "cloud high probability", 10: "thin cirrus", 11: "snow",
}  # fmt: skip

# Never a clear view of the ground: no data, defective, cloud shadow, clouds, cirrus.
DEFAULT_MASKED_CLASSES = (0, 1, 3, 8, 9, 10)


def parse_masked_classes(text: str | None) -> tuple[int, ...]:
    """SCL classes from ``"0,1,3,8,9,10"`` (spaces allowed); the default set when not given (None).

    An empty string means *no* class is masked: the run needs no scene classification at all
    (for archives without an SCL asset).

    >>> parse_masked_classes("3, 8,9"), parse_masked_classes(None) == DEFAULT_MASKED_CLASSES
    ((3, 8, 9), True)
    >>> parse_masked_classes("")
    ()
    """
    if text is None:
        return DEFAULT_MASKED_CLASSES
    try:
        return tuple(int(c) for c in text.replace(" ", ",").split(",") if c)
    except ValueError:
        raise ToolInputError(
            f'masked_classes must be SCL class numbers like 0,1,3,8,9,10 (or "" for no mask); got {text!r}'
        ) from None


def clear_mask(scl: xr.DataArray, masked: Iterable[int] = DEFAULT_MASKED_CLASSES) -> xr.DataArray:
    """True where the pixel shows the ground (its SCL class is not one of ``masked``)."""
    return ~scl.isin(list(masked))


def dominant_epsg(items: Sequence[pystac.Item]) -> int:
    """The EPSG code most items are in (the dominant UTM zone), from proj:code or proj:epsg.

    Item level first, then asset level; declared extension or not.
    """
    codes: Counter[int] = Counter()
    for item in items:
        code = item_epsg(item)
        if code is not None:
            codes[code] += 1
    if not codes:
        raise ToolInputError("the items carry no proj:code/proj:epsg; give epsg explicitly")
    return codes.most_common(1)[0][0]


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

    ``bands`` are ids or common names (``B04``, ``red``); the cube's band labels are the ids.
    Bands are found by meaning in each item (eo-common's ``archive``), whatever the asset keys.
    Same-day items (adjacent tiles) are fused into one time step. Nodata becomes NaN; scale and
    offset come from each item's own metadata (or its processing baseline), so a time series that
    crosses baseline 04.00 is right on both sides.
    """
    import odc.stac

    ids = list(dict.fromkeys(band_id(b) for b in bands))
    wanted = [*ids, SCL] if with_scl else ids
    groups: dict[tuple[tuple[float, float, float], ...], list[pystac.Item]] = {}
    for item in items:
        canon = canonical_item(item, wanted)
        encodings = tuple((e.scale, e.offset, e.nodata) for e in (encoding(canon, bid) for bid in ids))
        groups.setdefault(encodings, []).append(canon)
    cubes, scls = [], []
    for encodings, group in groups.items():
        data = odc.stac.load(
            group,
            bands=wanted,
            crs=f"EPSG:{epsg}",
            resolution=resolution,
            bbox=bbox,
            chunks={"x": chunk, "y": chunk},
            groupby="solar_day",
            resampling="nearest",
        )
        layers = []
        for bid, (scale, offset, nodata) in zip(ids, encodings, strict=True):
            raw = data[bid]
            value = raw.astype("float32") * np.float32(scale) + np.float32(offset)
            layers.append(value.where(raw != nodata))
        cubes.append(xr.concat(layers, dim=xr.Variable("band", ids)).transpose("time", "band", "y", "x"))
        if with_scl:
            scls.append(data[SCL])
    if len(groups) > 1:
        log.info("%d groups of items with different scale/offset (processing baselines)", len(groups))
    cube = xr.concat(cubes, dim="time").sortby("time") if len(cubes) > 1 else cubes[0]
    scl = None
    if with_scl:
        scl = xr.concat(scls, dim="time").sortby("time") if len(scls) > 1 else scls[0]
    log.info(
        "cube %s over %d date(s), EPSG:%d at %g m", dict(cube.sizes), cube.sizes["time"], epsg, resolution
    )
    return cube, scl
