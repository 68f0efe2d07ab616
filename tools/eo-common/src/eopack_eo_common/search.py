"""Find the STAC items a job asks for, from a STAC API *or* a staged catalog, with one set of rules.

pystac-client cannot search a static catalog, so a staged Directory is walked with pystac and
filtered here with the same bbox/datetime/cloud rules the API applies; both paths return items with
absolute asset hrefs, sorted by datetime then id, so downstream code cannot tell them apart.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pystac

from . import access
from .errors import ToolError, ToolInputError

__all__ = ["Search", "collection_ids", "parse_bbox", "parse_date_range", "select_items"]

log = logging.getLogger(__name__)


def parse_bbox(text: str | Sequence[float]) -> tuple[float, float, float, float]:
    """``west,south,east,north`` in degrees (EPSG:4326).

    >>> parse_bbox("11.4,46.5,11.5,46.6")
    (11.4, 46.5, 11.5, 46.6)
    """
    try:
        parts = [float(v) for v in (text.split(",") if isinstance(text, str) else text)]
    except ValueError:
        parts = []
    if len(parts) != 4:
        raise ToolInputError(f"bbox must be west,south,east,north in degrees; got {text!r}")
    west, south, east, north = parts
    if not (-180 <= west <= 180 and -180 <= east <= 180 and -90 <= south <= 90 and -90 <= north <= 90):
        raise ToolInputError(
            f"bbox must be west,south,east,north in degrees (longitude -180..180, latitude -90..90); got {text!r}"
        )
    if west >= east or south >= north:
        raise ToolInputError(
            f"bbox must be west,south,east,north with west < east and south < north; got {text!r}"
        )
    return west, south, east, north


def parse_date_range(start: str, end: str) -> tuple[dt.datetime, dt.datetime]:
    """Inclusive UTC range: ``end`` covers its whole day (``2024-06-30`` includes 23:59:59.999999Z)."""

    def one(name: str, value: str) -> dt.date:
        try:
            return dt.date.fromisoformat(str(value)[:10])
        except ValueError:
            raise ToolInputError(f"{name} must be a date like 2024-06-01; got {value!r}") from None

    first, last = one("start_date", start), one("end_date", end)
    if last < first:
        raise ToolInputError(f"end_date {last} is before start_date {first}; swap them")
    begin = dt.datetime.combine(first, dt.time.min, dt.UTC)
    finish = dt.datetime.combine(last, dt.time.max, dt.UTC)
    return begin, finish


@dataclass(frozen=True)
class Search:
    """What to look for; the same for the API and the staged-catalog path."""

    collection: str
    bbox: tuple[float, float, float, float]
    start: dt.datetime
    end: dt.datetime
    max_cloud_cover: float | None = None
    max_items: int | None = None

    @classmethod
    def from_args(
        cls,
        collection: str,
        aoi: str,
        start_date: str,
        end_date: str,
        max_cloud_cover: float | None = None,
        max_items: int | None = None,
    ) -> Search:
        """The search of a tool's inputs, each checked with a message that says what to fix."""
        if max_cloud_cover is not None and not 0 <= max_cloud_cover <= 100:
            raise ToolInputError(f"max_cloud_cover must be between 0 and 100; got {max_cloud_cover!r}")
        if max_items is not None and max_items < 1:
            raise ToolInputError(f"max_items must be at least 1; got {max_items!r}")
        start, end = parse_date_range(start_date, end_date)
        return cls(collection, parse_bbox(aoi), start, end, max_cloud_cover, max_items)

    def describe(self) -> str:
        parts = [
            f"collection={self.collection}",
            "bbox=" + ",".join(f"{v:g}" for v in self.bbox),
            f"datetime={self.start:%Y-%m-%d}/{self.end:%Y-%m-%d}",
        ]
        if self.max_cloud_cover is not None:
            parts.append(f"eo:cloud_cover<={self.max_cloud_cover:g}")
        return ", ".join(parts)

    def matches(self, item: pystac.Item) -> bool:
        """The API's semantics, applied to one item of a static catalog."""
        when = item.datetime or item.common_metadata.start_datetime
        if when is None:
            return False
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        if not self.start <= when <= self.end:
            return False
        if item.bbox is None or not _intersects(item.bbox, self.bbox):
            return False
        cloud = item.properties.get("eo:cloud_cover")
        return self.max_cloud_cover is None or (cloud is not None and cloud <= self.max_cloud_cover)


def _intersects(a: Sequence[float], b: Sequence[float]) -> bool:
    return a[0] <= b[2] and b[0] <= a[2] and a[1] <= b[3] and b[1] <= a[3]


def _sorted(items: Iterable[pystac.Item], limit: int | None) -> list[pystac.Item]:
    out = sorted(items, key=lambda i: (i.datetime or dt.datetime.min.replace(tzinfo=dt.UTC), i.id))
    return out[:limit] if limit else out


def _from_api(url: str, search: Search) -> list[pystac.Item]:
    from pystac_client import Client
    from pystac_client.exceptions import APIError

    try:
        client = Client.open(url, headers=access.stac_headers())
        ids = [c.id for c in client.get_collections()]
    except (APIError, OSError, ValueError) as err:
        raise ToolError(f"cannot reach the STAC API at {url}: {err}; check stac_api") from None
    if search.collection not in ids:
        raise ToolInputError(
            f"collection {search.collection!r} is not in the STAC API at {url}; available: {', '.join(sorted(ids))}"
        )
    kwargs: dict[str, Any] = {
        "collections": [search.collection],
        "bbox": list(search.bbox),
        "datetime": [search.start, search.end],
        "max_items": search.max_items,
    }
    if search.max_cloud_cover is not None:
        # cql2-json by POST: this is what stac-fastapi-pgstac accepts (cql2-text by POST is refused).
        kwargs["filter"] = {"op": "<=", "args": [{"property": "eo:cloud_cover"}, search.max_cloud_cover]}
        kwargs["filter_lang"] = "cql2-json"
    try:
        found = list(client.search(**kwargs).items())
    except (APIError, OSError) as err:
        raise ToolError(f"search on the STAC API at {url} failed: {err}") from None
    return found


def _catalog_root(folder: Path) -> pystac.Catalog:
    for name in ("catalog.json", "collection.json"):
        if (folder / name).is_file():
            return pystac.read_file(str(folder / name))  # type: ignore[return-value]
    raise ToolInputError(f"input_catalog {folder} has no catalog.json or collection.json at its root")


def _from_catalog(folder: Path, search: Search) -> list[pystac.Item]:
    root = _catalog_root(folder)
    collections = {
        c.id: c for c in ([root] if isinstance(root, pystac.Collection) else root.get_all_collections())
    }
    if search.collection in collections:
        found = collections[search.collection].get_items(recursive=True)
    else:
        # A stage-in's catalog (EOEPCA): items are direct children of the root, each naming its
        # collection in its "collection" field, and no Collection object is staged.
        found = (i for i in root.get_items(recursive=True) if i.collection_id == search.collection)
    items = [item for item in found if search.matches(item)]
    if not items and search.collection not in collections:
        named = {i.collection_id for i in root.get_items(recursive=True) if i.collection_id}
        raise ToolInputError(
            f"collection {search.collection!r} is not in the staged catalog {folder}; "
            f"available: {', '.join(sorted(set(collections) | named)) or 'none'}"
        )
    return items


def collection_ids(stac_api: str | None = None, input_catalog: Path | None = None) -> list[str]:
    """The collection ids one source offers, sorted; for messages that list what is available."""
    if bool(stac_api) == bool(input_catalog):
        raise ToolInputError("give exactly one of stac_api (a URL) or input_catalog (a staged Directory)")
    if stac_api:
        from pystac_client import Client
        from pystac_client.exceptions import APIError

        try:
            return sorted(
                c.id for c in Client.open(stac_api, headers=access.stac_headers()).get_collections()
            )
        except (APIError, OSError, ValueError) as err:
            raise ToolError(f"cannot reach the STAC API at {stac_api}: {err}; check stac_api") from None
    assert input_catalog is not None
    root = _catalog_root(Path(input_catalog))
    if isinstance(root, pystac.Collection):
        return [root.id]
    named = {i.collection_id for i in root.get_items() if i.collection_id}  # a stage-in's flat catalog
    return sorted({c.id for c in root.get_all_collections()} | named)


def _unique(items: list[pystac.Item], source: str) -> list[pystac.Item]:
    """One item per id: the first copy wins (an API whose pages overlap returns some twice).

    Reading a duplicate twice would count its pixels twice in a median, so later copies are
    dropped, and the log says how many.
    """
    seen: dict[str, pystac.Item] = {}
    for item in items:
        seen.setdefault(item.id, item)
    if len(items) != len(seen):
        log.warning("%d duplicate item id(s) from the %s were read once", len(items) - len(seen), source)
    return list(seen.values())


def select_items(
    search: Search, stac_api: str | None = None, input_catalog: Path | None = None
) -> list[pystac.Item]:
    """The items matching ``search`` from exactly one source; an empty result is an input error."""
    if bool(stac_api) == bool(input_catalog):
        raise ToolInputError("give exactly one of stac_api (a URL) or input_catalog (a staged Directory)")
    if stac_api:
        found = _from_api(stac_api, search)
        source = f"STAC API {stac_api}"
    else:
        assert input_catalog is not None
        found = _from_catalog(Path(input_catalog), search)
        source = f"staged catalog {input_catalog}"
    items = _sorted(_unique(found, source), search.max_items)
    for item in items:
        item.make_asset_hrefs_absolute()
    if input_catalog is not None:
        access.map_worker_paths(items, Path(input_catalog))
    access.modify_hrefs(items)
    access.configure_gdal()
    if not items:
        raise ToolInputError(f"no items found in the {source} for {search.describe()}; widen the search")
    log.info("%d item(s) from the %s for %s", len(items), source, search.describe())
    return items
