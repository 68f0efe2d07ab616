"""Command line of convert-url; flags mirror the CWL input ids (snake_case -> kebab-case)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from eopack_eo_common.cli import add_output_arguments, run_main, setup_logging

from .core import FUNCTIONS, convert

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="convert-url",
        description="Fetch an image by URL, transform it and write it with a STAC catalog.",
    )
    parser.add_argument("--fn", required=True, help=f"function to apply: {', '.join(sorted(FUNCTIONS))}")
    parser.add_argument("--url", required=True, help="http(s) URL of the image")
    parser.add_argument("--size", required=True, help="'50%%' or WIDTHxHEIGHT, e.g. 640x480")
    parser.add_argument("--max-bytes", type=int, default=100 * 1024**2, help="download size limit (bytes)")
    parser.add_argument("--timeout", type=float, default=30.0, help="connect/read timeout (seconds)")
    add_output_arguments(parser)
    return parser


def _body(argv: Sequence[str] | None) -> None:
    args = _parser().parse_args(argv)
    setup_logging(args.verbose)
    catalog = convert(
        args.url,
        args.fn,
        args.size,
        args.outdir,
        max_bytes=args.max_bytes,
        timeout=args.timeout,
        dask_report=args.dask_report,
    )
    print(catalog)


def main(argv: Sequence[str] | None = None) -> int:
    return run_main("convert-url", _body, argv)


if __name__ == "__main__":
    sys.exit(main())
