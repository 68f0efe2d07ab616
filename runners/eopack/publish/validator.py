"""Validating a run's STAC documents before anything is published: stac-validator offline + house rules.

stac-validator fetches schemas over HTTP. The core 1.1.0 schemas ship inside pystac, so it gets a
schema map onto those files and a schema fetcher that refuses URLs: nothing waits on a network
timeout. Extension schemas are reported as "not checked" unless mapped to local copies.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import json
import re
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from ..errors import EopackError

STAC_VERSION = "1.1.0"  # what pystac writes and the version whose core schemas pystac bundles


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


def is_remote(href: str) -> bool:
    return urlparse(href).scheme not in ("", "file")


def local_path(href: str, base: Path) -> Path:
    return (
        (base / urlparse(href).path).resolve() if urlparse(href).scheme == "file" else (base / href).resolve()
    )


# Item, collection and catalog ids become URL and folder parts where the assets are published:
# letters, digits, '.', '_', '-', starting with a letter or digit (no '/', '..', absolute paths).
SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")


def id_problem(value: object) -> str | None:
    """Why ``value`` is not a safe id, or None."""
    if not isinstance(value, str) or not SAFE_ID.match(value) or ".." in value:
        return (
            f"id {value!r} is not allowed: ids become folder and URL parts, so they use only letters, "
            "digits, '.', '_' and '-', start with a letter or digit and hold no '..'"
        )
    return None


def outside(source: Path, folder: Path) -> bool:
    """True when ``source`` (resolved, symlinks followed) is not inside ``folder``."""
    try:
        source.resolve().relative_to(folder.resolve())
    except ValueError:
        return True
    return False


def house_rules(doc: dict[str, Any], path: Path) -> Iterator[Problem]:
    """DESIGN.md §3 beyond the JSON schema, plus what pgstac needs (a geometry).

    Safety (issue 21 #3): ids in the safe character set, and every local asset inside its item's
    folder (an absolute href, a ``..`` or a symlink out of it would publish any readable file).
    """
    if doc.get("type") in ("Feature", "Collection", "Catalog"):
        why = id_problem(doc.get("id"))
        if why:
            yield Problem(path, "id_charset", why)
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
        elif not is_remote(href) and outside(local_path(href, path.parent), path.parent):
            yield Problem(
                path, "asset_outside_item", f"asset {key!r} points to {href!r}, outside the item's folder"
            )
        elif not is_remote(href) and not local_path(href, path.parent).exists():  # a file, or a Zarr store
            yield Problem(path, "asset_href", f"asset {key!r} points to {href!r}, which does not exist")
