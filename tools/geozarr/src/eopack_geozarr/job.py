"""The job of a GeozarrJob run: its inputs, defaults and where the product comes from."""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

from eopack_eo_common.download import fetch
from eopack_eo_common.errors import ToolInputError
from eopack_eo_common.urlguard import parse_url

log = logging.getLogger(__name__)

VERSION = version("eopack-geozarr")  # one source: tools/geozarr/pyproject.toml
LAYOUTS = ("generic", "s2-optimized")
ZARR_MEDIA_TYPE = "application/vnd+zarr"
DEFAULT_GROUPS = (
    "/measurements/reflectance/r10m",
    "/measurements/reflectance/r20m",
    "/measurements/reflectance/r60m",
)
PREFLIGHT_TIMEOUT = 10.0  # seconds for each network probe and read of an input
_URL_SCHEMES = ("http", "https", "s3")


def normalise_groups(text: str | Iterable[str] | None) -> tuple[str, ...]:
    """Group paths from space- or comma-separated text: absolute, no trailing ``/``, no duplicates.

    >>> normalise_groups("measurements/reflectance/r10m, /measurements/reflectance/r20m/")
    ('/measurements/reflectance/r10m', '/measurements/reflectance/r20m')
    """
    if text is None:
        return DEFAULT_GROUPS
    parts = text.replace(",", " ").split() if isinstance(text, str) else list(text)
    groups: list[str] = []
    for part in parts:
        path = "/" + part.strip().strip("/")
        if path != "/" and path not in groups:
            groups.append(path)
    if not groups:
        raise ToolInputError(
            "groups is empty; give at least one group such as /measurements/reflectance/r10m"
        )
    return tuple(groups)


@dataclass(frozen=True)
class GeozarrJob:
    """The tool's inputs, validated. ``source`` is a local path or an http(s)/s3 URL of the store."""

    source: str
    groups: tuple[str, ...] = DEFAULT_GROUPS
    layout: str = "generic"
    spatial_chunk: int = 4096
    min_dimension: int = 256
    dask_report: bool = False
    tarball: bool = False
    item: dict[str, Any] | None = field(default=None, compare=False)

    @property
    def is_url(self) -> bool:
        return urlsplit(self.source).scheme in _URL_SCHEMES

    @property
    def name(self) -> str:
        """The product name: the store's last path element without ``.zarr``."""
        last = urlsplit(self.source).path.rstrip("/").rsplit("/", 1)[-1] or "product"
        return last.removesuffix(".zarr") or "product"

    @classmethod
    def from_args(
        cls,
        *,
        zarr_url: str | None = None,
        stac_item: str | None = None,
        input_zarr: Path | None = None,
        groups: str | None = None,
        layout: str = "generic",
        spatial_chunk: int = 4096,
        min_dimension: int = 256,
        dask_report: bool = False,
        tarball: bool = False,
    ) -> GeozarrJob:
        given = [
            n for n, v in (("zarr_url", zarr_url), ("stac_item", stac_item), ("input_zarr", input_zarr)) if v
        ]
        if len(given) != 1:
            raise ToolInputError(
                f"give exactly one of zarr_url, stac_item, input_zarr; got {', '.join(given) or 'none'}"
            )
        if layout not in LAYOUTS:
            raise ToolInputError(f"layout must be one of {', '.join(LAYOUTS)}; got {layout!r}")
        if spatial_chunk < 16:
            raise ToolInputError(f"spatial_chunk must be at least 16 pixels; got {spatial_chunk}")
        if min_dimension < 1:
            raise ToolInputError(f"min_dimension must be a positive number of pixels; got {min_dimension}")
        item: dict[str, Any] | None = None
        if zarr_url:
            if zarr_url.lower().startswith(("http://", "https://")):
                parse_url(zarr_url)  # the URL guard's parser: ambiguous or broken URLs are input errors
            elif not zarr_url.startswith("s3://"):
                raise ToolInputError(f"zarr_url must start with http://, https:// or s3://; got {zarr_url!r}")
            source = zarr_url.rstrip("/")
        elif stac_item:
            item, source = resolve_stac_item(stac_item)
        else:
            assert input_zarr is not None
            if not input_zarr.is_dir():
                raise ToolInputError(f"input_zarr {input_zarr} is not a folder; give the .zarr store folder")
            source = str(input_zarr.resolve())
        return cls(
            source, normalise_groups(groups), layout, spatial_chunk, min_dimension, dask_report, tarball, item
        )


def _zarr_asset(item: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The asset holding the Zarr store: by media type, then by href, preferring role ``data``."""
    assets = item.get("assets") or {}
    candidates = [
        (key, asset)
        for key, asset in assets.items()
        if "zarr" in str(asset.get("type", "")).lower()
        or str(asset.get("href", "")).rstrip("/").endswith(".zarr")
    ]
    candidates.sort(key=lambda kv: "data" not in (kv[1].get("roles") or []))
    if not candidates:
        raise ToolInputError(
            f"STAC item {item.get('id', '?')!r} has no Zarr asset (type {ZARR_MEDIA_TYPE} or href ending "
            f".zarr); its assets are: {', '.join(assets) or 'none'}"
        )
    return candidates[0]


def resolve_stac_item(ref: str) -> tuple[dict[str, Any], str]:
    """Read a STAC item (URL or local file) and return it with the absolute location of its Zarr asset."""
    if ref.lower().startswith(("http://", "https://")):
        with tempfile.TemporaryDirectory() as tmp:
            got = fetch(
                ref, Path(tmp) / "item.json", max_bytes=10 * 1024**2, timeout=PREFLIGHT_TIMEOUT, deadline=60
            )
            text = got.path.read_text()
            base = got.url
    else:
        path = Path(ref.removeprefix("file://"))
        if not path.is_file():
            raise ToolInputError(f"stac_item {ref} is not a file or an http(s) URL")
        text, base = path.read_text(), path.resolve().as_uri()
    try:
        item = json.loads(text)
    except ValueError as err:
        raise ToolInputError(f"stac_item {ref} is not JSON: {err}") from None
    if not isinstance(item, dict) or item.get("type") != "Feature":
        raise ToolInputError(f'stac_item {ref} is not a STAC item (no "type": "Feature")')
    key, asset = _zarr_asset(item)
    href = urljoin(base, str(asset["href"]))
    if not base.startswith("file://") and urlsplit(href).scheme not in _URL_SCHEMES:
        # A remote item must not point this tool at local files (or any non-network scheme).
        raise ToolInputError(
            f"asset {key!r} of the remote STAC item {ref} points to {href}; a remote item's Zarr asset "
            "must be an http(s) or s3 URL"
        )
    if urlsplit(href).scheme in ("http", "https"):
        parse_url(href)
    if href.startswith("file://"):
        href = href.removeprefix("file://")
        if not Path(href).is_dir():
            raise ToolInputError(
                f"asset {key!r} of STAC item {ref} points to {href}, which is not a folder here; "
                "stage the store with the item or use an item whose asset href is a URL"
            )
    log.info("STAC item %s: asset %r -> %s", item.get("id", "?"), key, href)
    return item, href.rstrip("/")
