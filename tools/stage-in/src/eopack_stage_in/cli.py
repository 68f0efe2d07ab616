"""Command line of stage-in; flags mirror the CWL input ids (snake_case -> kebab-case)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from eopack_eo_common.cli import run_main, setup_logging

from .core import stage_file, stage_in

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stage-in",
        description=(
            "Stage STAC items (Item URLs, a STAC API search URL, or a catalog) into a folder holding a "
            "self-contained catalog.json with the items as direct children and their assets downloaded."
        ),
    )
    parser.add_argument(
        "reference", nargs="+", help="STAC Item URL, search URL (…/search?…) or catalog URL/path"
    )
    parser.add_argument(
        "--as-file",
        action="store_true",
        help="download the one file the reference names instead (File inputs)",
    )
    parser.add_argument("--max-bytes", type=int, default=4 * 1024**3, help="size limit per download (bytes)")
    parser.add_argument("--timeout", type=float, default=60.0, help="connect/read timeout (seconds)")
    parser.add_argument("--outdir", type=Path, default=Path("."), help="where to stage (default: .)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser


def _body(argv: Sequence[str] | None) -> None:
    args = _parser().parse_args(argv)
    setup_logging(args.verbose)
    if args.as_file:
        if len(args.reference) != 1:
            from eopack_eo_common.errors import ToolInputError

            raise ToolInputError("--as-file stages exactly one reference")
        print(stage_file(args.reference[0], args.outdir, max_bytes=args.max_bytes, timeout=args.timeout))
        return
    staged = stage_in(args.reference, args.outdir, max_bytes=args.max_bytes, timeout=args.timeout)
    print(staged.catalog)


def main(argv: Sequence[str] | None = None) -> int:
    return run_main("stage-in", _body, argv)


if __name__ == "__main__":
    sys.exit(main())
