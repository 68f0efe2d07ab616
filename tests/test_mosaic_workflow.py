"""Checks on the outputs of tests/workflows/cloudless-mosaic/test_cwltool.yml (the real CLI)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from eopack_eo_common.stac import validate_tree


@pytest.mark.workflow("cloudless-mosaic cwltool default job")
def test_default_job_cogs_and_stac(workflow_dir: Path) -> None:
    out = workflow_dir / "out" / "mosaics"
    report = validate_tree(out)
    assert report.ok, report.errors
    rio = Path(sys.executable).parent / "rio"
    for tif in sorted(out.glob("monthly-mosaic-*/*.tif")):
        proc = subprocess.run(
            [str(rio), "cogeo", "validate", str(tif)], capture_output=True, text=True, check=False
        )
        assert proc.returncode == 0 and "is a valid cloud optimized GeoTIFF" in proc.stdout, (
            proc.stdout + proc.stderr
        )
