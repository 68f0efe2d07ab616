"""Step 2: open the product and validate the requested groups, naming close candidates."""

from __future__ import annotations

import difflib
import logging
import time
from collections.abc import Iterable
from typing import Any

import xarray as xr

from eopack_eo_common.errors import ToolError, ToolInputError
from eopack_eo_common.remote import http_storage_options

log = logging.getLogger(__name__)


def _storage_options(source: str) -> dict[str, Any] | None:
    if source.startswith(("http://", "https://")):
        return http_storage_options(source)  # every connection, redirects included, passes the URL guard
    if source.startswith("s3://"):
        from eopf_geozarr.conversion.fs_utils import get_storage_options

        return dict(get_storage_options(source) or {})
    return None


def open_tree(source: str) -> xr.DataTree:
    """Open the product lazily (dask chunks), as eopf-geozarr's own CLI does."""
    started = time.monotonic()
    try:
        tree = xr.open_datatree(
            source, engine="zarr", chunks="auto", storage_options=_storage_options(source)
        )
    except ToolError:
        raise
    except FileNotFoundError as err:
        raise ToolInputError(f"{source} is not a Zarr store (no zarr.json / .zgroup found): {err}") from None
    except Exception as err:
        raise ToolInputError(
            f"cannot open {source} as a Zarr datatree: {type(err).__name__}: {err}"
        ) from None
    log.info("opened %s in %.2f s (%d groups)", source, time.monotonic() - started, len(tree.groups))
    return tree


def tree_lines(tree: xr.DataTree) -> list[str]:
    """One line per group: path, dimensions and variables (what the seed's validation step printed)."""
    lines = []
    for path in tree.groups:
        node = tree[path]
        dims = ", ".join(f"{k}={v}" for k, v in node.dataset.sizes.items())
        names = ", ".join(str(v) for v in node.data_vars)
        lines.append(f"{path}" + (f"  ({dims})  [{names}]" if names else ""))
    return lines


def _data_groups(tree: xr.DataTree, under: str = "") -> list[str]:
    return [p for p in tree.groups if p.startswith(under) and tree[p].data_vars]


def suggest(missing: str, tree: xr.DataTree) -> list[str]:
    """Groups with data under ``/measurements`` that look like ``missing`` (closest first).

    Matches on the whole path and on the last element, so ``/measurements/r10m`` finds
    ``/measurements/reflectance/r10m``.
    """
    candidates = _data_groups(tree, "/measurements") or _data_groups(tree)
    close = difflib.get_close_matches(missing, candidates, n=3, cutoff=0.5)
    leaf = missing.rsplit("/", 1)[-1]
    by_leaf = [c for c in candidates if c.rsplit("/", 1)[-1] == leaf]
    return list(dict.fromkeys(by_leaf + close))


def validate_groups(tree: xr.DataTree, groups: Iterable[str]) -> None:
    """Fail with "did you mean" candidates for every requested group that is absent or empty."""
    problems = []
    for group in groups:
        if group in tree.groups and tree[group].data_vars:
            continue
        what = "has no data variables" if group in tree.groups else "is not in the product"
        close = suggest(group, tree)
        hint = f"did you mean {' or '.join(close)}?" if close else "no similar group under /measurements"
        problems.append(f"group {group} {what}; {hint}")
    if problems:
        available = ", ".join(_data_groups(tree, "/measurements")) or "none"
        raise ToolInputError(f"{'; '.join(problems)} (groups with data under /measurements: {available})")
