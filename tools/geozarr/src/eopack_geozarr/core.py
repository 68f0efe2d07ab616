"""Convert an EOPF Zarr product to GeoZarr with eopf-geozarr, and check what it wrote.

eopf-geozarr 0.12 does the conversion well when everything is right, but reports success when
it is not, so every step it skips silently is checked here before or after it runs:

* a requested group that does not exist is skipped with an info log (exit 0), and when no group
  matches the "conversion" writes nothing useful (exit 0): we validate the groups first and
  name the close candidates under ``/measurements``;
* without a CRS it writes no multiscales and still exits 0: we require a CRS first;
* overview ``x``/``y`` coordinates are the pixel *corners* (half an overview pixel off the
  centres the level-0 coordinates hold), and on odd sizes the overview transform is stretched
  over the native bounds: we rewrite both from the parent grid (:func:`fix_overview_grids`);
* we verify the output: multiscales on every group, level 0 equal to the input bit for bit,
  a readable CRS and consistent pixel centres on every level. Any doubt is a non-zero exit.

Steps, in order: preflight (URL inputs), open + validate groups, check CRS, convert on the
eo-common Dask client (optionally inside a performance report), fix and verify, then the STAC
item and the optional tarball, all in a staging folder that is published only on success. One
module per step (``preflight``, ``groups``, ``crs``, ``convert``, ``verify``, ``stac_item``) and
the job (``job``); this module runs them in order and re-exports the public names.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import pystac
import xarray as xr

from eopack_eo_common.dask_cluster import check_workers_write, dask_client, performance_report
from eopack_eo_common.output import staged_output
from eopack_eo_common.stac import save_catalog

__all__ = [
    "DEFAULT_GROUPS",
    "LAYOUTS",
    "VERSION",
    "ZARR_MEDIA_TYPE",
    "GeozarrJob",
    "find_crs",
    "fix_overview_grids",
    "normalise_groups",
    "preflight",
    "run",
    "suggest",
    "validate_groups",
    "verify",
]

from .convert import convert
from .crs import check_crs, find_crs
from .groups import open_tree, suggest, tree_lines, validate_groups
from .job import DEFAULT_GROUPS, LAYOUTS, VERSION, ZARR_MEDIA_TYPE, GeozarrJob, normalise_groups
from .preflight import preflight
from .stac_item import build_item, write_tarball
from .verify import Level, fix_overview_grids, s2_levels, verify

log = logging.getLogger(__name__)


# ---- the whole run ------------------------------------------------------------------------------------


@dataclass
class Outcome:
    """What a run produced (for callers and tests)."""

    catalog: Path
    store: Path
    levels: dict[str, list[Level]]
    fixed_levels: int


def _log_tree(tree: xr.DataTree) -> None:
    log.info("product tree:")
    for line in tree_lines(tree):
        log.info("  %s", line)


def run(job: GeozarrJob, outdir: Path, verbose: bool = False) -> Outcome:
    """Preflight, validate, convert, fix, verify and publish into ``outdir``; return what was written."""
    # Every chunk of the store is written by the task that computes it, on the Dask workers.
    check_workers_write(outdir, os.environ)
    if job.is_url:
        preflight(job.source)
    tree = open_tree(job.source)
    _log_tree(tree)
    validate_groups(tree, job.groups)
    crs = check_crs(tree, job.groups)
    with staged_output(outdir) as stage:
        folder = stage / job.name
        folder.mkdir()
        store = folder / f"{job.name}.zarr"
        report = stage / "dask-report.html" if job.dask_report else None
        # The profiler samples every task's stack with the GIL held; only the report reads it.
        with dask_client(profile=job.dask_report) as client, performance_report(report):
            log.info("converting on %s", client)
            convert(job, tree, store, verbose)
            fixed = 0
            if job.layout == "generic":
                log.info("fixing the overview grids")
                fixed = fix_overview_grids(store, job.groups)
            # On the same cluster: level 0 is compared with the input chunk by chunk, in parallel.
            log.info("verifying %d group(s) level by level", len(job.groups))
            levels = verify(tree, store, job, crs)
        if job.layout == "s2-optimized":
            levels = s2_levels(store, job)
        # Beside the store, in the item's folder: publishing takes only assets inside it (issue 21 #3).
        archive = write_tarball(store, folder / "geozarr.tar.gz") if job.tarball else None
        item = build_item(job, tree, store, levels, crs, archive)
        catalog = pystac.Catalog("geozarr", f"GeoZarr conversion of {job.name}", title="GeoZarr")
        catalog.add_item(item)
        save_catalog(catalog, stage)
    return Outcome(outdir / "catalog.json", outdir / job.name / store.name, levels, fixed)
