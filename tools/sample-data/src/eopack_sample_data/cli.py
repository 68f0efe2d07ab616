"""Command line of eopack-sample-data: make (or reuse) the sample catalog, print its path last."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from .eopf import EopfInputError
from .s2 import SampleDataInputError, generate
from .styles import DEFAULT_STYLE, STYLES

__all__ = ["main"]

_TOOL = "eopack-sample-data"
EXIT_INPUT = 2
EXIT_FAILURE = 1


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors are the same one line as every other input error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"{_TOOL}: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_INPUT)


def _parser() -> _Parser:
    parser = _Parser(
        prog=_TOOL,
        description=(
            "Write a deterministic synthetic Sentinel-2 L2A time series (COGs + STAC catalog) and "
            "print the path of its catalog.json. Reuses DIR if it already holds the same data."
        ),
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output folder (default: data/sample, or data/sample-eopf with --geozarr)",
    )
    parser.add_argument("--months", type=int, default=2, help="months of data, 3 dates each (default: 2)")
    parser.add_argument("--tiles", type=int, default=2, help="overlapping tiles, west to east (default: 2)")
    parser.add_argument(
        "--tile-size", type=int, default=600, help="tile width and height in pixels (default: 600)"
    )
    parser.add_argument("--resolution", type=float, default=20.0, help="pixel size in metres (default: 20)")
    parser.add_argument("--start", default="2024-06", help="first month, YYYY-MM (default: 2024-06)")
    parser.add_argument("--force", action="store_true", help="regenerate even if DIR is up to date")
    parser.add_argument(
        "--processing-baseline",
        default="05.10",
        help="s2:processing_baseline of the items; before 04.00 the DN carry no +1000 offset (default: 05.10)",
    )
    parser.add_argument(
        "--style",
        choices=STYLES,
        default=DEFAULT_STYLE,
        help="spell the STAC items like a public archive: pc (Planetary Computer), earth-search "
        "(Earth Search v1), stac-1.1 (STAC 1.1 bands); same pixels (default: eopack; "
        "default --out data/sample-STYLE for the others)",
    )
    eopf = parser.add_argument_group("EOPF-like Zarr product (for the geozarr package)")
    eopf.add_argument(
        "--geozarr",
        action="store_true",
        help="write the synthetic EOPF Zarr product instead, and print the store path",
    )
    eopf.add_argument("--size", type=int, default=512, help="r10m width and height in pixels (default: 512)")
    eopf.add_argument("--zarr-format", type=int, choices=(2, 3), default=3, help="Zarr format (default: 3)")
    eopf.add_argument("--name", default="sample-eopf", help="store name without .zarr (default: sample-eopf)")
    eopf.add_argument("--no-crs", action="store_true", help="omit every CRS attribute (for failure tests)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser


def _log_to_stderr(verbose: bool) -> None:
    """Progress goes to stderr (stdout is for the catalog path), whoever configured logging before."""
    logger = logging.getLogger("eopack_sample_data")
    for handler in [h for h in logger.handlers if getattr(h, "_eopack_sample_data", False)]:
        logger.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"{_TOOL}: %(message)s"))
    handler._eopack_sample_data = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    logger.propagate = False


def main(argv: Sequence[str] | None = None) -> int:
    """Exit 0 with the catalog path on stdout, 2 for bad arguments, 1 for anything else."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as err:  # --help exits 0, usage errors 2 (already printed)
        return err.code if isinstance(err.code, int) else EXIT_INPUT
    _log_to_stderr(args.verbose)
    try:
        if args.geozarr:
            from .eopf import generate as generate_eopf

            store = generate_eopf(
                args.out or Path("data/sample-eopf"),
                name=args.name,
                size=args.size,
                zarr_format=args.zarr_format,
                crs=not args.no_crs,
                force=args.force,
            )
            print(store)
            return 0
        default_out = Path("data/sample" if args.style == DEFAULT_STYLE else f"data/sample-{args.style}")
        catalog = generate(
            args.out or default_out,
            months=args.months,
            tiles=args.tiles,
            tile_size=args.tile_size,
            resolution=args.resolution,
            start=args.start,
            force=args.force,
            style=args.style,
            processing_baseline=args.processing_baseline,
        )
    except (SampleDataInputError, EopfInputError) as err:
        print(f"{_TOOL}: error: {err}", file=sys.stderr)
        return EXIT_INPUT
    except KeyboardInterrupt:
        print(f"{_TOOL}: error: interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        print(f"{_TOOL}: error: unexpected {type(err).__name__}: {err}", file=sys.stderr)
        import traceback

        traceback.print_exc(file=sys.stderr)
        return EXIT_FAILURE
    print(catalog)
    return 0


if __name__ == "__main__":
    sys.exit(main())
