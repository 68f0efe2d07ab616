"""Reading a run directory: its STAC catalogs, their collections and items, grouped for publishing."""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from ..clients.stac import STRUCTURAL_RELS
from .validator import (
    STAC_VERSION,
    OfflineStacValidator,
    Problem,
    PublishInvalidError,
    house_rules,
    is_remote,
    local_path,
)

GENERATED = "(generated collection)"


# ------------------------------------------------------------------ reading a run


@dataclass
class Group:
    """Items bound for one target collection, with the run's collection document if it has one."""

    collection_id: str
    sources: list[tuple[Path, dict[str, Any]]] = field(default_factory=list)  # run collection docs
    items: list[tuple[Path, dict[str, Any]]] = field(default_factory=list)
    catalog: dict[str, Any] = field(default_factory=dict)  # the root catalog, for generated metadata


@dataclass
class RunContent:
    """Everything ``read_run`` found: groups of items per target collection, problems, coverage."""

    roots: list[Path]
    groups: dict[str, Group]
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
    groups: dict[str, Group] = {}
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
            problems += list(house_rules(doc, path))
            problems += validator.check(doc, path)
            kind = doc.get("type")
            here = str(doc.get("id")) if kind == "Collection" else parent_collection
            for link in doc.get("links", []) or []:
                href, rel = str(link.get("href", "")), link.get("rel")
                if rel not in ("child", "item") or is_remote(href):
                    continue
                target = local_path(href, path.parent)
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
            group = groups.setdefault(target_id, Group(target_id, catalog=root_doc))
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
            generated = generated_collection(group)
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


def generated_collection(group: Group) -> dict[str, Any]:
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


def merged_extent(existing: dict[str, Any], ours: dict[str, Any]) -> dict[str, Any]:
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


def for_api(doc: dict[str, Any]) -> dict[str, Any]:
    """A copy without file-relative and structural links (the API writes its own self/parent/root)."""
    out = copy.deepcopy(doc)
    out["links"] = [
        link
        for link in out.get("links", []) or []
        if link.get("rel") not in STRUCTURAL_RELS
        and urlparse(str(link.get("href", ""))).scheme in ("http", "https")
    ]
    return out
