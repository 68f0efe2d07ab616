"""NDVI on the catalogs users actually have (issue 20): every archive style, both processing baselines."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from stac_edit import edited_copy

from eopack_eo_common.errors import ToolInputError
from eopack_ndvi.cli import main
from eopack_ndvi.core import NdviJob, run
from eopack_sample_data.s2 import TRUTH

SEED_AOI = "11.4,46.5,11.5,46.6"
STYLES = ("pc", "earth-search", "stac-1.1")


def _job(catalog: Path, **kw: Any) -> NdviJob:
    args: dict[str, Any] = {"aoi": SEED_AOI, "start_date": "2024-06-01", "end_date": "2024-07-31"}
    return NdviJob.from_args(input_catalog=catalog.parent, **{**args, **kw})


def _layers(out: Path) -> dict[str, np.ndarray]:
    layers = {}
    for path in sorted(out.glob("*/ndvi.tif")):
        with rasterio.open(path) as src:
            layers[path.parent.name] = src.read(1)
    return layers


def _field(out: Path) -> list[np.ndarray]:
    """The field's pixels on every date it is clear."""
    values = []
    for when in TRUTH.field_clear_dates:
        with rasterio.open(out / f"ndvi-{when:%Y%m%d}" / "ndvi.tif") as src:
            pixels, transform = src.read(1), src.transform
        rows, cols = np.indices(pixels.shape)
        xs, ys = rasterio.transform.xy(transform, rows.ravel(), cols.ravel())
        xs, ys = np.asarray(xs).reshape(pixels.shape), np.asarray(ys).reshape(pixels.shape)
        x0, y0, x1, y1 = TRUTH.field.bbox
        values.append(pixels[(xs > x0) & (xs < x1) & (ys > y0) & (ys < y1)])
    return values


@pytest.fixture(scope="module")
def reference(sample_catalog: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, np.ndarray]:
    """Every date of the default (eopack-style) catalog."""
    out = tmp_path_factory.mktemp("ndvi-reference")
    run(_job(sample_catalog), out)
    return _layers(out)


@pytest.mark.parametrize("style", STYLES)
def test_every_archive_style_gives_identical_pixels(
    style: str, sample_style: Callable[..., Path], reference: dict[str, np.ndarray], tmp_path: Path
) -> None:
    run(_job(sample_style(style)), tmp_path / "out")
    ours = _layers(tmp_path / "out")
    assert list(ours) == list(reference) and len(ours) == len(TRUTH.dates)
    for name, pixels in ours.items():
        np.testing.assert_array_equal(pixels, reference[name], err_msg=f"{style} {name}")
    for field in _field(tmp_path / "out"):
        np.testing.assert_allclose(field, TRUTH.field.ndvi, rtol=0, atol=1e-6)


@pytest.mark.parametrize("style", ("eopack", "pc", "earth-search", "stac-1.1"))
def test_field_ndvi_is_exact_before_baseline_04(
    style: str, sample_style: Callable[..., Path], tmp_path: Path
) -> None:
    """DN without the +1000 (baseline 03.01): offset 0 declared (eopack, earth-search, stac-1.1) or ruled (pc)."""
    catalog = sample_style(style, "03.01")
    run(_job(catalog), tmp_path / "out")
    fields = _field(tmp_path / "out")
    assert len(fields) >= 2
    for field in fields:
        assert field.size > 50
        # 9/11; with the 04.00 offset wrongly applied, red 0.04 would read -0.06 and the NDVI 1.5
        np.testing.assert_allclose(field, TRUTH.field.ndvi, rtol=0, atol=1e-6)


def test_undeclared_extensions_are_read(
    sample_style: Callable[..., Path], reference: dict[str, np.ndarray], tmp_path: Path
) -> None:
    """Hand-made catalogs use proj:/raster:/eo: fields without listing them in stac_extensions."""

    def strip(doc: dict[str, Any]) -> None:
        doc["stac_extensions"] = []

    catalog = edited_copy(sample_style("stac-1.1"), tmp_path / "undeclared", strip)
    run(_job(catalog), tmp_path / "out")
    ours = _layers(tmp_path / "out")
    assert list(ours) == list(reference)
    for name, pixels in ours.items():
        np.testing.assert_array_equal(pixels, reference[name], err_msg=name)


def _without_scl(doc: dict[str, Any]) -> None:
    doc["assets"].pop("scl")


def test_no_scl_is_one_line_naming_the_unmasked_run(
    sample_style: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    catalog = edited_copy(sample_style("earth-search"), tmp_path / "no-scl", _without_scl)
    with pytest.raises(ToolInputError, match='masked_classes: ""'):
        run(_job(catalog), tmp_path / "out")
    args = ["--input-catalog", str(catalog.parent), "--aoi", SEED_AOI, "--start-date", "2024-06-01"]
    code = main([*args, "--end-date", "2024-06-30", "--outdir", str(tmp_path / "cli")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert (
        err[-1].startswith("ndvi: error: item S2B_MSIL2A_")
        and "no scene classification (SCL) asset" in err[-1]
    )
    assert err[-1].endswith('Set masked_classes: "" to run without the cloud mask')


def test_unmasked_run_needs_no_scl(sample_style: Callable[..., Path], tmp_path: Path) -> None:
    catalog = edited_copy(sample_style("earth-search"), tmp_path / "no-scl", _without_scl)
    run(_job(catalog, masked_classes=""), tmp_path / "out")
    layers = _layers(tmp_path / "out")
    assert len(layers) == len(TRUTH.dates)
    for field in _field(tmp_path / "out"):
        np.testing.assert_allclose(field, TRUTH.field.ndvi, rtol=0, atol=1e-6)
    # nothing masked: the cloud over the field on the trap date is in the result, not NaN
    trap = _field_on(tmp_path / "out", TRUTH.cloudy_field_date)
    assert np.all(np.isfinite(trap)) and np.all(np.abs(trap - TRUTH.field.ndvi) > 0.1)


def _field_on(out: Path, when: Any) -> np.ndarray:
    with rasterio.open(out / f"ndvi-{when:%Y%m%d}" / "ndvi.tif") as src:
        x0, y0, x1, y1 = TRUTH.field.bbox
        window = rasterio.windows.from_bounds(x0 + 100, y0 + 100, x1 - 100, y1 - 100, transform=src.transform)
        return src.read(1, window=window)
