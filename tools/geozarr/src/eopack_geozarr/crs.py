"""Step 3: every group needs a CRS and a regular grid; eopf-geozarr silently skips them otherwise."""

from __future__ import annotations

import logging
from collections.abc import Iterable

import numpy as np
import xarray as xr

from eopack_eo_common.errors import ToolInputError

log = logging.getLogger(__name__)


def find_crs(tree: xr.DataTree, group: str) -> str | None:
    """The CRS eopf-geozarr will use for ``group``, as a string pyproj understands, or None.

    Same sources as the converter: ``proj:epsg``/``proj:code``/``proj:wkt2`` on a variable, a CF
    grid-mapping variable, then the root ``other_metadata.horizontal_CRS_code`` (CPM ≥ 2.6).
    """
    ds = tree[group].dataset
    for var in ds.data_vars.values():
        attrs = var.attrs
        if attrs.get("proj:epsg") is not None:
            return f"EPSG:{attrs['proj:epsg']}"
        for key in ("proj:code", "proj:wkt2"):
            if isinstance(attrs.get(key), str) and attrs[key]:
                return str(attrs[key])
    for name in ("spatial_ref", "crs"):
        if name in ds.variables and ds[name].attrs.get("crs_wkt"):
            return str(ds[name].attrs["crs_wkt"])
    other = tree.attrs.get("other_metadata") or {}
    code = other.get("horizontal_CRS_code") or other.get("horizontal_crs_code")
    return f"EPSG:{str(code).split(':')[-1]}" if code else None


def _regular_axis(values: np.ndarray, name: str, group: str) -> float:
    """Pixel size of a regular coordinate axis (signed); refuse irregular or too-short axes."""
    if values.ndim != 1 or values.size < 2:
        raise ToolInputError(f"group {group} needs a 1-D {name} coordinate with at least 2 values")
    steps = np.diff(values.astype("float64"))
    if not np.allclose(steps, steps[0], rtol=1e-9, atol=1e-6):
        raise ToolInputError(f"group {group}: {name} coordinate is not regular; GeoZarr needs a regular grid")
    return float(steps[0])


def check_crs(tree: xr.DataTree, groups: Iterable[str]) -> dict[str, str]:
    """CRS per group; a group without one (or without regular x/y) is an input error."""
    from pyproj import CRS

    found: dict[str, str] = {}
    for group in groups:
        crs = find_crs(tree, group)
        if crs is None:
            raise ToolInputError(
                f"no CRS found for group {group}: eopf-geozarr would write it without multiscales and exit 0; "
                "the product needs proj:epsg on its variables or the root attribute "
                "other_metadata.horizontal_CRS_code (e.g. 'EPSG:32632')"
            )
        try:
            CRS.from_user_input(crs)
        except Exception as err:
            raise ToolInputError(f"group {group}: CRS {crs!r} is not understood: {err}") from None
        ds = tree[group].dataset
        for axis in ("x", "y"):
            if axis not in ds.coords:
                raise ToolInputError(
                    f"group {group} has no {axis} coordinate; GeoZarr needs x/y in the CRS units"
                )
            _regular_axis(ds[axis].values, axis, group)
        found[group] = crs
        log.info("CRS of %s: %s", group, crs if len(crs) < 40 else crs[:37] + "...")
    return found
