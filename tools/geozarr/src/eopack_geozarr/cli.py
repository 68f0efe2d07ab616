"""Command line of geozarr; flags mirror the CWL input ids (snake_case -> kebab-case)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from eopack_eo_common.cli import run_main, setup_logging

from .core import DEFAULT_GROUPS, LAYOUTS, GeozarrJob, run

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="geozarr",
        description="Convert an EOPF Zarr product to GeoZarr (eopf-geozarr), verify it, and describe it in STAC.",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--zarr-url", help="http(s):// or s3:// URL of the EOPF Zarr store")
    source.add_argument("--stac-item", help="URL or file of a STAC item whose asset is the Zarr store")
    source.add_argument("--input-zarr", type=Path, help="staged Zarr store folder")
    parser.add_argument(
        "--groups",
        help=f"space- or comma-separated groups, leading / optional (default: {' '.join(DEFAULT_GROUPS)})",
    )
    parser.add_argument(
        "--layout", default="generic", help=f"one of {', '.join(LAYOUTS)} (default %(default)s)"
    )
    parser.add_argument("--spatial-chunk", type=int, default=4096, help="chunk size in pixels (default 4096)")
    parser.add_argument(
        "--min-dimension",
        type=int,
        default=256,
        help="no overview smaller than this many pixels (default 256)",
    )
    parser.add_argument("--dask-report", action="store_true", help="write dask-report.html")
    parser.add_argument("--tarball", action="store_true", help="also write geozarr.tar.gz of the store")
    parser.add_argument("--outdir", type=Path, default=Path("."), help="where the results go (default: .)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging (eopf-geozarr's too)")
    return parser


def _body(argv: Sequence[str] | None) -> None:
    args = _parser().parse_args(argv)
    setup_logging(args.verbose)
    job = GeozarrJob.from_args(
        zarr_url=args.zarr_url,
        stac_item=args.stac_item,
        input_zarr=args.input_zarr,
        groups=args.groups,
        layout=args.layout,
        spatial_chunk=args.spatial_chunk,
        min_dimension=args.min_dimension,
        dask_report=args.dask_report,
        tarball=args.tarball,
    )
    print(run(job, args.outdir, args.verbose).catalog)


def main(argv: Sequence[str] | None = None) -> int:
    return run_main("geozarr", _body, argv)


if __name__ == "__main__":
    sys.exit(main())
