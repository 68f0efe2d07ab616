"""Checks on the outputs of tests/workflows/ndvi/test_cwltool.yml (the real CLI through cwltool)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio

from eopack_eo_common.stac import validate_tree
from eopack_sample_data.s2 import TRUTH


@pytest.mark.workflow("ndvi cwltool default job")
def test_default_job_field_value_and_stac(workflow_dir: Path) -> None:
    out = workflow_dir / "out" / "ndvi_results"
    report = validate_tree(out)
    assert report.ok, report.errors
    assert report.documents == 1 + len(TRUTH.dates)
    clear = TRUTH.field_clear_dates[0]
    with rasterio.open(out / f"ndvi-{clear:%Y%m%d}" / "ndvi.tif") as src:
        x0, y0, x1, y1 = TRUTH.field.bbox
        window = rasterio.windows.from_bounds(x0 + 100, y0 + 100, x1 - 100, y1 - 100, transform=src.transform)
        field = src.read(1, window=window)
    np.testing.assert_allclose(field, TRUTH.field.ndvi_float32, rtol=0, atol=1e-6)
    with rasterio.open(out / f"ndvi-{TRUTH.cloudy_field_date:%Y%m%d}" / "ndvi.tif") as src:
        assert np.isnan(src.read(1, window=window)).all()
