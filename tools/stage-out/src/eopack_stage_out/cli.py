"""Command line of stage-out; flags mirror the CWL input ids (snake_case -> kebab-case).

Prints the catalog URL on stdout and writes ``cwl.output.json`` (the CWL output object, the URL as
an eoap ``URI`` record) into ``--outdir``, so the CWL tool needs no JavaScript to return it.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from eopack_eo_common.cli import run_main, setup_logging

from .core import S3Settings, stage_out, subfolder_name

__all__ = ["OUTPUT_ID", "main"]

OUTPUT_ID = "stac_catalog_uri"  # the CWL output id of app-packages/stage-out/stage-out.cwl


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stage-out",
        description=(
            "Upload a result folder (catalog.json at its root) to an S3 bucket the way the platform's "
            "stage-out does, rewriting hrefs to the bucket; prints the catalog URL. Credentials: "
            "--s3-credentials FILE (AWS shared-credentials format, mode 600) or STAGEOUT_AWS_ACCESS_KEY_ID/"
            "STAGEOUT_AWS_SECRET_ACCESS_KEY in the environment."
        ),
    )
    parser.add_argument("results", type=Path, help="folder holding catalog.json")
    parser.add_argument("--s3-bucket", required=True, help="bucket to upload to")
    parser.add_argument(
        "--process-name", default="eopack", help="folder name prefix (a random suffix is added)"
    )
    parser.add_argument("--s3-endpoint", help="S3 endpoint URL (default $STAGEOUT_AWS_SERVICEURL, else AWS)")
    parser.add_argument("--s3-region", help="region (default $STAGEOUT_AWS_REGION, else us-east-1)")
    parser.add_argument(
        "--s3-credentials", type=Path, help="AWS shared-credentials file with a [default] key"
    )
    parser.add_argument(
        "--outdir", type=Path, default=Path("."), help="where cwl.output.json goes (default: .)"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser


def _body(argv: Sequence[str] | None) -> None:
    args = _parser().parse_args(argv)
    setup_logging(args.verbose)
    settings = S3Settings.resolve(args.s3_endpoint, args.s3_region, args.s3_credentials)
    staged = stage_out(args.results, args.s3_bucket, settings, subfolder=subfolder_name(args.process_name))
    args.outdir.mkdir(parents=True, exist_ok=True)
    (args.outdir / "cwl.output.json").write_text(
        json.dumps({OUTPUT_ID: {"value": staged.catalog_url}}) + "\n"
    )
    print(staged.catalog_url)


def main(argv: Sequence[str] | None = None) -> int:
    return run_main("stage-out", _body, argv)


if __name__ == "__main__":
    sys.exit(main())
