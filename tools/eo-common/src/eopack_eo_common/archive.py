"""Read Sentinel-2 L2A items the way the public archives actually write them.

Archives agree on the science and differ in the spelling (DESIGN.md §3): Planetary Computer keys
its assets ``B04``/``SCL`` and gives no scale; Earth Search v1 keys them ``red``/``scl`` and declares
``raster:bands``; STAC 1.1 catalogs describe bands in ``bands`` with ``eo:common_name`` and
``raster:scale``; hand-made catalogs use extension fields without declaring them. Everything here
reads the item's dictionaries directly (never through pystac's extension classes, which raise
``ExtensionNotImplemented`` on an undeclared extension), and every reader in the tools goes through
it, so one place decides what an item means:

* :func:`find_asset` / :func:`require_asset` / :func:`scl_asset`: a band (``red`` or ``B04``) or the
  scene classification -> the asset key, by band metadata first, asset keys second;
* :func:`item_epsg`, :func:`asset_grid`: ``proj:epsg`` or ``proj:code``, item or asset level;
* :func:`encoding`: scale, offset and nodata of an asset, from ``raster:bands`` (STAC 1.0),
  ``raster:scale``/``raster:offset`` (STAC 1.1), else the Sentinel-2 processing-baseline rule;
* :func:`canonical_item`: the same item re-spelt in the one form odc-stac reads reliably.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pystac

from .errors import ToolInputError

__all__ = [
    "BANDS",
    "SCL",
    "Encoding",
    "asset_grid",
    "band_id",
    "canonical_item",
    "encoding",
    "find_asset",
    "item_epsg",
    "offered",
    "processing_baseline",
    "require_asset",
    "scl_asset",
]

log = logging.getLogger(__name__)

# Common name -> Sentinel-2 band id.
BANDS = {
    "coastal": "B01", "blue": "B02", "green": "B03", "red": "B04", "rededge1": "B05", "rededge2": "B06",
    "rededge3": "B07", "nir": "B08", "nir08": "B8A", "nir09": "B09", "swir16": "B11", "swir22": "B12",
}  # fmt: skip
COMMON = {v: k for k, v in BANDS.items()}  # B04 -> red
SCL = "SCL"
# From processing baseline 04.00 (25 January 2022) L2A DN carry BOA_ADD_OFFSET = -1000.
BASELINE_OFFSET_FROM = (4, 0)
BASELINE_OFFSET_DATE = dt.datetime(2022, 1, 25, tzinfo=dt.UTC)
S2_SCALE = 0.0001
S2_OFFSET = -0.1
# What the L2A product specification says when an archive leaves data_type out.
DEFAULT_DATA_TYPE = {SCL: "uint8"}
REFLECTANCE_DATA_TYPE = "uint16"
_COG = "image/tiff; application=geotiff; profile=cloud-optimized"


def band_id(name: str) -> str:
    """``red`` or ``B04`` -> ``B04``; ``scl`` -> ``SCL``; anything else is an input error listing what is known.

    >>> band_id("nir"), band_id("b04"), band_id("scl")
    ('B08', 'B04', 'SCL')
    """
    key = name.strip()
    if key.lower() in BANDS:
        return BANDS[key.lower()]
    if key.upper() in BANDS.values() or key.upper() == SCL:
        return key.upper()
    known = ", ".join(f"{k} ({v})" for k, v in BANDS.items())
    raise ToolInputError(f"unknown band {name!r}; use a Sentinel-2 band id or common name: {known}")


def _bands_of(fields: dict[str, Any]) -> list[dict[str, Any]]:
    """The band objects of an asset: STAC 1.1 ``bands`` or STAC 1.0 ``eo:bands``."""
    bands = fields.get("bands") or fields.get("eo:bands") or []
    return [b for b in bands if isinstance(b, dict)]


def _names(band: dict[str, Any]) -> set[str]:
    """The names a band object answers to, upper-cased: its id and its common name (1.0 or 1.1 spelling)."""
    out = set()
    for key in ("name", "common_name", "eo:common_name"):
        value = band.get(key)
        if isinstance(value, str) and value:
            out.add(value.upper())
    return out


def _rank(key: str, asset: pystac.Asset) -> tuple[int, int, str]:
    """Prefer COG/GeoTIFF over JPEG 2000 copies (Earth Search's ``red-jp2``), then the shorter key."""
    media = (asset.media_type or "").lower()
    tiff = 0 if ("tiff" in media or not media) else 1
    return tiff, len(key), key


def find_asset(item: pystac.Item, band: str) -> str | None:
    """The key of the asset holding ``band`` (``red``, ``B04`` or ``SCL``) in ``item``, or None.

    Band metadata first (single-band assets whose ``eo:bands``/``bands`` name the band id or its
    common name), then asset keys: ``B04``, ``b04``, ``red``, ``RED``. Multi-band assets (the
    ``visual`` true-colour image) never stand in for one band.
    """
    bid = band_id(band)
    wanted = {bid, COMMON.get(bid, bid).upper()}
    by_meta = [
        key
        for key, asset in item.assets.items()
        if len(bands := _bands_of(asset.extra_fields)) == 1 and _names(bands[0]) & wanted
    ]
    if by_meta:
        return min(by_meta, key=lambda k: _rank(k, item.assets[k]))
    by_key = [
        key
        for key in item.assets
        if key.upper() in wanted and len(_bands_of(item.assets[key].extra_fields)) <= 1
    ]
    if by_key:
        return min(by_key, key=lambda k: _rank(k, item.assets[k]))
    return None


def offered(item: pystac.Item) -> str:
    """What an item offers, for messages: ``B04 (red), scl, visual``."""
    parts = []
    for key, asset in item.assets.items():
        names = sorted({n.lower() for b in _bands_of(asset.extra_fields) for n in _names(b)} - {key.lower()})
        parts.append(f"{key} ({', '.join(names)})" if names else key)
    return ", ".join(parts) or "no assets"


def require_asset(item: pystac.Item, band: str) -> str:
    """:func:`find_asset`, or an input error naming what the item offers."""
    key = find_asset(item, band)
    if key is None:
        bid = band_id(band)
        label = f"{COMMON[bid]} ({bid})" if bid in COMMON else bid
        raise ToolInputError(f"item {item.id} has no {label} band; it offers: {offered(item)}")
    return key


def scl_asset(item: pystac.Item) -> str:
    """The scene classification asset; its absence is an input error that says how to run unmasked."""
    key = find_asset(item, SCL)
    if key is None:
        raise ToolInputError(
            f"item {item.id} has no scene classification (SCL) asset to mask clouds with; it offers: "
            f'{offered(item)}. Set masked_classes: "" to run without the cloud mask'
        )
    return key


def _epsg(holder: dict[str, Any]) -> int | None:
    code = holder.get("proj:epsg")
    if code is not None:
        try:
            return int(code)
        except (TypeError, ValueError):
            return None
    text = holder.get("proj:code")
    if isinstance(text, str) and text.upper().startswith("EPSG:"):
        try:
            return int(text.split(":", 1)[1])
        except ValueError:
            return None
    return None


def item_epsg(item: pystac.Item, key: str | None = None) -> int | None:
    """EPSG code from ``proj:epsg`` or ``proj:code``: of asset ``key`` if given, else the item, else its assets.

    Declared or not: the fields are read directly.
    """
    if key is not None and (code := _epsg(item.assets[key].extra_fields)) is not None:
        return code
    if (code := _epsg(item.properties)) is not None:
        return code
    for asset in item.assets.values():
        if (code := _epsg(asset.extra_fields)) is not None:
            return code
    return None


def asset_grid(item: pystac.Item, key: str) -> tuple[list[float], list[int]] | None:
    """``(proj:transform, proj:shape)`` of an asset, from the asset or else the item; None if unknown."""
    for holder in (item.assets[key].extra_fields, item.properties):
        transform, shape = holder.get("proj:transform"), holder.get("proj:shape")
        if transform and shape and len(transform) >= 6 and len(shape) == 2:
            return [float(v) for v in transform[:6]], [int(v) for v in shape]
    return None


def processing_baseline(item: pystac.Item) -> tuple[int, int] | None:
    """``s2:processing_baseline`` ("05.10") as (5, 10); None if absent or unreadable.

    >>> processing_baseline(pystac.Item("x", None, None, dt.datetime(2024, 1, 1), {"s2:processing_baseline": "04.00"}))
    (4, 0)
    """
    text = item.properties.get("s2:processing_baseline")
    if text is None:
        return None
    try:
        major, _, minor = str(text).partition(".")
        return int(major), int(minor or 0)
    except ValueError:
        return None


@dataclass(frozen=True)
class Encoding:
    """How an asset's integers become physical values: ``value = DN * scale + offset``; ``nodata`` is missing.

    ``source`` says where scale/offset came from (for logs): ``raster:bands``, ``bands``, or the
    processing-baseline rule.
    """

    scale: float
    offset: float
    nodata: float
    data_type: str
    source: str


def _first(*values: Any) -> Any:
    return next((v for v in values if v is not None), None)


def _nodata(value: Any, data_type: str) -> float:
    """nodata as a number. NaN (or ``"nan"``) on integer data cannot mark a pixel: Sentinel-2's 0 is used."""
    if value is None:
        return 0.0
    try:
        number = float(value)
    except (TypeError, ValueError):
        return 0.0
    if math.isnan(number) and not data_type.startswith("float"):
        return 0.0
    return number


def _baseline_rule(item: pystac.Item) -> tuple[float, float, str]:
    baseline = processing_baseline(item)
    if baseline is not None:
        offset = S2_OFFSET if baseline >= BASELINE_OFFSET_FROM else 0.0
        return S2_SCALE, offset, f"processing baseline {baseline[0]:02d}.{baseline[1]:02d}"
    when = item.datetime or item.common_metadata.start_datetime
    if when is not None and when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    offset = S2_OFFSET if when is not None and when >= BASELINE_OFFSET_DATE else 0.0
    log.warning(
        "item %s declares neither scale/offset nor s2:processing_baseline; assuming offset %g from its date",
        item.id,
        offset,
    )
    return S2_SCALE, offset, "acquisition date (no processing baseline)"


def encoding(item: pystac.Item, key: str) -> Encoding:
    """Scale, offset, nodata and data type of asset ``key``.

    Scale/offset: ``raster:bands`` (STAC 1.0), else ``raster:scale``/``raster:offset`` in the
    asset's ``bands`` or on the asset (STAC 1.1), else — for reflectance, never for SCL — the
    Sentinel-2 rule: offset -0.1 from processing baseline 04.00 on, none before, scale 1e-4.
    Earth Search's ``earthsearch:boa_offset_applied: true`` (DN already harmonised) means offset 0.
    A data type the archive leaves out is the product's (uint16 reflectance, uint8 SCL); a missing
    nodata is 0 (Sentinel-2's NO_DATA), and so is NaN on integer data.
    """
    fields = item.assets[key].extra_fields
    raster = (fields.get("raster:bands") or [{}])[0] or {}
    band = (_bands_of(fields) or [{}])[0]
    is_scl = find_asset(item, SCL) == key
    data_type = str(
        _first(raster.get("data_type"), band.get("data_type"), fields.get("data_type"))
        or DEFAULT_DATA_TYPE.get(SCL if is_scl else "", REFLECTANCE_DATA_TYPE)
    )
    nodata = _nodata(_first(raster.get("nodata"), band.get("nodata"), fields.get("nodata")), data_type)
    if not is_scl and item.properties.get("earthsearch:boa_offset_applied") is True:
        # Earth Search v1 harmonised these DN (the -1000 already taken out) while its raster:bands
        # may still declare -0.1 (Element84/earth-search#66, #71): the item's own flag wins.
        scale = raster.get("scale", _first(band.get("raster:scale"), S2_SCALE))
        offset, source = 0.0, "earthsearch:boa_offset_applied"
    elif raster.get("scale") is not None or raster.get("offset") is not None:
        scale, offset, source = raster.get("scale", 1.0), raster.get("offset", 0.0), "raster:bands"
    elif band.get("raster:scale") is not None or band.get("raster:offset") is not None:
        scale, offset, source = band.get("raster:scale", 1.0), band.get("raster:offset", 0.0), "bands"
    elif fields.get("raster:scale") is not None or fields.get("raster:offset") is not None:
        scale, offset, source = fields.get("raster:scale", 1.0), fields.get("raster:offset", 0.0), "asset"
    elif is_scl:
        scale, offset, source = 1.0, 0.0, "class codes"
    else:
        scale, offset, source = _baseline_rule(item)
    return Encoding(float(scale), float(offset), nodata, data_type, source)


def canonical_item(item: pystac.Item, bands: Sequence[str]) -> pystac.Item:
    """``item`` re-spelt for odc-stac: assets keyed by band id (``B04``, ``SCL``), ``proj:epsg`` and
    ``proj:code`` everywhere, extensions declared, ``raster:bands`` with data type and nodata.

    Only the requested ``bands`` (ids or common names, ``SCL`` included) are kept; asset hrefs are
    made absolute. Raises an input error naming what the item offers when a band is missing.
    """
    keys = {band_id(b): (scl_asset(item) if band_id(b) == SCL else require_asset(item, b)) for b in bands}
    epsg = item_epsg(item)
    grids = {bid: asset_grid(item, key) for bid, key in keys.items()}
    # odc-stac drops assets without proj data once any asset has it: all or none.
    with_grid = all(g is not None for g in grids.values())
    assets: dict[str, Any] = {}
    for bid, key in keys.items():
        source = item.assets[key]
        enc = encoding(item, key)
        asset_epsg = item_epsg(item, key) or epsg
        asset: dict[str, Any] = {
            "href": source.get_absolute_href() or source.href,
            "type": source.media_type or _COG,
            "roles": ["data"],
            "eo:bands": [{"name": bid, **({"common_name": COMMON[bid]} if bid in COMMON else {})}],
            "raster:bands": [{"data_type": enc.data_type, "nodata": enc.nodata}],
        }
        if asset_epsg is not None:
            asset["proj:epsg"] = asset_epsg
            asset["proj:code"] = f"EPSG:{asset_epsg}"
        grid = grids[bid]
        if with_grid and grid is not None:
            asset["proj:transform"], asset["proj:shape"] = grid
        assets[bid] = asset
    properties = dict(item.properties)
    for name in ("proj:transform", "proj:shape", "proj:bbox", "proj:wkt2", "proj:projjson"):
        properties.pop(name, None)
    if epsg is not None:
        properties["proj:epsg"] = epsg
        properties["proj:code"] = f"EPSG:{epsg}"
    doc = {
        "type": "Feature",
        "stac_version": "1.0.0",
        "stac_extensions": [
            "https://stac-extensions.github.io/eo/v1.1.0/schema.json",
            "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
            "https://stac-extensions.github.io/projection/v1.1.0/schema.json",
        ],
        "id": item.id,
        "geometry": item.geometry,
        "bbox": item.bbox,
        "properties": {**properties, "datetime": _iso(item.datetime)},
        "links": [],
        "assets": assets,
        "collection": item.collection_id,
    }
    return pystac.Item.from_dict(doc, preserve_dict=False)


def _iso(when: dt.datetime | None) -> str | None:
    if when is None:
        return None
    return pystac.utils.datetime_to_str(when)
