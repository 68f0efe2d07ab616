"""Fetch, identify, transform and describe one image (compatible with EOEPCA's convert-url app).

GeoTIFFs keep their georeferencing: the transform is scaled with the pixels and the STAC item
carries the footprint and projection. Other images (PNG, JPEG, ...) are resized with Pillow and
described by an item with the global footprint and ``eopack:georeferenced: false`` (docs/adr/0005):
STAC allows a null geometry, but pgstac-backed catalogs (``eopack publish``, a platform's stage-out)
index items by footprint and refuse one without it.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import numpy as np
import pystac
import rasterio
from PIL import Image, UnidentifiedImageError
from pystac.extensions.projection import ProjectionExtension
from rasterio.enums import Resampling
from rasterio.errors import NotGeoreferencedWarning, RasterioIOError
from rasterio.warp import transform_bounds

from eopack_eo_common.dask_cluster import dask_client, performance_report
from eopack_eo_common.download import fetch
from eopack_eo_common.errors import ToolInputError
from eopack_eo_common.output import staged_output
from eopack_eo_common.stac import save_catalog
from eopack_eo_common.urlguard import parse_url

__all__ = [
    "FUNCTIONS",
    "GLOBAL_FOOTPRINT",
    "MAX_BYTES_IN_MEMORY",
    "MAX_SAMPLES",
    "VERSION",
    "Size",
    "check_samples",
    "convert",
    "parse_size",
]

log = logging.getLogger(__name__)

VERSION = version("eopack-convert-url")  # one source: tools/convert-url/pyproject.toml

#: What an image without georeferencing covers: anywhere (as EOEPCA's convert-url writes it).
GLOBAL_FOOTPRINT: dict[str, Any] = {
    "type": "Polygon",
    "coordinates": [[[-180.0, -90.0], [180.0, -90.0], [180.0, 90.0], [-180.0, 90.0], [-180.0, -90.0]]],
}

# What one image may hold, source or target, checked from the header before a pixel is decoded:
# a 77-byte PNG may declare 65535x65535 pixels, a 111 KB sparse GeoTIFF 10 GiB.
MAX_SAMPLES = 100_000_000  # pixels x bands
MAX_BYTES_IN_MEMORY = 512 * 1024**2  # pixels x bands x bytes per sample

_SIZE = re.compile(r"^\s*(?:(?P<pct>\d+(?:\.\d+)?)%|(?P<w>\d+)x(?P<h>\d+))\s*$", re.IGNORECASE)
_MEDIA = {
    "GTiff": pystac.MediaType.GEOTIFF,
    "PNG": pystac.MediaType.PNG,
    "JPEG": pystac.MediaType.JPEG,
    "GIF": "image/gif",
    "WEBP": "image/webp",
    "BMP": "image/bmp",
    "TIFF": pystac.MediaType.TIFF,
}
_SUFFIX = {
    "GTiff": ".tif",
    "PNG": ".png",
    "JPEG": ".jpg",
    "GIF": ".gif",
    "WEBP": ".webp",
    "BMP": ".bmp",
    "TIFF": ".tif",
}


@dataclass(frozen=True)
class Size:
    """Either a scale factor (``50%``) or an exact ``WIDTHxHEIGHT`` in pixels."""

    scale: float | None = None
    width: int | None = None
    height: int | None = None

    def target(self, width: int, height: int) -> tuple[int, int]:
        if self.scale is not None:
            return max(1, round(width * self.scale)), max(1, round(height * self.scale))
        assert self.width is not None and self.height is not None
        return self.width, self.height


def parse_size(text: str) -> Size:
    """Parse ``50%`` or ``WIDTHxHEIGHT``.

    >>> parse_size("50%"), parse_size("640x480")
    (Size(scale=0.5, width=None, height=None), Size(scale=None, width=640, height=480))
    """
    match = _SIZE.match(text or "")
    if match is None:
        raise ToolInputError(
            f"size must be a percentage like '50%' or WIDTHxHEIGHT like '640x480'; got {text!r}"
        )
    if match["pct"] is not None:
        pct = float(match["pct"])
        if not 0 < pct <= 1000:
            raise ToolInputError(f"size percentage must be above 0% and at most 1000%; got {text!r}")
        return Size(scale=pct / 100)
    width, height = int(match["w"]), int(match["h"])
    if not (0 < width <= 65535 and 0 < height <= 65535):
        raise ToolInputError(f"size WIDTHxHEIGHT must be between 1 and 65535 pixels each; got {text!r}")
    return Size(width=width, height=height)


def check_samples(what: str, width: int, height: int, bands: int, itemsize: int) -> None:
    """Refuse an image too large to hold in memory, before reading or resizing it.

    >>> check_samples("source", 640, 480, 3, 1)
    >>> check_samples("source", 65535, 65535, 4, 1)  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    ToolInputError: ...
    """
    samples = width * height * bands
    size = samples * itemsize
    if samples > MAX_SAMPLES or size > MAX_BYTES_IN_MEMORY:
        raise ToolInputError(
            f"the {what} image would be {width}x{height} pixels x {bands} band(s) ({samples:,} samples, "
            f"{size / 1024**2:,.0f} MiB), over the limit of {MAX_SAMPLES:,} samples and "
            f"{MAX_BYTES_IN_MEMORY // 1024**2} MiB; use a smaller image or size"
        )


def _pil_itemsize(mode: str) -> int:
    if mode in ("I", "F"):
        return 4
    return 2 if mode.startswith("I;16") else 1


def _resample_pixels(pixels: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Average-resample a (bands, rows, cols) array with GDAL; runs on a Dask worker."""
    from rasterio.warp import reproject

    out = np.zeros((pixels.shape[0], *shape), dtype=pixels.dtype)
    rows, cols = pixels.shape[1:]
    # Same CRS, scaled pixel size: GDAL's resampling without any reprojection.
    src = rasterio.Affine.scale(1.0, 1.0)
    dst = rasterio.Affine.scale(cols / shape[1], rows / shape[0])
    reproject(
        pixels,
        out,
        src_transform=src,
        dst_transform=dst,
        src_crs="EPSG:3857",
        dst_crs="EPSG:3857",
        resampling=Resampling.average if shape[0] < rows else Resampling.bilinear,
    )
    return out


def _resize_geotiff(src_path: Path, dst_path: Path, size: Size, client: Any) -> dict[str, Any]:
    with rasterio.open(src_path) as src:
        width, height = size.target(src.width, src.height)
        pixels = src.read()
        profile = src.profile.copy()
        transform = src.transform @ rasterio.Affine.scale(src.width / width, src.height / height)
        crs, nodata = src.crs, src.nodata
    resized = client.submit(_resample_pixels, pixels, (height, width), pure=False).result()
    profile.update(
        width=width,
        height=height,
        transform=transform,
        driver="GTiff",
        tiled=True,
        blockxsize=256,
        blockysize=256,
        compress="deflate",
    )
    if width < 256 or height < 256:
        profile.update(tiled=False)
        profile.pop("blockxsize")
        profile.pop("blockysize")
    with rasterio.open(dst_path, "w", **profile) as dst:
        dst.write(resized)
    west, south, east, north = rasterio.transform.array_bounds(height, width, transform)
    return {
        "crs": crs,
        "transform": transform,
        "shape": (height, width),
        "nodata": nodata,
        "bounds": (west, south, east, north),
    }


def _resize_picture(src_path: Path, dst_path: Path, size: Size, fmt: str, client: Any) -> dict[str, Any]:
    with Image.open(src_path) as img:
        width, height = size.target(*img.size)
        img.load()
        # Area averaging when shrinking (no aliasing), bicubic when enlarging.
        method = (
            Image.Resampling.BOX if width * height < img.size[0] * img.size[1] else Image.Resampling.BICUBIC
        )
        resized = client.submit(lambda im: im.resize((width, height), method), img, pure=False).result()
        resized.save(dst_path, format=fmt)
    return {"shape": (height, width)}


def _check_dimensions(path: Path, fmt: str, size: Size) -> None:
    """Check source and target against the limits from the image header alone (no pixel is decoded)."""
    if fmt == "GTiff":
        with rasterio.open(path) as src:
            width, height, bands = src.width, src.height, src.count
            itemsize = max(np.dtype(d).itemsize for d in src.dtypes)
    else:
        with Image.open(path) as img:
            (width, height), bands, itemsize = img.size, len(img.getbands()), _pil_itemsize(img.mode)
    check_samples("source", width, height, bands, itemsize)
    check_samples("target", *size.target(width, height), bands, itemsize)


def _identify(path: Path, content_type: str | None) -> str:
    """Return a GDAL/Pillow format name, or explain why this is not an image."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(path) as src:
                if src.driver == "GTiff" and src.crs is not None:
                    return "GTiff"
    except RasterioIOError:
        pass
    try:
        with Image.open(path) as img:
            img.verify()
            fmt = img.format or ""
    except Image.DecompressionBombError as err:
        raise ToolInputError(f"the source image is too large to decode safely: {err}") from None
    except (UnidentifiedImageError, OSError, SyntaxError):
        raise ToolInputError(
            f"the downloaded content is not an image (server said Content-Type: {content_type or 'none'}); "
            "check that the url points at an image file"
        ) from None
    if fmt not in _MEDIA:
        raise ToolInputError(f"image format {fmt} is not supported; use one of {', '.join(sorted(_MEDIA))}")
    return fmt


def _item_id(url: str) -> str:
    """A STAC-safe id from the file name in the URL.

    >>> _item_id("https://eoepca.org/media_portal/images/logo6_med.original.png")
    'logo6_med.original'
    """
    name = unquote(Path(urlsplit(url).path).name) or "image"
    stem = name.rsplit(".", 1)[0] if "." in name else name
    return re.sub(r"[^A-Za-z0-9._-]+", "-", stem).strip("-.") or "image"


def resize(
    src: Path, dst_dir: Path, stem: str, fmt: str, size: Size, client: Any
) -> tuple[Path, dict[str, Any]]:
    """The ``resize`` function of convert-url: scale an image to ``size``."""
    dst = dst_dir / f"{stem}{_SUFFIX[fmt]}"
    if fmt == "GTiff":
        return dst, _resize_geotiff(src, dst, size, client)
    return dst, _resize_picture(src, dst, size, fmt, client)


FUNCTIONS: dict[str, Callable[..., tuple[Path, dict[str, Any]]]] = {"resize": resize}


def _make_item(
    item_id: str,
    image: Path,
    fmt: str,
    info: dict[str, Any],
    url: str,
    fn: str,
    size_text: str,
    when: dt.datetime,
) -> pystac.Item:
    georeferenced = "crs" in info
    if georeferenced:
        bbox = list(transform_bounds(info["crs"], "EPSG:4326", *info["bounds"], densify_pts=21))
        west, south, east, north = bbox
        geometry: dict[str, Any] = {
            "type": "Polygon",
            "coordinates": [[[west, south], [east, south], [east, north], [west, north], [west, south]]],
        }
    else:  # docs/adr/0005: a catalog indexes by footprint; "anywhere", and say so
        bbox, geometry = [-180.0, -90.0, 180.0, 90.0], GLOBAL_FOOTPRINT
    item = pystac.Item(
        id=item_id,
        geometry=geometry,
        bbox=bbox,
        datetime=when,
        properties={
            "processing:software": {"eopack-convert-url": VERSION},
            "eopack:source_url": url,
            "eopack:function": f"{fn} {size_text}",
            "eopack:georeferenced": georeferenced,
        },
    )
    rows, cols = info["shape"]
    asset = pystac.Asset(
        href=str(image), media_type=_MEDIA[fmt], roles=["data"], title=f"{image.name} ({cols}x{rows} px)"
    )
    item.add_asset("data", asset)
    if "crs" in info:
        proj = ProjectionExtension.ext(item, add_if_missing=True)
        epsg = info["crs"].to_epsg()
        proj.code = f"EPSG:{epsg}" if epsg else None
        if epsg is None:
            proj.wkt2 = info["crs"].to_wkt()
        proj.shape = [rows, cols]
        proj.transform = list(info["transform"])[:6]
    return item


def convert(
    url: str,
    fn: str,
    size_text: str,
    outdir: Path,
    *,
    max_bytes: int,
    timeout: float,
    dask_report: bool = False,
) -> Path:
    """Run convert-url end to end into ``outdir``; return the path of ``catalog.json``."""
    if fn not in FUNCTIONS:
        raise ToolInputError(f"fn {fn!r} is not supported; use one of: {', '.join(sorted(FUNCTIONS))}")
    size = parse_size(size_text)
    parse_url(url)  # the URL guard's parser: a broken or ambiguous URL is an input error, before anything
    if max_bytes < 1:
        raise ToolInputError(f"max_bytes must be a positive number of bytes; got {max_bytes}")
    if not timeout > 0:
        raise ToolInputError(f"timeout must be a positive number of seconds; got {timeout:g}")
    item_id = _item_id(url)
    with staged_output(outdir) as stage:
        download_dir = stage / ".download"
        download_dir.mkdir()
        got = fetch(url, download_dir / "source", max_bytes=max_bytes, timeout=timeout)
        fmt = _identify(got.path, got.content_type)
        _check_dimensions(got.path, fmt, size)
        item_dir = stage / item_id
        item_dir.mkdir()
        report = stage / "dask-report.html" if dask_report else None
        with dask_client() as client, performance_report(report):
            image, info = FUNCTIONS[fn](got.path, item_dir, item_id, fmt, size, client)
        log.info("%s %s: %s -> %s", fn, size_text, got.url, image.name)
        got.path.unlink()
        download_dir.rmdir()
        when = dt.datetime.now(dt.UTC).replace(microsecond=0)
        catalog = pystac.Catalog(
            id="convert-url", description=f"{fn} {size_text} of {url}", title="convert-url result"
        )
        catalog.add_item(_make_item(item_id, image, fmt, info, url, fn, size_text, when))
        save_catalog(catalog, stage)
    return outdir / "catalog.json"
