"""The one way every tool's ``main()`` turns exceptions into exit codes and a single stderr line."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from .access import RedactingFilter, load_secret_files, redact
from .errors import EXIT_FAILURE, ToolError

__all__ = ["add_output_arguments", "add_source_arguments", "run_main", "setup_logging"]


def setup_logging(verbose: bool = False) -> None:
    """Progress goes to stderr, so a tool's stdout stays free for machine-readable output."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    # No credential or signed-URL query in any log line (library warnings included).
    logging.captureWarnings(True)
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
    for noisy in ("distributed", "rasterio", "urllib3", "PIL", "asyncio", "tornado", "bokeh"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def add_source_arguments(parser: argparse.ArgumentParser) -> None:
    """``--stac-api`` or ``--input-catalog``, exactly one: the two input paths every EO tool accepts."""
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--stac-api", help="STAC API URL to search")
    source.add_argument("--input-catalog", type=Path, help="staged STAC catalog folder (catalog.json)")


def add_output_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags every Dask tool ends with: the optional report, the output folder, verbosity."""
    parser.add_argument("--dask-report", action="store_true", help="write dask-report.html")
    parser.add_argument("--outdir", type=Path, default=Path("."), help="where the results go (default: .)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")


def run_main(tool: str, body: Callable[[Sequence[str] | None], None], argv: Sequence[str] | None) -> int:
    """Run ``body`` and map its outcome to an exit code.

    A ``ToolError`` prints exactly one line, ``<tool>: error: <message>``, so runners and users
    see what to fix without reading a traceback. Anything else is a bug: we still print one line
    first, then the traceback for whoever debugs it.
    """
    try:
        load_secret_files()  # container mode: secrets arrive as <NAME>_FILE (runners' secret_files)
        body(argv)
    except ToolError as err:
        print(redact(f"{tool}: error: {err}"), file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print(f"{tool}: error: interrupted", file=sys.stderr)
        return 130
    except SystemExit as err:  # argparse usage errors and SIGTERM (see dask_cluster) land here
        code = err.code if isinstance(err.code, int) else EXIT_FAILURE
        return code
    except Exception as err:
        # one line first; messages of GDAL/HTTP errors may hold a signed URL: redacted
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        print(redact(f"{tool}: error: unexpected {type(err).__name__}: {first}"), file=sys.stderr)
        import traceback

        print(redact("".join(traceback.format_exc())), file=sys.stderr)
        return EXIT_FAILURE
    return 0
