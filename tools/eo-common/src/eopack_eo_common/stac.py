"""Write a tool's output as a self-contained STAC catalog, and validate STAC offline.

Output layout (DESIGN.md §3): ``catalog.json`` at the root of the tool's output folder, one
folder per item holding ``<item>.json`` and its assets, every href relative.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pystac
import pystac.layout
from pystac.validation import validate_dict
from pystac.validation.stac_validator import GetSchemaError, JsonSchemaSTACValidator

__all__ = ["StacReport", "add_epsg_alias", "flat_layout", "save_catalog", "validate_tree"]

log = logging.getLogger(__name__)


def add_epsg_alias(doc: dict[str, Any]) -> bool:
    """Add ``proj:epsg`` beside ``proj:code`` (in properties and assets); True if changed.

    stackstac 0.5 reads only ``proj:epsg`` and pystac 1.15 writes only ``proj:code``; without the
    alias stackstac silently builds a different grid (DESIGN.md §8).

    >>> d = {"properties": {"proj:code": "EPSG:32632"}, "assets": {}}
    >>> add_epsg_alias(d), d["properties"]["proj:epsg"]
    (True, 32632)
    """
    changed = False
    holders = [doc.get("properties", {}), *doc.get("assets", {}).values()]
    for holder in holders:
        code = holder.get("proj:code")
        if isinstance(code, str) and code.upper().startswith("EPSG:") and "proj:epsg" not in holder:
            holder["proj:epsg"] = int(code.split(":", 1)[1])
            changed = True
    return changed


def flat_layout(root: Path) -> pystac.layout.CustomLayoutStrategy:
    """The (single) child collection as ``<root>/collection.json`` and every item as ``<root>/<id>/<id>.json``.

    pystac's default nests items under their collection's folder; tools whose contract fixes the
    folder names (``monthly-mosaic-YYYY-MM/``) keep one folder per item at the root instead.
    """
    return pystac.layout.CustomLayoutStrategy(
        collection_func=lambda col, parent_dir, is_root: str(root / "collection.json"),
        item_func=lambda item, parent_dir: str(root / item.id / f"{item.id}.json"),
    )


def save_catalog(
    catalog: pystac.Catalog, root: Path, strategy: pystac.layout.HrefLayoutStrategy | None = None
) -> Path:
    """Save ``catalog`` self-contained under ``root`` with relative asset hrefs; return catalog.json."""
    catalog.normalize_hrefs(str(root), strategy=strategy)
    catalog.make_all_asset_hrefs_relative()
    catalog.save(catalog_type=pystac.CatalogType.SELF_CONTAINED)
    for item_file in root.rglob("*.json"):
        doc = json.loads(item_file.read_text())
        if doc.get("type") == "Feature" and add_epsg_alias(doc):
            item_file.write_text(json.dumps(doc, indent=2))
    return root / "catalog.json"


class _OfflineValidator(JsonSchemaSTACValidator):
    """Core schemas ship with pystac; extension schemas live on the web, which tools must not reach.

    Never fetching keeps validation fast and deterministic (retries on an unreachable host cost
    seconds per document); the extensions that could not be checked are reported instead.
    """

    def __init__(self) -> None:
        super().__init__()
        self.unchecked: set[str] = set()

    def _get_schema(self, schema_uri: str) -> dict[str, Any]:
        if schema_uri not in self.schema_cache:
            raise GetSchemaError(schema_uri, LookupError("not available offline"))
        return super()._get_schema(schema_uri)

    def validate_extension(
        self,
        stac_dict: dict[str, Any],
        stac_object_type: Any,
        stac_version: str,
        extension_id: str,
        href: str | None = None,
    ) -> str | None:
        try:
            return super().validate_extension(stac_dict, stac_object_type, stac_version, extension_id, href)
        except GetSchemaError:
            self.unchecked.add(extension_id)
            return None


@dataclass
class StacReport:
    """What ``validate_tree`` looked at: documents checked, problems, extensions it could not fetch."""

    documents: int = 0
    errors: list[str] = field(default_factory=list)
    unchecked_extensions: set[str] = field(default_factory=set)

    @property
    def ok(self) -> bool:
        return not self.errors


def _house_rules(doc: dict[str, Any], path: Path) -> Iterable[str]:
    """Rules of DESIGN.md §3 beyond the JSON schema: relative, existing assets with roles and types."""
    if doc.get("type") != "Feature":
        return
    props = doc.get("properties", {})
    if not (props.get("datetime") or (props.get("start_datetime") and props.get("end_datetime"))):
        yield f"{path}: item has neither datetime nor start/end_datetime"
    if doc.get("geometry") is not None and not doc.get("bbox"):
        yield f"{path}: item has a geometry but no bbox"
    for key, asset in doc.get("assets", {}).items():
        href = asset.get("href", "")
        if not asset.get("roles"):
            yield f"{path}: asset {key!r} has no roles"
        if not asset.get("type"):
            yield f"{path}: asset {key!r} has no media type"
        if "://" in href or href.startswith("/"):
            yield f"{path}: asset {key!r} href {href!r} is not relative"
        elif not (path.parent / href).exists():
            yield f"{path}: asset {key!r} points to {href!r}, which does not exist"


def validate_tree(root: Path) -> StacReport:
    """Validate every STAC document under ``root`` against the core schemas and the house rules."""
    report = StacReport()
    validator = _OfflineValidator()
    # pystac logs a traceback for every schema it cannot get before raising; we report them once.
    logging.getLogger("pystac.validation.stac_validator").disabled = True
    for path in sorted(root.rglob("*.json")):
        doc = json.loads(path.read_text())
        if "stac_version" not in doc:
            continue
        report.documents += 1
        try:
            validate_dict(doc, href=str(path), validator=validator)
        except pystac.STACValidationError as err:
            report.errors.append(f"{path}: {str(err).splitlines()[-1]}")
        report.errors.extend(_house_rules(doc, path))
    report.unchecked_extensions = validator.unchecked
    if report.unchecked_extensions:
        log.info(
            "extension schemas not reachable offline, not checked: %s",
            ", ".join(sorted(report.unchecked_extensions)),
        )
    return report
