"""The same sample scene spelt the way the big public archives spell Sentinel-2 L2A items.

The pixels and item ids never change with the style; only the STAC documents do. Each style
reproduces the places where real archives differ and where readers break (issue 20):

``eopack`` (default)
    STAC 1.1.0 items as pystac writes them: keys ``B02``…``B08``/``SCL``, ``eo:bands`` and
    ``raster:bands`` (scale 1e-4, offset -0.1), ``proj:code`` with a ``proj:epsg`` alias.
``pc`` (Microsoft Planetary Computer)
    STAC 1.0.0; keys ``B04``/``SCL``; ``eo:bands`` but **no** ``raster:bands`` (no scale, no offset,
    no data type: readers must apply the processing-baseline rule, here 05.10 → offset -0.1);
    projection v1.0 with ``proj:epsg`` only, ``proj:shape``/``proj:transform`` per asset.
``earth-search`` (Element 84 Earth Search v1)
    STAC 1.0.0; lowercase common-name keys ``blue``/``green``/``red``/``nir`` and ``scl``;
    ``eo:bands`` and ``raster:bands`` with scale/offset; ``proj:epsg`` only.
``stac-1.1`` (STAC 1.1 ``bands``, Copernicus Data Space style keys)
    keys ``B04_20m``/``SCL_20m``; band metadata in ``bands`` with ``eo:common_name``,
    ``raster:scale``/``raster:offset``; ``data_type`` and ``nodata`` on the asset; projection v2.0
    with ``proj:code`` only (no ``proj:epsg`` anywhere).
"""

from __future__ import annotations

from typing import Any

__all__ = ["DEFAULT_STYLE", "STYLES", "asset_key", "restyle_collection", "restyle_item"]

DEFAULT_STYLE = "eopack"
STYLES = ("eopack", "pc", "earth-search", "stac-1.1")
_EXT = "https://stac-extensions.github.io/{}/schema.json"
_EXTENSIONS = {
    "pc": ["eo/v1.0.0", "projection/v1.0.0"],
    "earth-search": ["eo/v1.1.0", "raster/v1.1.0", "projection/v1.1.0", "grid/v1.1.0"],
    "stac-1.1": ["eo/v2.0.0", "raster/v2.0.0", "projection/v2.0.0", "grid/v1.1.0", "classification/v2.0.0"],
}
_COMMON = {"B02": "blue", "B03": "green", "B04": "red", "B08": "nir", "SCL": "scl"}


def asset_key(style: str, band: str, resolution: float) -> str:
    """The asset key of ``band`` (``B04`` or ``SCL``) in ``style``.

    >>> asset_key("earth-search", "B04", 20), asset_key("stac-1.1", "SCL", 20), asset_key("pc", "B08", 20)
    ('red', 'SCL_20m', 'B08')
    """
    if style == "earth-search":
        return _COMMON[band]
    if style == "stac-1.1":
        return f"{band}_{resolution:g}m"
    return band


def _asset(style: str, band: str, asset: dict[str, Any], grid: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in asset.items() if k not in ("eo:bands", "raster:bands", "classification:classes")}
    eo = (asset.get("eo:bands") or [{}])[0]
    raster = (asset.get("raster:bands") or [{}])[0]
    if style == "pc":
        if band != "SCL":
            out["eo:bands"] = asset["eo:bands"]
        out.update(grid)
    elif style == "earth-search":
        if band != "SCL":
            out["eo:bands"] = asset["eo:bands"]
        out["raster:bands"] = asset["raster:bands"]
        out.update(grid)
    elif style == "stac-1.1":
        one: dict[str, Any] = {"name": band}
        if band != "SCL":
            one["eo:common_name"] = eo["common_name"]
            one["eo:center_wavelength"] = eo["center_wavelength"]
            one["raster:scale"] = raster["scale"]
            one["raster:offset"] = raster["offset"]
        else:
            out["classification:classes"] = asset["classification:classes"]
        out["bands"] = [one]
        out["data_type"] = raster["data_type"]
        out["nodata"] = raster["nodata"]
        out["raster:spatial_resolution"] = raster["spatial_resolution"]
        out.update({k: v for k, v in grid.items() if k != "proj:epsg"})
    return out


def restyle_item(doc: dict[str, Any], style: str, resolution: float) -> dict[str, Any]:
    """An eopack-style item document rewritten in ``style`` (returned as a new dict)."""
    if style == DEFAULT_STYLE:
        return doc
    props = dict(doc["properties"])
    epsg = int(str(props.pop("proj:code")).split(":", 1)[1])
    props.pop("proj:epsg", None)
    grid = {
        "proj:epsg": epsg,
        "proj:shape": props.pop("proj:shape"),
        "proj:transform": props.pop("proj:transform"),
    }
    if style in ("pc", "earth-search"):
        props["proj:epsg"] = epsg
    else:
        props["proj:code"] = f"EPSG:{epsg}"
    if style == "pc":
        props.pop("grid:code", None)
    assets = {
        asset_key(style, band, resolution): _asset(style, band, asset, grid)
        for band, asset in doc["assets"].items()
    }
    return {
        **doc,
        "stac_version": "1.1.0" if style == "stac-1.1" else "1.0.0",
        "stac_extensions": [_EXT.format(e) for e in _EXTENSIONS[style]],
        "properties": props,
        "assets": assets,
    }


def restyle_collection(doc: dict[str, Any], style: str, resolution: float) -> dict[str, Any]:
    """The collection document in ``style``: version, extensions, item_assets keys and summaries."""
    if style == DEFAULT_STYLE:
        return doc
    summaries = dict(doc.get("summaries", {}))
    code = summaries.pop("proj:code", None)
    eo_bands = summaries.pop("eo:bands", [])
    if style in ("pc", "earth-search") and code:
        summaries["proj:epsg"] = [int(str(c).split(":", 1)[1]) for c in code]
    elif code:
        summaries["proj:code"] = code
    if style == "stac-1.1":
        summaries["bands"] = [
            {
                "name": b["name"],
                "eo:common_name": b["common_name"],
                "eo:center_wavelength": b["center_wavelength"],
            }
            for b in eo_bands
        ]
    else:
        summaries["eo:bands"] = eo_bands
    item_assets = {
        asset_key(style, band, resolution): _asset(style, band, asset, {})
        for band, asset in doc.get("item_assets", {}).items()
    }
    extensions = [_EXT.format(e) for e in _EXTENSIONS[style]]
    if style != "stac-1.1":  # item_assets is core only from STAC 1.1
        extensions.append(_EXT.format("item-assets/v1.0.0"))
    out = {
        **doc,
        "stac_version": "1.1.0" if style == "stac-1.1" else "1.0.0",
        "stac_extensions": extensions,
        "summaries": summaries,
        "item_assets": item_assets,
    }
    return out
