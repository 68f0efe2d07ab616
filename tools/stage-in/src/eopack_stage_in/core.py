"""Stage STAC items into a local folder: the EOEPCA stage-in contract, for one or many items.

The platform's default stage-in (ZOO-Project charts, ``cwlwrapper-assets/stagein.yaml``) takes one
STAC Item URL and writes a self-contained ``catalog.json`` whose item is a direct child, with the
item's assets downloaded beside it. This does the same, and accepts more than one item per URL, so
a median over many dates can be staged through the single URI input the wrapper gives a stage-in
(``docs/staging.md`` says why):

* a STAC Item (``"type": "Feature"``);
* a STAC API search or any ItemCollection (``"type": "FeatureCollection"``), following ``next``
  links (GET) until the last page;
* a static Catalog or Collection, whose items are collected recursively.

Several references may be given on the command line; items are staged once each (by id).

Output layout (what ``pystac.Catalog.from_file(".../catalog.json").get_items()`` returns, without
recursion, is every staged item)::

    catalog.json
    <item id>/<item id>.json
    <item id>/<asset file>      # one per asset, named after the URL's last path segment

Downloads use eo-common's bounded fetch: http(s) only, size and time limits, and no private
addresses unless ``EOPACK_ALLOW_PRIVATE_URLS=1`` (the runners forward it for loopback tests).
``file://`` URLs and local paths are copied.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

import pystac

from eopack_eo_common.download import fetch
from eopack_eo_common.errors import ToolError, ToolInputError

__all__ = ["CATALOG_ID", "VERSION", "Staged", "read_json", "stage_file", "stage_in"]

VERSION = version("eopack-stage-in")  # one source: tools/stage-in/pyproject.toml

log = logging.getLogger(__name__)

CATALOG_ID = "catalog"
MAX_PAGES = 1000
# Links that point back into the source archive: dropped, so the staged catalog stands alone.
_SOURCE_RELS = {"self", "root", "parent", "collection", "items", "next", "prev", "previous"}


@dataclass(frozen=True)
class Staged:
    """What was staged: the catalog file, the item ids (in order) and the bytes downloaded."""

    catalog: Path
    item_ids: tuple[str, ...]
    bytes: int


def _is_remote(ref: str) -> bool:
    return urlsplit(ref).scheme in {"http", "https"}


def _local_path(ref: str) -> Path:
    parts = urlsplit(ref)
    if parts.scheme == "file":
        return Path(unquote(parts.path))
    if parts.scheme:
        raise ToolInputError(f"unsupported reference {ref!r}: give an http(s) URL, a file:// URL or a path")
    return Path(ref)


def _copy_or_fetch(ref: str, dest: Path, *, max_bytes: int, timeout: float) -> int:
    dest.parent.mkdir(parents=True, exist_ok=True)
    if _is_remote(ref):
        return fetch(ref, dest, max_bytes=max_bytes, timeout=timeout).size
    source = _local_path(ref)
    if not source.is_file():
        raise ToolInputError(f"{ref} does not exist or is not a file")
    shutil.copyfile(source, dest)
    return dest.stat().st_size


def read_json(ref: str, *, timeout: float = 30.0, max_bytes: int = 64 * 1024**2) -> dict[str, Any]:
    """The JSON document at ``ref`` (URL, file:// URL or path); one clear error when it is not JSON."""
    with tempfile.TemporaryDirectory(prefix="stage-in-") as tmp:
        dest = Path(tmp) / "doc.json"
        _copy_or_fetch(ref, dest, max_bytes=max_bytes, timeout=timeout)
        try:
            doc = json.loads(dest.read_text())
        except (UnicodeDecodeError, ValueError):
            raise ToolInputError(f"{ref} is not a JSON document (a STAC Item, search or catalog)") from None
    if not isinstance(doc, dict):
        raise ToolInputError(f"{ref} holds JSON but not a STAC object")
    return doc


def _absolute(href: str, base: str) -> str:
    if _is_remote(href) or urlsplit(href).scheme == "file" or href.startswith("/"):
        return href
    if _is_remote(base) or urlsplit(base).scheme == "file":
        return urljoin(base, href)
    return str((Path(base).parent / href).resolve())


def _item(doc: dict[str, Any], base: str) -> pystac.Item:
    """An item with absolute asset hrefs (relative ones resolved against where it was read)."""
    doc = dict(doc)
    self_href = next((lk["href"] for lk in doc.get("links", []) if lk.get("rel") == "self"), None)
    where = _absolute(self_href, base) if self_href else base
    try:
        item = pystac.Item.from_dict(doc, migrate=True)
    except (KeyError, TypeError, ValueError, pystac.STACError) as err:
        raise ToolInputError(f"{base}: an item is not valid STAC ({err})") from None
    for asset in item.assets.values():
        asset.href = _absolute(asset.href, where)
    return item


def _items(ref: str, timeout: float) -> Iterator[pystac.Item]:
    doc = read_json(ref, timeout=timeout)
    kind = doc.get("type")
    if kind == "Feature":
        yield _item(doc, ref)
        return
    if kind == "FeatureCollection":
        page, url, pages = doc, ref, 0
        while True:
            for feature in page.get("features", []):
                yield _item(feature, url)
            nxt = next(
                (lk for lk in page.get("links", []) if lk.get("rel") == "next" and lk.get("href")),
                None,
            )
            pages += 1
            if nxt is None:
                return
            if str(nxt.get("method", "GET")).upper() != "GET":
                raise ToolInputError(
                    f"{url}: the next page needs {nxt['method']}; give a GET search URL (…/search?…)"
                )
            if pages >= MAX_PAGES:
                raise ToolInputError(f"{ref}: more than {MAX_PAGES} pages; narrow the search")
            url = _absolute(nxt["href"], url)
            page = read_json(url, timeout=timeout)
        return
    if kind in {"Catalog", "Collection"}:
        href = ref if _is_remote(ref) or urlsplit(ref).scheme == "file" else str(_local_path(ref).resolve())
        try:
            root = pystac.read_file(href)
        except Exception as err:  # pystac raises many kinds on a broken tree
            raise ToolInputError(f"{ref}: cannot read the catalog ({err})") from None
        assert isinstance(root, pystac.Catalog)
        for item in root.get_items(recursive=True):
            item.make_asset_hrefs_absolute()
            yield item
        return
    raise ToolInputError(
        f"{ref} is a {kind or 'JSON object without type'}, not a STAC Item, ItemCollection/search or Catalog"
    )


def _asset_name(href: str, key: str, taken: set[str]) -> str:
    name = Path(unquote(urlsplit(href).path)).name or key
    if name in taken or name.endswith(".json"):
        suffix = Path(name).suffix
        name = f"{key}{suffix}"
    taken.add(name)
    return name


def stage_in(
    references: Sequence[str],
    outdir: Path,
    *,
    max_bytes: int = 4 * 1024**3,
    timeout: float = 60.0,
) -> Staged:
    """Stage every item the references name into ``outdir`` (see the module docstring)."""
    if not references:
        raise ToolInputError("give at least one reference (a STAC Item URL, search URL or catalog)")
    outdir.mkdir(parents=True, exist_ok=True)
    if (outdir / "catalog.json").exists():
        raise ToolInputError(f"{outdir} already holds a catalog.json; stage into an empty folder")
    seen: dict[str, pystac.Item] = {}
    for ref in references:
        found = 0
        for item in _items(ref, timeout):
            found += 1
            seen.setdefault(item.id, item)
        if not found:
            raise ToolInputError(f"{ref} names no STAC item; check the search parameters")
        log.info("%s: %d item(s)", ref, found)
    catalog = pystac.Catalog(
        id=CATALOG_ID,
        description=f"{len(seen)} staged item(s)",
        title=f"catalog with staged {', '.join(sorted(seen)) if len(seen) <= 3 else f'{len(seen)} items'}",
    )
    total = 0
    for item_id, item in sorted(seen.items(), key=lambda kv: kv[0]):
        folder = outdir / item_id
        taken: set[str] = set()
        for key, asset in item.assets.items():
            name = _asset_name(asset.href, key, taken)
            total += _copy_or_fetch(asset.href, folder / name, max_bytes=max_bytes, timeout=timeout)
            asset.href = str((folder / name).resolve())
        collection_id = item.collection_id
        item.links = [lk for lk in item.links if lk.rel not in _SOURCE_RELS]
        item.collection_id = collection_id  # the id stays; the link to the archive does not
        catalog.add_item(item)
    catalog.normalize_hrefs(str(outdir.resolve()))
    catalog.make_all_asset_hrefs_relative()
    catalog.save(catalog_type=pystac.CatalogType.SELF_CONTAINED)
    log.info("staged %d item(s), %d bytes, into %s", len(seen), total, outdir)
    return Staged(outdir / "catalog.json", tuple(sorted(seen)), total)


def stage_file(reference: str, outdir: Path, *, max_bytes: int = 4 * 1024**3, timeout: float = 60.0) -> Path:
    """Download (or copy) the one file ``reference`` names into ``outdir``, under its own name."""
    name = Path(unquote(urlsplit(reference).path)).name
    if not name:
        raise ToolInputError(f"{reference} does not end in a file name")
    dest = outdir / name
    try:
        _copy_or_fetch(reference, dest, max_bytes=max_bytes, timeout=timeout)
    except ToolError:
        dest.unlink(missing_ok=True)
        raise
    return dest
