"""Command line of openeo-graph; flags mirror the CWL input ids (snake_case -> kebab-case)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from eopack_eo_common.cli import add_output_arguments, add_source_arguments, run_main, setup_logging

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="openeo-graph",
        description="Run an openEO process graph (JSON) on Sentinel-2 data from STAC; results as COG + STAC.",
    )
    parser.add_argument(
        "--process-graph",
        type=Path,
        required=True,
        help='process graph JSON: {"process_graph": {...}} as openEO clients write it, or the bare flat graph',
    )
    add_source_arguments(parser)
    parser.add_argument(
        "--collection-map",
        help="OPENEO_ID=stac-collection-id pairs, comma-separated (SENTINEL2_L2A=sentinel-2-l2a is built in)",
    )
    add_output_arguments(parser)
    return parser


def _body(argv: Sequence[str] | None) -> None:
    args = _parser().parse_args(argv)
    setup_logging(args.verbose)
    # Imported after argument parsing: the openEO libraries take seconds to import, --help should not.
    from .core import GraphJob, run

    job = GraphJob.from_args(
        process_graph=args.process_graph,
        stac_api=args.stac_api,
        input_catalog=args.input_catalog,
        collection_map=args.collection_map,
        dask_report=args.dask_report,
    )
    print(run(job, args.outdir))


def main(argv: Sequence[str] | None = None) -> int:
    return run_main("openeo-graph", _body, argv)


if __name__ == "__main__":
    sys.exit(main())
