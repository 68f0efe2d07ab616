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

import contextlib
import copy
import functools
import json
import re
import shutil
import string
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote, urlparse

import click
import requests
from rich.markup import escape

from .console import notice
from .errors import EopackError, ServiceUnavailableError
from .services import stac as stac_service

__all__ = [
    "AssetTarget",
    "LocalAssets",
    "OfflineStacValidator",
    "Problem",
    "PublishInvalidError",
    "PublishResult",
    "StacApiError",
    "TemplateAssets",
    "TransactionsDisabledError",
    "Upload",
    "publish",
    "publish_and_report",
    "publish_cmd",
    "read_run",
]

Progress = Callable[[str], None]

STAC_VERSION = "1.1.0"  # what pystac writes and the version whose core schemas pystac bundles
STRUCTURAL_RELS = stac_service.STRUCTURAL_RELS
TEMPLATE_FIELDS = {"collection", "item", "asset", "key", "path"}
TIMEOUT = (5, 60)  # connect fast-fails on a dead host; reads may wait for pgstac
GENERATED = "(generated collection)"


# ------------------------------------------------------------------ errors


class PublishInvalidError(EopackError):
    """At least one document of the run breaks a rule; nothing was published."""

    exit_code = 2

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        first = self.problems[0]
        more = len(self.problems) - 1
        extra = f" (+{more} more problem{'s' * (more > 1)} listed above)" if more else ""
        super().__init__(
            f"{first.path}: {first.rule}: {first.message}{extra}. Nothing was published; "
            "fix the document (or the app that wrote it) and publish again."
        )


class StacApiError(EopackError):
    """The STAC API answered something we cannot continue from."""

    def __init__(self, api_url: str, reason: str, fix: str) -> None:
        self.api_url, self.reason, self.fix = api_url, reason, fix
        super().__init__(f"STAC API {api_url}: {reason}. {fix}")


class TransactionsDisabledError(StacApiError):
    """The API is read-only: its Transactions extension is off."""

    def __init__(self, api_url: str, reason: str) -> None:
        super().__init__(
            api_url,
            f"does not accept transactions ({reason})",
            "Enable the Transactions extension (stac-fastapi: ENABLE_TRANSACTIONS_EXTENSIONS=true; "
            "`eopack stac up` does) or publish to another API.",
        )


# ------------------------------------------------------------------ validation


@dataclass(frozen=True)
class Problem:
    """One broken rule in one file; ``rule`` is a stable id tests and users can grep for."""

    path: Path | str
    rule: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.rule}: {self.message}"


def _pystac_schema_map(version: str = STAC_VERSION) -> dict[str, str]:
    """Remote core-schema URLs → the copies bundled in pystac (the only STAC schemas installed here)."""
    import importlib.resources

    root = importlib.resources.files("pystac.validation.jsonschemas")
    found: dict[str, str] = {}
    base = f"https://schemas.stacspec.org/v{version}"
    for name in ("item", "catalog", "collection"):
        found[f"{base}/{name}-spec/json-schema/{name}.json"] = str(root / f"stac-spec/v{version}/{name}.json")
    for name in (
        "bands",
        "basics",
        "common",
        "data-values",
        "datetime",
        "instrument",
        "licensing",
        "provider",
    ):
        found[f"{base}/item-spec/json-schema/{name}.json"] = str(root / f"stac-spec/v{version}/{name}.json")
    for name in ("Feature", "Geometry"):
        found[f"https://geojson.org/schema/{name}.json"] = str(root / f"geojson/{name}.json")
    return {url: path for url, path in found.items() if Path(path).is_file()}


class _SchemaOffline(LookupError):
    """A schema that would have to come from the network."""

    PREFIX = "schema not available offline: "

    def __init__(self, url: str) -> None:
        super().__init__(f"{self.PREFIX}{url}")


@functools.cache
def _read_schema_file(path: str) -> dict[str, Any]:
    value = json.loads(Path(path).read_text())
    if not isinstance(value, dict):
        raise ValueError(f"schema {path} is not a JSON object")
    return value


def _offline_fetch(path: str) -> dict[str, Any]:
    if urlparse(path).scheme in ("http", "https"):
        raise _SchemaOffline(path)
    return _read_schema_file(path)


@contextlib.contextmanager
def _no_schema_downloads() -> Iterator[Any]:
    """stac-validator with its schema fetcher swapped for a local-only one (restored afterwards).

    ``stac_validator.utilities._schema_cache`` is the single function through which it loads every
    schema and every ``$ref`` (``set_schema_cache_size`` rebinds it the same way), so swapping it
    guarantees no request leaves the machine, whatever a schema references.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # "the PyPI package has moved" notice
        from stac_validator import utilities
        from stac_validator.validate import StacValidate
    saved = utilities._schema_cache
    utilities._schema_cache = _offline_fetch
    try:
        yield StacValidate
    finally:
        utilities._schema_cache = saved


class OfflineStacValidator:
    """stac-validator, fed local schemas only; remembers what it could not check.

    Core schemas: STAC 1.1.0 from pystac's bundle. Extension schemas: only those in ``schema_map``
    (URL → local file), the rest are collected in ``unchecked`` for the report.
    """

    def __init__(self, schema_map: Mapping[str, str] | None = None) -> None:
        self.schema_map = {**_pystac_schema_map(), **dict(schema_map or {})}
        self.unchecked: set[str] = set()
        self.checked: set[str] = set()

    def check(self, doc: dict[str, Any], path: Path | str) -> list[Problem]:
        """Core schema and every locally available extension schema; [] when valid."""
        stac_type = {"Feature": "item", "Collection": "collection"}.get(str(doc.get("type")), "catalog")
        version = str(doc.get("stac_version", ""))
        core = f"https://schemas.stacspec.org/v{version}/{stac_type}-spec/json-schema/{stac_type}.json"
        problems: list[Problem] = []
        with _no_schema_downloads() as stac_validate:
            if core in self.schema_map:
                problems += self._run(stac_validate, doc, path, "stac_schema", core=True)
                self.checked.add(f"core {stac_type} v{version}")
            else:
                self.unchecked.add(f"core {stac_type} schema v{version}")
            for ext in doc.get("stac_extensions", []) or []:
                if ext in self.schema_map:
                    problems += self._run(stac_validate, doc, path, "stac_extension_schema", custom=ext)
                    if not any(u.startswith(f"{ext} ") for u in self.unchecked):
                        self.checked.add(ext)
                else:
                    self.unchecked.add(str(ext))
        return problems

    def _run(
        self, stac_validate: Any, doc: dict[str, Any], path: Path | str, rule: str, **mode: Any
    ) -> list[Problem]:
        validator = stac_validate(None, schema_map=dict(self.schema_map), **mode)
        if validator.validate_dict(copy.deepcopy(doc)):
            return []
        message: dict[str, Any] = next((m for m in validator.message if not m.get("valid_stac", True)), {})
        text = " ".join(str(message.get("error_message", "invalid")).split())
        where = mode.get("custom") or "core schema"
        for marker in (_SchemaOffline.PREFIX, "Unresolvable: "):  # a $ref we do not have: cannot judge
            if marker in text:
                missing = text.split(marker, 1)[1].split()[0].rstrip(".,]")
                self.unchecked.add(f"{where} (needs {missing})")
                return []
        return [Problem(path, rule, f"{_tidy(text)} (stac-validator, {where})")]


def _tidy(text: str, limit: int = 240) -> str:
    """stac-validator's message without the failing value's repr (a whole ``properties`` dict)."""
    match = re.match(r"^([{\[].*[}\]]) (is not|is too|does not|should not|has non-unique) (.*)$", text)
    if match and len(match.group(1)) > 60:
        text = f"the value {match.group(2)} {match.group(3)}"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _is_remote(href: str) -> bool:
    return urlparse(href).scheme not in ("", "file")


def _local_path(href: str, base: Path) -> Path:
    return (
        (base / urlparse(href).path).resolve() if urlparse(href).scheme == "file" else (base / href).resolve()
    )


def _house_rules(doc: dict[str, Any], path: Path) -> Iterator[Problem]:
    """DESIGN.md §3 beyond the JSON schema, plus what pgstac needs (a geometry)."""
    if doc.get("type") != "Feature":
        return
    props = doc.get("properties") or {}
    if doc.get("geometry") is None:
        yield Problem(path, "item_geometry", "item has no geometry (pgstac stores items by footprint)")
    elif not doc.get("bbox"):
        yield Problem(path, "item_bbox", "item has a geometry but no bbox")
    if not (props.get("datetime") or (props.get("start_datetime") and props.get("end_datetime"))):
        yield Problem(path, "item_datetime", "item has neither properties.datetime nor start/end_datetime")
    if not doc.get("assets"):
        yield Problem(path, "item_assets", "item has no assets: there is nothing to publish")
    for key, asset in (doc.get("assets") or {}).items():
        href = str(asset.get("href", ""))
        if not asset.get("roles"):
            yield Problem(path, "asset_roles", f"asset {key!r} has no roles")
        if not asset.get("type"):
            yield Problem(path, "asset_type", f"asset {key!r} has no media type")
        if not href:
            yield Problem(path, "asset_href", f"asset {key!r} has no href")
        elif not _is_remote(href) and not _local_path(href, path.parent).is_file():
            yield Problem(path, "asset_href", f"asset {key!r} points to {href!r}, which does not exist")


# ------------------------------------------------------------------ reading a run


@dataclass
class _Group:
    """Items bound for one target collection, with the run's collection document if it has one."""

    collection_id: str
    sources: list[tuple[Path, dict[str, Any]]] = field(default_factory=list)  # run collection docs
    items: list[tuple[Path, dict[str, Any]]] = field(default_factory=list)
    catalog: dict[str, Any] = field(default_factory=dict)  # the root catalog, for generated metadata


@dataclass
class RunContent:
    """Everything ``read_run`` found: groups of items per target collection, problems, coverage."""

    roots: list[Path]
    groups: dict[str, _Group]
    problems: list[Problem]
    documents: int
    unchecked: set[str]
    checked: set[str]

    @property
    def items(self) -> int:
        return sum(len(g.items) for g in self.groups.values())


def find_catalogs(run_dir: Path) -> list[Path]:
    """The catalog(s) of a run: ``<run>/<output id>/catalog.json``, or a catalog folder/file itself."""
    if run_dir.is_file():
        return [run_dir.resolve()]
    if (run_dir / "catalog.json").is_file():
        return [(run_dir / "catalog.json").resolve()]
    found = sorted(p.resolve() for p in run_dir.glob("*/catalog.json") if not p.parent.name.startswith("."))
    if not found:
        raise PublishInvalidError(
            [
                Problem(
                    run_dir,
                    "run_catalog",
                    "no STAC catalog here: expected <output id>/catalog.json (what `eopack run` writes) "
                    "or a folder holding catalog.json",
                )
            ]
        )
    return found


def _read_json(path: Path) -> tuple[dict[str, Any] | None, Problem | None]:
    try:
        value = json.loads(path.read_text())
    except OSError as exc:
        return None, Problem(path, "link_href", f"cannot read: {exc.strerror or exc}")
    except ValueError as exc:
        return None, Problem(path, "json", f"not valid JSON: {exc}")
    if not isinstance(value, dict):
        return None, Problem(path, "json", "not a JSON object")
    return value, None


def read_run(
    run_dir: Path, collection: str | None = None, schema_map: Mapping[str, str] | None = None
) -> RunContent:
    """Walk every catalog of the run (child and item links, as any static catalog is laid out),
    validate every document, and group the items by the collection they will be published into.

    ``collection`` overrides the target collection of every item; by default items under a run
    collection go to that collection's id and loose items to their root catalog's id.
    """
    validator = OfflineStacValidator(schema_map)
    roots = find_catalogs(run_dir)
    groups: dict[str, _Group] = {}
    problems: list[Problem] = []
    documents = 0
    for root in roots:
        todo: list[tuple[Path, str | None]] = [(root, None)]  # (document, collection it sits under)
        seen: set[Path] = set()
        root_doc: dict[str, Any] = {}
        while todo:
            path, parent_collection = todo.pop(0)
            if path in seen:
                continue
            seen.add(path)
            doc, problem = _read_json(path)
            if problem is not None or doc is None:
                problems.append(problem or Problem(path, "json", "unreadable"))
                continue
            documents += 1
            root_doc = root_doc or doc
            problems += list(_house_rules(doc, path))
            problems += validator.check(doc, path)
            kind = doc.get("type")
            here = str(doc.get("id")) if kind == "Collection" else parent_collection
            for link in doc.get("links", []) or []:
                href, rel = str(link.get("href", "")), link.get("rel")
                if rel not in ("child", "item") or _is_remote(href):
                    continue
                target = _local_path(href, path.parent)
                if not target.is_file():
                    problems.append(Problem(path, "link_href", f"{rel} link {href!r} does not resolve"))
                else:
                    todo.append((target, here))
            if kind not in ("Collection", "Feature"):
                continue
            target_id = (
                collection
                or (here if kind == "Collection" else parent_collection)
                or str(root_doc.get("id", root.parent.name))
            )
            group = groups.setdefault(target_id, _Group(target_id, catalog=root_doc))
            (group.sources if kind == "Collection" else group.items).append((path, doc))
    for group in groups.values():
        ids: dict[str, Path] = {}
        for path, item in group.items:
            if str(item.get("id")) in ids:
                problems.append(
                    Problem(
                        path,
                        "item_id_unique",
                        f"item id {item.get('id')!r} is also used by {ids[item['id']]}",
                    )
                )
            ids[str(item.get("id"))] = path
    for group in groups.values():
        if group.items and len(group.sources) != 1:  # see _collection_doc
            generated = _generated_collection(group)
            problems += validator.check(generated, f"{GENERATED} {group.collection_id}")
    return RunContent(roots, groups, problems, documents, validator.unchecked, validator.checked)


# ------------------------------------------------------------------ collections


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


def _items_extent(items: Sequence[dict[str, Any]]) -> tuple[list[float] | None, list[str | None]]:
    """Union bbox and [first, last] time of the items (what a generated collection advertises)."""
    boxes = [i["bbox"] for i in items if isinstance(i.get("bbox"), list) and len(i["bbox"]) >= 4]
    bbox = None
    if boxes:
        half = [len(b) // 2 for b in boxes]
        bbox = [
            min(b[0] for b in boxes),
            min(b[1] for b in boxes),
            max(b[h] for b, h in zip(boxes, half, strict=True)),
            max(b[h + 1] for b, h in zip(boxes, half, strict=True)),
        ]
    times = []
    for item in items:
        props = item.get("properties") or {}
        for key in ("datetime", "start_datetime", "end_datetime"):
            if (t := _parse_time(props.get(key))) is not None:
                times.append(t)
    return bbox, [_iso(min(times)) if times else None, _iso(max(times)) if times else None]


def _generated_collection(group: _Group) -> dict[str, Any]:
    """A minimal valid collection for items whose run has none (the NDVI output is a catalog)."""
    bbox, interval = _items_extent([doc for _, doc in group.items])
    catalog = group.catalog
    doc: dict[str, Any] = {
        "type": "Collection",
        "stac_version": STAC_VERSION,
        "id": group.collection_id,
        "title": catalog.get("title") or group.collection_id,
        "description": catalog.get("description") or f"Published by eopack from {group.collection_id}",
        "license": "other",
        "extent": {
            "spatial": {"bbox": [bbox or [-180.0, -90.0, 180.0, 90.0]]},
            "temporal": {"interval": [interval]},
        },
        "links": [],
    }
    return doc


def _merged_extent(existing: dict[str, Any], ours: dict[str, Any]) -> dict[str, Any]:
    """``existing``'s extent widened to cover ``ours`` (other publishers' items stay covered)."""
    try:
        a, b = existing["extent"]["spatial"]["bbox"][0], ours["extent"]["spatial"]["bbox"][0]
        bbox = [min(a[0], b[0]), min(a[1], b[1]), max(a[-2], b[-2]), max(a[-1], b[-1])]
    except (KeyError, IndexError, TypeError):
        bbox = ours["extent"]["spatial"]["bbox"][0]
    try:
        ia, ib = existing["extent"]["temporal"]["interval"][0], ours["extent"]["temporal"]["interval"][0]
        starts = [t for t in (_parse_time(ia[0]), _parse_time(ib[0])) if t]
        ends = [t for t in (_parse_time(ia[1]), _parse_time(ib[1])) if t]
        interval = [
            None if ia[0] is None else _iso(min(starts)) if starts else None,
            None if ia[1] is None else _iso(max(ends)) if ends else None,
        ]
    except (KeyError, IndexError, TypeError):
        interval = ours["extent"]["temporal"]["interval"][0]
    return {**existing.get("extent", {}), "spatial": {"bbox": [bbox]}, "temporal": {"interval": [interval]}}


def _for_api(doc: dict[str, Any]) -> dict[str, Any]:
    """A copy without file-relative and structural links (the API writes its own self/parent/root)."""
    out = copy.deepcopy(doc)
    out["links"] = [
        link
        for link in out.get("links", []) or []
        if link.get("rel") not in STRUCTURAL_RELS
        and urlparse(str(link.get("href", ""))).scheme in ("http", "https")
    ]
    return out


# ------------------------------------------------------------------ where assets go


@dataclass(frozen=True)
class Upload:
    """One asset file and the URL it is published at (``dest``: the local copy, when we make one)."""

    source: Path
    url: str
    dest: Path | None = None


class AssetTarget(Protocol):
    """Where asset files are published: decides the URL and, for local targets, copies the file."""

    @property
    def description(self) -> str: ...

    def place(self, collection: str, item: str, key: str, source: Path, rel: str) -> Upload: ...

    def copy(self, upload: Upload) -> bool: ...


@dataclass(frozen=True)
class LocalAssets:
    """A folder served over HTTP at ``base_url`` (our stack's nginx serves ``<state>/published``)."""

    folder: Path
    base_url: str

    @property
    def description(self) -> str:
        return f"{self.folder} (served at {self.base_url})"

    def place(self, collection: str, item: str, key: str, source: Path, rel: str) -> Upload:
        parts = [collection, item, *rel.split("/")]
        return Upload(
            source,
            self.base_url.rstrip("/") + "/" + "/".join(quote(p) for p in parts),
            self.folder.joinpath(*parts),
        )

    def copy(self, upload: Upload) -> bool:
        """Copy when missing or different (size/mtime); True if copied. Atomic: no half file served."""
        assert upload.dest is not None
        src = upload.source.stat()
        if upload.dest.is_file():
            dst = upload.dest.stat()
            if dst.st_size == src.st_size and int(dst.st_mtime) == int(src.st_mtime):
                return False
        upload.dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = upload.dest.with_name(f".{upload.dest.name}.part")
        shutil.copy2(upload.source, tmp)
        tmp.replace(upload.dest)
        return True


@dataclass(frozen=True)
class TemplateAssets:
    """Object storage (``s3://bucket/{collection}/{item}/{asset}``): hrefs only; upload is yours.

    Fields: ``{collection}``, ``{item}``, ``{asset}`` (file name), ``{key}`` (asset key),
    ``{path}`` (path relative to the item's folder).
    """

    template: str

    def __post_init__(self) -> None:
        names = {name for _, name, _, _ in string.Formatter().parse(self.template) if name is not None}
        unknown = names - TEMPLATE_FIELDS
        if unknown or not names & {"asset", "key", "path"}:
            raise click.UsageError(
                f"--assets-url-template {self.template!r}: "
                + (f"unknown field(s) {', '.join(sorted(unknown))}; " if unknown else "")
                + f"use {', '.join('{' + f + '}' for f in sorted(TEMPLATE_FIELDS))} and at least one of "
                "{asset} {key} {path} so assets do not collide"
            )

    @property
    def description(self) -> str:
        return f"hrefs from {self.template} (upload the files yourself)"

    def place(self, collection: str, item: str, key: str, source: Path, rel: str) -> Upload:
        url = self.template.format(collection=collection, item=item, asset=source.name, key=key, path=rel)
        return Upload(source, url)

    def copy(self, upload: Upload) -> bool:
        return False


def _asset_rel(source: Path, item_path: Path) -> str:
    """The asset's path below its item's folder (its file name when it lives elsewhere)."""
    try:
        return source.relative_to(item_path.parent.resolve()).as_posix()
    except ValueError:
        return source.name


# ------------------------------------------------------------------ the API


class _Api:
    """Minimal STAC API Transactions client: one-line errors, short timeouts, no proxy on loopback."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self.session = requests.Session()
        host = urlparse(self.url).hostname or ""
        self.session.trust_env = host not in stac_service.LOCAL_HOSTS  # proxies must not see loopback

    def request(self, method: str, path: str, body: Any = None) -> requests.Response:
        url = f"{self.url}{path}"
        try:
            return self.session.request(method, url, json=body, timeout=TIMEOUT)
        except requests.exceptions.ConnectionError as exc:
            reason = "connection refused" if "refused" in str(exc).lower() else _one_line(exc)
            raise ServiceUnavailableError(
                f"STAC API {self.url}",
                f"{method} {path} failed: {reason}",
                "Start it (`eopack stac up`) or check the --stac-api URL.",
            ) from None
        except requests.exceptions.Timeout:
            raise ServiceUnavailableError(
                f"STAC API {self.url}", f"{method} {path} timed out", "Check the server and its logs."
            ) from None

    def fail(self, response: requests.Response, what: str) -> StacApiError:
        detail = _one_line(response.text)[:300]
        return StacApiError(
            self.url,
            f"{what} answered {response.status_code} {response.reason}: {detail}",
            "See the server log.",
        )

    def landing(self) -> dict[str, Any]:
        response = self.request("GET", "/")
        try:
            doc = response.json()
        except ValueError:
            doc = None
        if response.status_code != 200 or not isinstance(doc, dict) or "links" not in doc:
            raise StacApiError(
                self.url,
                f"GET / answered {response.status_code} without a STAC landing page",
                "Pass the API's root URL (the one whose /collections and /search work).",
            )
        return doc


def _one_line(value: object) -> str:
    return " ".join(str(value).split())


def _declares_transactions(landing: Mapping[str, Any]) -> bool | None:
    """True/False from ``conformsTo``; None when the landing page does not list conformance."""
    classes = landing.get("conformsTo")
    if not isinstance(classes, list):
        return None
    return any("transaction" in str(c).lower() for c in classes)


# ------------------------------------------------------------------ publishing


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

    @property
    def collection_urls(self) -> list[str]:
        return [f"{self.api_url}/collections/{quote(c)}" for c in self.collections]


def default_target(api_url: str, state_dir: Path | None = None) -> AssetTarget:
    """Our local stack's ``published/`` folder, found from the API URL; else a usage error."""
    stack = stac_service.find_local_stack(api_url, state_dir)
    if stack is None:
        raise click.UsageError(
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
            doc = _for_api(item)
            doc["collection"] = cid
            for key, asset in doc.get("assets", {}).items():
                href = str(asset["href"])
                if _is_remote(href):
                    continue  # already published somewhere
                source = _local_path(href, path.parent)
                upload = target.place(cid, str(doc["id"]), key, source, _asset_rel(source, path))
                uploads.setdefault(source, upload)
                asset["href"] = upload.url
            planned.setdefault(cid, []).append(doc)
    return planned, list(uploads.values())


def _collection_doc(group: _Group) -> dict[str, Any]:
    if len(group.sources) == 1:
        doc = _for_api(group.sources[0][1])
        doc["id"] = group.collection_id
        for asset in (doc.get("assets") or {}).values():
            if not _is_remote(str(asset.get("href", ""))):
                asset.pop("href", None)
        doc["assets"] = {k: v for k, v in (doc.get("assets") or {}).items() if "href" in v}
        if not doc["assets"]:
            doc.pop("assets")
        return doc
    return _generated_collection(group)


def _ensure_collection(api: _Api, doc: dict[str, Any], say: Progress) -> None:
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
    existing = _for_api(response.json())
    extent = _merged_extent(existing, doc)
    if extent == existing.get("extent"):
        say(f"collection {cid}: exists")
        return
    updated = api.request("PUT", path, {**existing, "extent": extent})
    if updated.status_code in (404, 405, 501):
        raise TransactionsDisabledError(api.url, f"PUT {path} answered {updated.status_code}")
    if updated.status_code not in (200, 201, 204):
        raise api.fail(updated, f"PUT {path}")
    say(f"collection {cid}: exists, extent widened to cover the new items")


def _upsert_item(api: _Api, cid: str, item: dict[str, Any]) -> str:
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
    api = _Api(api_url)
    landing = api.landing()
    if _declares_transactions(landing) is False:
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
    for cid, items in planned.items():
        _ensure_collection(api, _collection_doc(content.groups[cid]), say)
        for item in items:
            outcome = _upsert_item(api, cid, item)
            (created if outcome == "created" else updated).append(str(item["id"]))
            say(f"item {cid}/{item['id']}: {outcome}")
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
    )


def publish_and_report(run_dir: Path, api_url: str, **options: Any) -> PublishResult:
    """``publish`` with progress on stderr, then on stdout: files to upload (templates), collection URLs.

    Shared by ``eopack publish`` and ``eopack run --publish``.
    """
    result = publish(run_dir, api_url, progress=lambda msg: notice(escape(msg)), **options)
    for upload in result.uploads:
        if upload.dest is None:
            click.echo(f"upload {upload.source} {upload.url}")
    for url in result.collection_urls:
        click.echo(url)
    return result


# ------------------------------------------------------------------ CLI (registered in eopack.cli)


@click.command("publish")
@click.argument("run_dir", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--stac-api", "api_url", required=True, metavar="URL", help="STAC API with Transactions enabled."
)
@click.option(
    "--collection", metavar="ID", help="Target collection (default: the run's collection or catalog id)."
)
@click.option(
    "--assets-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Copy asset files into this folder (served at --assets-url).",
)
@click.option("--assets-url", metavar="URL", help="Base URL at which --assets-dir is served.")
@click.option(
    "--assets-url-template",
    metavar="TEMPLATE",
    help="Object-storage hrefs, e.g. 's3://bucket/{collection}/{item}/{asset}'; prints what to upload.",
)
@click.option(
    "--schema-map",
    nargs=2,
    multiple=True,
    metavar="URL FILE",
    help="Validate against a local copy of a schema (e.g. an extension's), like stac-validator -s.",
)
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="State dir of the local stack, when it is not the default and not found from the URL.",
)
@click.option("--dry-run", is_flag=True, help="Validate and show the plan; copy and ingest nothing.")
def publish_cmd(
    run_dir: Path,
    api_url: str,
    collection: str | None,
    assets_dir: Path | None,
    assets_url: str | None,
    assets_url_template: str | None,
    schema_map: tuple[tuple[str, str], ...],
    state_dir: Path | None,
    dry_run: bool,
) -> None:
    """Validate a run's STAC output and ingest it into a STAC API (Transactions extension).

    Nothing is published when any document is invalid. Assets go to the local stack's
    published/ folder by default (for `eopack stac up`), or --assets-dir/--assets-url, or only
    get their hrefs from --assets-url-template (the files to upload are printed).
    """
    target: AssetTarget | None = None
    if assets_url_template and (assets_dir or assets_url):
        raise click.UsageError("--assets-url-template excludes --assets-dir/--assets-url")
    if bool(assets_dir) != bool(assets_url):
        raise click.UsageError("--assets-dir and --assets-url go together")
    if assets_url_template:
        target = TemplateAssets(assets_url_template)
    elif assets_dir and assets_url:
        target = LocalAssets(assets_dir.resolve(), assets_url.rstrip("/"))
    publish_and_report(
        run_dir,
        api_url,
        collection=collection,
        target=target,
        state_dir=state_dir,
        schema_map=dict(schema_map),
        dry_run=dry_run,
    )
