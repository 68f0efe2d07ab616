"""Write results the way EO users expect them: COGs with nodata, quicklooks with a legend, statistics."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.enums import Resampling

__all__ = ["band_statistics", "quicklook", "write_cog"]


def write_cog(
    path: Path,
    data: np.ndarray,
    transform: rasterio.Affine,
    crs: CRS | str,
    nodata: float | None = None,
    descriptions: Sequence[str] = (),
    scale: float | None = None,
    offset: float | None = None,
    level: int = 6,
) -> Path:
    """Write a Cloud-Optimized GeoTIFF (GDAL's COG driver: tiled, overviews, DEFLATE).

    ``data`` is (rows, cols) or (bands, rows, cols). Float data uses NaN as nodata unless told
    otherwise; predictor 3 keeps float rasters small. ``scale``/``offset`` are recorded in the file
    (GDAL applies them on request) for integer data that encodes a physical value. ``level`` trades
    DEFLATE size for speed (1 is several times faster than 6 for about 10 % more bytes).

    The overviews are built once, in memory, on the dataset rasterio hands to the COG driver: the
    driver then copies them instead of writing them to a temporary GTiff and reading them back
    (half the time of a 2048² band). The levels are the driver's own (halving until a level fits in
    one 256-pixel block) and so is the resampling (average for float, nearest for integers).
    """
    pixels = data[np.newaxis] if data.ndim == 2 else data
    is_float = np.issubdtype(pixels.dtype, np.floating)
    if nodata is None and is_float:
        nodata = float("nan")
    profile: dict[str, Any] = {
        "driver": "COG",
        "width": pixels.shape[2],
        "height": pixels.shape[1],
        "count": pixels.shape[0],
        "dtype": pixels.dtype.name,
        "crs": crs,
        "transform": transform,
        "nodata": nodata,
        "compress": "DEFLATE",
        "level": level,
        "num_threads": "ALL_CPUS",
        "predictor": 3 if is_float else 2,
        "blocksize": 256,
        "overview_resampling": "average" if is_float else "nearest",
    }
    factors: list[int] = []
    while max(pixels.shape[1:]) > 256 * (factors[-1] if factors else 1):
        factors.append(2 * (factors[-1] if factors else 1))
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(pixels)
        if factors:
            dst.build_overviews(factors, Resampling.average if is_float else Resampling.nearest)
        if scale is not None or offset is not None:
            dst.scales = (scale if scale is not None else 1.0,) * pixels.shape[0]
            dst.offsets = (offset if offset is not None else 0.0,) * pixels.shape[0]
        for index, text in enumerate(descriptions, start=1):
            dst.set_band_description(index, text)
    return path


def band_statistics(data: np.ndarray) -> dict[str, float]:
    """The raster extension's ``statistics`` of one band, ignoring NaN."""
    valid = data[np.isfinite(data)]
    if valid.size == 0:
        return {"valid_percent": 0.0}
    return {
        "minimum": float(valid.min()),
        "maximum": float(valid.max()),
        "mean": float(valid.mean()),
        "stddev": float(valid.std()),
        "valid_percent": round(100.0 * valid.size / data.size, 3),
    }


LEGEND_HEIGHT = 48
# ColorBrewer RdYlGn (11 classes): red for bare/negative, green for dense vegetation.
_RDYLGN = np.array(
    [[int(h[i : i + 2], 16) / 255 for i in (0, 2, 4)] for h in
     ["a50026", "d73027", "f46d43", "fdae61", "fee08b", "ffffbf", "d9ef8b", "a6d96a", "66bd63", "1a9850", "006837"]]
)  # fmt: skip


def _ramp(norm: np.ndarray) -> np.ndarray:
    """RGBA (0..1) for values in 0..1 along the RdYlGn ramp."""
    stops = np.linspace(0, 1, len(_RDYLGN))
    rgb = np.stack([np.interp(norm, stops, _RDYLGN[:, c]) for c in range(3)], axis=-1)
    return np.concatenate([rgb, np.ones((*norm.shape, 1))], axis=-1)


def quicklook(
    path: Path,
    data: np.ndarray,
    *,
    label: str,
    vmin: float = 0.0,
    vmax: float = 1.0,
    max_pixels: int = 1024,
) -> tuple[int, int]:
    """A PNG: the image (nodata transparent) above a colour ramp labelled with ``label`` and its range.

    Single-band ``data`` is colour-mapped (RdYlGn) over ``vmin..vmax``; (3, rows, cols) data in 0..1 is
    shown as RGB with the ramp omitted. The image is shrunk by an integer step to at most
    ``max_pixels`` on its longer side. Returns the PNG's (width, height).
    """
    from PIL import Image, ImageDraw

    step = max(1, int(np.ceil(max(data.shape[-2:]) / max_pixels)))
    view = np.asarray(data[..., ::step, ::step], dtype="float32")
    # Straight to 8-bit RGBA: the colours of a quicklook have 256 levels anyway.
    if view.ndim == 3:
        valid = np.all(np.isfinite(view), axis=0)
        rgb = np.clip(np.nan_to_num(np.moveaxis(view, 0, -1)), 0, 1)
        pixels = np.dstack([(rgb * 255).astype("uint8"), valid.astype("uint8") * 255])
        legend = 0
    else:
        norm = np.clip((view - vmin) / (vmax - vmin), 0, 1)
        # The ramp through a lookup table of 1024 steps: one gather instead of interpolating per pixel.
        table = (_ramp(np.linspace(0, 1, 1024)) * 255).astype("uint8")
        pixels = table[(np.nan_to_num(norm) * 1023 + 0.5).astype("uint16")]
        pixels[..., 3] = np.isfinite(view) * np.uint8(255)
        legend = LEGEND_HEIGHT
    rows, cols = view.shape[-2:]
    canvas = Image.new("RGBA", (cols, rows + legend), (255, 255, 255, 255))
    canvas.paste(Image.fromarray(pixels, "RGBA"), (0, 0))
    if legend:
        ramp = _ramp(np.linspace(0, 1, max(cols - 20, 2)))[np.newaxis, :, :]
        bar = Image.fromarray((np.repeat(ramp, 14, axis=0) * 255).astype("uint8"), "RGBA")
        canvas.paste(bar, (10, rows + 6))
        draw = ImageDraw.Draw(canvas)
        draw.text((10, rows + 24), f"{vmin:g}", fill=(0, 0, 0, 255))
        draw.text((max(cols - 40, 60), rows + 24), f"{vmax:g}", fill=(0, 0, 0, 255))
        draw.text((max(cols // 2 - 4 * len(label), 40), rows + 24), label, fill=(0, 0, 0, 255))
    # zlib level 1: a third of the default's time for a slightly larger preview
    canvas.save(path, format="PNG", compress_level=1)
    return canvas.size
