"""Command line of cloudless-mosaic; flags mirror the CWL input ids (snake_case -> kebab-case)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from eopack_eo_common.cli import add_output_arguments, add_source_arguments, run_main, setup_logging

from .core import BLOCK_SIZE, DEFAULT_BANDS, MosaicJob, run

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cloudless-mosaic", description="Monthly cloud-free median mosaics of Sentinel-2 L2A."
    )
    add_source_arguments(parser)
    parser.add_argument("--start-date", required=True, help="first day, YYYY-MM-DD (UTC)")
    parser.add_argument("--end-date", required=True, help="last day, YYYY-MM-DD (UTC, inclusive)")
    parser.add_argument("--aoi", required=True, help="west,south,east,north in degrees (EPSG:4326)")
    parser.add_argument(
        "--bands",
        action="append",
        help=f"bands, comma-separated or repeated (default {','.join(DEFAULT_BANDS)})",
    )
    parser.add_argument("--collection", default="sentinel-2-l2a", help="collection id (default %(default)s)")
    parser.add_argument("--max-cloud-cover", type=float, help="scene filter on eo:cloud_cover (0-100)")
    parser.add_argument("--max-items", type=int, help="read at most this many items")
    parser.add_argument("--resolution", type=float, default=20.0, help="pixel size in metres (default 20)")
    parser.add_argument("--epsg", type=int, help="output CRS (default: the items' dominant UTM zone)")
    parser.add_argument(
        "--masked-classes", help='SCL classes to mask (default 0,1,3,8,9,10; "" for no mask, no SCL needed)'
    )
    parser.add_argument(
        "--block-size", type=int, default=BLOCK_SIZE, help=f"pixels per block side (default {BLOCK_SIZE})"
    )
    add_output_arguments(parser)
    return parser


def _body(argv: Sequence[str] | None) -> None:
    args = _parser().parse_args(argv)
    setup_logging(args.verbose)
    job = MosaicJob.from_args(
        aoi=args.aoi,
        start_date=args.start_date,
        end_date=args.end_date,
        bands=args.bands or DEFAULT_BANDS,
        collection=args.collection,
        max_cloud_cover=args.max_cloud_cover,
        max_items=args.max_items,
        resolution=args.resolution,
        epsg=args.epsg,
        masked_classes=args.masked_classes,
        stac_api=args.stac_api,
        input_catalog=args.input_catalog,
        block_size=args.block_size,
        dask_report=args.dask_report,
    )
    print(run(job, args.outdir))


def main(argv: Sequence[str] | None = None) -> int:
    return run_main("cloudless-mosaic", _body, argv)


if __name__ == "__main__":
    sys.exit(main())
