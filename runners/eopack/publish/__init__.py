"""Publish a run's STAC results into a STAC API: validate everything, place the assets, then ingest.

Why it is built this way (issue 14, seed 004 "generate + validate + ingest"):

* **All or nothing on validity.** Every document of the run (catalogs, collections, items) is checked
  before the first byte is written anywhere, so a broken item can never leave a half-published
  collection behind. Checks: the field's validator (stac-validator) against the core STAC schemas,
  plus our house rules (DESIGN.md §3: geometry, bbox, datetime, asset roles and media types,
  hrefs that resolve). Errors name the file and the rule (``[item_datetime]``).
* **Offline, never hanging.** stac-validator fetches schemas over HTTP. The core 1.1.0 schemas
  ship inside pystac, so we hand stac-validator a schema map onto those files and replace its
  schema fetcher with one that refuses URLs: nothing waits on a network timeout. Extension schemas
  (raster, projection, ...) live only on the web; they are reported as "not checked" unless the
  user maps them to local copies (``--schema-map URL FILE``).
* **Assets before items.** Asset hrefs are rewritten to where the files are published (our local
  stack's nginx serves ``<state>/published/``; any folder + base URL; or an object-storage URL
  template, for which we only print what to upload), and files are copied before any item becomes
  searchable, so a search result never points at a missing file.
* **Idempotent.** Collections are created only when missing (an existing one just has its extent
  widened); items are POSTed and, on 409, PUT. Publishing twice updates and never duplicates.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ..clients.stac import StacApi, StacApiError, TransactionsDisabledError, declares_transactions
from ..console import Progress
from ..errors import EopackError
from ..services import stac as stac_service
from .placement import AssetTarget, LocalAssets, PublishUsageError, TemplateAssets, Upload, asset_rel
from .reader import Group, RunContent, for_api, generated_collection, merged_extent, read_run
from .validator import (
    OfflineStacValidator,
    Problem,
    PublishInvalidError,
    id_problem,
    is_remote,
    local_path,
    outside,
)

__all__ = [
    "AssetTarget",
    "LocalAssets",
    "OfflineStacValidator",
    "Problem",
    "PublishIncompleteError",
    "PublishInvalidError",
    "PublishResult",
    "PublishUsageError",
    "StacApiError",
    "TemplateAssets",
    "TransactionsDisabledError",
    "Upload",
    "publish",
    "read_run",
]

# ------------------------------------------------------------------ publishing


class PublishIncompleteError(EopackError):
    """The API failed part-way: some items are live, the rest not; re-running finishes (idempotent)."""

    def __init__(self, done: int, total: int, cause: Exception) -> None:
        self.done, self.total, self.cause = done, total, cause
        super().__init__(
            f"{done} of {total} items published; re-run the same command to finish (publishing is "
            f"idempotent). Stopped by: {cause}"
        )


@dataclass(frozen=True)
class PublishResult:
    """What was published where; ``uploads`` lists every asset file and its URL."""

    api_url: str
    collections: tuple[str, ...]
    created: tuple[str, ...]
    updated: tuple[str, ...]
    uploads: tuple[Upload, ...]
    copied: int
    unchecked: tuple[str, ...]
    target: str
    browser_urls: tuple[str, ...] = ()  # STAC Browser's page of each collection (local stack only)

    @property
    def collection_urls(self) -> list[str]:
        return [f"{self.api_url}/collections/{quote(c)}" for c in self.collections]


def _browser_urls(api_url: str, state_dir: Path | None, collections: tuple[str, ...]) -> tuple[str, ...]:
    """STAC Browser's page of each collection when ``api_url`` is a local stack that serves one."""
    stack = stac_service.find_local_stack(api_url, state_dir)
    if stack is None:
        return ()
    urls = (stac_service.browser_url(stack, cid) for cid in collections)
    return tuple(url for url in urls if url)


def _write_token(api_url: str, state_dir: Path | None) -> str | None:
    """``EOPACK_STAC_TOKEN``, else the local stack's own token file (mode 600), else none."""
    if os.environ.get("EOPACK_STAC_TOKEN"):
        return os.environ["EOPACK_STAC_TOKEN"]
    stack = stac_service.find_local_stack(api_url, state_dir)
    return stac_service.write_token(stack) if stack is not None else None


def default_target(api_url: str, state_dir: Path | None = None) -> AssetTarget:
    """Our local stack's ``published/`` folder, found from the API URL; else a usage error."""
    stack = stac_service.find_local_stack(api_url, state_dir)
    if stack is None:
        raise PublishUsageError(
            f"{api_url} is not a local stack started by `eopack stac up`, so there is no default place "
            "for the asset files: give --assets-dir DIR --assets-url URL (a folder your web server "
            "serves) or --assets-url-template 's3://bucket/{collection}/{item}/{asset}'"
        )
    folder, url = stac_service.published_location(stack)
    return LocalAssets(folder, url)


def _plan(content: RunContent, target: AssetTarget) -> tuple[dict[str, list[dict[str, Any]]], list[Upload]]:
    """Items as the API should hold them (hrefs rewritten, collection set) and the files to place."""
    planned: dict[str, list[dict[str, Any]]] = {}
    uploads: dict[Path, Upload] = {}
    for cid, group in content.groups.items():
        for path, item in group.items:
            doc = for_api(item)
            doc["collection"] = cid
            for key, asset in doc.get("assets", {}).items():
                href = str(asset["href"])
                if is_remote(href):
                    continue  # already published somewhere
                source = local_path(href, path.parent)
                if outside(source, path.parent):  # read_run refused it already; never copy it
                    raise PublishInvalidError(
                        [Problem(path, "asset_outside_item", f"asset {key!r} is outside the item's folder")]
                    )
                upload = target.place(cid, str(doc["id"]), key, source, asset_rel(source, path))
                uploads.setdefault(source, upload)
                asset["href"] = upload.url
            planned.setdefault(cid, []).append(doc)
    return planned, list(uploads.values())


def _collection_doc(group: Group) -> dict[str, Any]:
    if len(group.sources) == 1:
        doc = for_api(group.sources[0][1])
        doc["id"] = group.collection_id
        for asset in (doc.get("assets") or {}).values():
            if not is_remote(str(asset.get("href", ""))):
                asset.pop("href", None)
        doc["assets"] = {k: v for k, v in (doc.get("assets") or {}).items() if "href" in v}
        if not doc["assets"]:
            doc.pop("assets")
        return doc
    return generated_collection(group)


def _ensure_collection(api: StacApi, doc: dict[str, Any], say: Progress) -> None:
    """Create when missing; when present, only widen its extent (never drop others' metadata)."""
    cid = str(doc["id"])
    path = f"/collections/{quote(cid)}"
    response = api.request("GET", path)
    if response.status_code == 404:
        created = api.request("POST", "/collections", doc)
        if created.status_code in (404, 405, 501):
            raise TransactionsDisabledError(api.url, f"POST /collections answered {created.status_code}")
        if created.status_code == 409:  # created meanwhile by someone else: fine
            return
        if created.status_code not in (200, 201):
            raise api.fail(created, "POST /collections")
        say(f"collection {cid}: created")
        return
    if response.status_code != 200:
        raise api.fail(response, f"GET {path}")
    existing = for_api(response.json())
    extent = merged_extent(existing, doc)
    if extent == existing.get("extent"):
        say(f"collection {cid}: exists")
        return
    updated = api.request("PUT", path, {**existing, "extent": extent})
    if updated.status_code in (404, 405, 501):
        raise TransactionsDisabledError(api.url, f"PUT {path} answered {updated.status_code}")
    if updated.status_code not in (200, 201, 204):
        raise api.fail(updated, f"PUT {path}")
    say(f"collection {cid}: exists, extent widened to cover the new items")


def _upsert_item(api: StacApi, cid: str, item: dict[str, Any]) -> str:
    """POST, and PUT on 409: 'created' or 'updated'."""
    items = f"/collections/{quote(cid)}/items"
    response = api.request("POST", items, item)
    if response.status_code in (200, 201):
        return "created"
    if response.status_code in (404, 405, 501):
        raise TransactionsDisabledError(api.url, f"POST {items} answered {response.status_code}")
    if response.status_code != 409:
        raise api.fail(response, f"POST {items} ({item['id']})")
    one = f"{items}/{quote(str(item['id']))}"
    response = api.request("PUT", one, item)
    if response.status_code not in (200, 201, 204):
        raise api.fail(response, f"PUT {one}")
    return "updated"


def publish(
    run_dir: Path,
    api_url: str,
    *,
    collection: str | None = None,
    target: AssetTarget | None = None,
    state_dir: Path | None = None,
    schema_map: Mapping[str, str] | None = None,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> PublishResult:
    """Validate every STAC document of ``run_dir``, place its assets, and upsert it into ``api_url``.

    Raises PublishInvalidError (nothing written anywhere) when any document breaks a rule,
    ServiceUnavailableError when the API does not answer, TransactionsDisabledError when it is
    read-only. ``target`` defaults to the local stack's published/ folder (found from the URL).
    """
    say = progress or (lambda _msg: None)
    api_url = api_url.rstrip("/")
    content = read_run(Path(run_dir), collection, schema_map)
    say(
        f"validated {content.documents} STAC documents ({content.items} items) with stac-validator "
        f"({', '.join(sorted(content.checked)) or 'no schema available offline'}) and the house rules"
    )
    if content.unchecked:
        say(f"not checked (schemas not available offline): {', '.join(sorted(content.unchecked))}")
    if content.problems:
        for problem in content.problems:
            say(f"invalid: {problem}")
        raise PublishInvalidError(content.problems)
    if not content.items:
        raise PublishInvalidError([Problem(content.roots[0], "run_items", "the catalog holds no items")])
    bad_ids = [
        Problem(content.roots[0], "id_charset", f"collection {why}")
        for why in (id_problem(cid) for cid in content.groups)
        if why
    ]
    if bad_ids:
        for problem in bad_ids:
            say(f"invalid: {problem}")
        raise PublishInvalidError(bad_ids)
    api = StacApi(api_url, _write_token(api_url, state_dir))
    landing = api.landing()
    if declares_transactions(landing) is False:
        raise TransactionsDisabledError(api_url, "its landing page declares no transaction conformance class")
    target = target or default_target(api_url, state_dir)
    planned, uploads = _plan(content, target)
    say(f"assets: {len(uploads)} file(s) to {target.description}")
    if dry_run:
        return PublishResult(
            api_url,
            tuple(planned),
            (),
            (),
            tuple(uploads),
            0,
            tuple(sorted(content.unchecked)),
            target.description,
        )
    copied = sum(target.copy(u) for u in uploads)
    if copied:
        say(f"copied {copied} asset file(s) ({len(uploads) - copied} already up to date)")
    created: list[str] = []
    updated: list[str] = []
    total = sum(len(items) for items in planned.values())
    try:
        for cid, items in planned.items():
            _ensure_collection(api, _collection_doc(content.groups[cid]), say)
            for item in items:
                outcome = _upsert_item(api, cid, item)
                (created if outcome == "created" else updated).append(str(item["id"]))
                say(f"item {cid}/{item['id']}: {outcome}")
    except (EopackError, OSError) as err:
        if isinstance(err, TransactionsDisabledError) and not created and not updated:
            raise
        raise PublishIncompleteError(len(created) + len(updated), total, err) from None
    say(f"published {len(created) + len(updated)} items ({len(created)} created, {len(updated)} updated)")
    return PublishResult(
        api_url,
        tuple(planned),
        tuple(created),
        tuple(updated),
        tuple(uploads),
        copied,
        tuple(sorted(content.unchecked)),
        target.description,
        _browser_urls(api_url, state_dir, tuple(planned)),
    )
