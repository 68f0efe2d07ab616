"""Checks on the outputs of the pytest-workflow runs in tests/workflows/convert-url/ (the real CLI)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from PIL import Image

from eopack_eo_common.stac import validate_tree


@pytest.mark.workflow("convert-url cwltool png 50%")
def test_png_pixels_and_stac(workflow_dir: Path) -> None:
    out = workflow_dir / "out" / "converted_image"
    pixels = np.asarray(Image.open(out / "sample-rgb" / "sample-rgb.png"))
    np.testing.assert_array_equal(pixels, np.load(workflow_dir / "images" / "sample-rgb-half.npy"))
    report = validate_tree(out)
    assert report.ok, report.errors
    assert report.documents == 2
    outputs = json.loads((workflow_dir / "out" / ".eopack" / "outputs.json").read_text())
    assert outputs["converted_image"]["path"] == str(out)


@pytest.mark.workflow("convert-url cwltool geotiff WxH")
def test_geotiff_georeferencing_kept(workflow_dir: Path) -> None:
    out = workflow_dir / "out" / "converted_image"
    with (
        rasterio.open(workflow_dir / "images" / "sample-s2.tif") as src,
        rasterio.open(out / "sample-s2" / "sample-s2.tif") as dst,
    ):
        assert dst.crs == src.crs
        assert dst.bounds == src.bounds
        expected = src.read().reshape(2, 16, 2, 32, 2).mean(axis=(2, 4))
        np.testing.assert_allclose(dst.read(), expected, atol=1)
    assert validate_tree(out).ok


@pytest.mark.workflow("convert-url cwltool unknown fn")
def test_failed_run_keeps_logs_but_no_result(workflow_dir: Path) -> None:
    run = workflow_dir / "out"
    assert sorted(p.name for p in run.iterdir()) == [".eopack"]
    assert not (run / ".eopack" / "out").exists()
    # fn is an enum: cwltool refuses the value before the tool starts, and says which are valid.
    assert "the value 'blur' is not a valid" in (run / ".eopack" / "cwltool.log").read_text()
