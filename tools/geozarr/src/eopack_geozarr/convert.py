"""Step 4: the conversion itself, with eopf-geozarr on the eo-common Dask client."""

from __future__ import annotations

import logging
import sys
import time
import warnings
from pathlib import Path

import xarray as xr

from eopack_eo_common.errors import ToolError

from .job import GeozarrJob

log = logging.getLogger(__name__)


def _route_structlog(verbose: bool) -> None:
    """eopf-geozarr logs with structlog, which prints to stdout by default; stdout is ours."""
    import structlog

    structlog.configure(
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG if verbose else logging.WARNING),
    )


def convert(job: GeozarrJob, tree: xr.DataTree, store: Path, verbose: bool = False) -> None:
    """Run the eopf-geozarr Python API (not its CLI: that one always starts its own LocalCluster)."""
    _route_structlog(verbose)
    if not verbose:
        # Noise, not news: xarray's fallback when eopf-geozarr reopens its own unconsolidated
        # groups, pydantic's schema note, and the CF name table it tries to download on import.
        warnings.filterwarnings("ignore", message="Failed to open Zarr store with consolidated")
        warnings.filterwarnings("ignore", message="TypedDict class")
        warnings.filterwarnings("ignore", message="Could not fetch the CF standard name table")
    started = time.monotonic()
    try:
        if job.layout == "s2-optimized":
            from eopf_geozarr.s2_optimization.s2_converter import convert_s2_optimized

            log.info("eopf-geozarr: Sentinel-2 optimized layout (groups are checked, not selected, here)")
            convert_s2_optimized(
                tree,
                output_path=str(store),
                enable_sharding=False,
                spatial_chunk=job.spatial_chunk,
                compression_level=3,
                validate_output=True,
                keep_scale_offset=False,
            )
        else:
            from eopf_geozarr.conversion.geozarr import create_geozarr_dataset

            log.info("eopf-geozarr: generic layout, groups %s", " ".join(job.groups))
            create_geozarr_dataset(
                tree,
                groups=list(job.groups),
                output_path=str(store),
                spatial_chunk=job.spatial_chunk,
                min_dimension=job.min_dimension,
            )
    except ToolError:
        raise
    except Exception as err:
        raise ToolError(f"eopf-geozarr failed: {type(err).__name__}: {err}") from err
    log.info("eopf-geozarr wrote %s in %.1f s", store, time.monotonic() - started)
