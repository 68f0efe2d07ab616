"""cloudless-mosaic on the catalogs users actually have (issue 20): every style, mixed baselines."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from stac_edit import edited_copy

from eopack_cloudless_mosaic.core import MosaicJob, run
from eopack_eo_common.errors import ToolInputError
from eopack_sample_data.s2 import TRUTH

BOTH_TILES = "11.4,46.5,11.65,46.6"
STYLES = ("pc", "earth-search", "stac-1.1")
FILES = ("red.tif", "green.tif", "blue.tif", "nir.tif", "clear-count.tif")


def _job(catalog: Path, **kw: Any) -> MosaicJob:
    args: dict[str, Any] = {"aoi": BOTH_TILES, "start_date": "2024-06-01", "end_date": "2024-07-31"}
    return MosaicJob.from_args(input_catalog=catalog.parent, **{**args, **kw})


def _pixels(out: Path) -> dict[str, tuple[np.ndarray, tuple[float, ...]]]:
    """Stored integers and (scale, offset) of every COG of every month."""
    found = {}
    for path in sorted(out.glob("monthly-mosaic-*/*.tif")):
        with rasterio.open(path) as src:
            found[f"{path.parent.name}/{path.name}"] = (src.read(1), (*src.scales, *src.offsets))
    return found


def _same(ours: dict[str, Any], reference: dict[str, Any], label: str) -> None:
    assert list(ours) == list(reference)
    assert len(ours) == 2 * len(FILES)
    for name, (pixels, encoding) in ours.items():
        np.testing.assert_array_equal(pixels, reference[name][0], err_msg=f"{label} {name}")
        assert encoding == reference[name][1], name


@pytest.fixture(scope="module")
def reference(sample_catalog: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("mosaic-reference")
    run(_job(sample_catalog), out)
    return _pixels(out)


@pytest.mark.parametrize("style", STYLES)
def test_every_archive_style_gives_identical_pixels(
    style: str, sample_style: Callable[..., Path], reference: dict[str, Any], tmp_path: Path
) -> None:
    run(_job(sample_style(style)), tmp_path / "out")
    _same(_pixels(tmp_path / "out"), reference, style)


def test_a_month_across_processing_baselines_is_one_encoding(
    sample_style: Callable[..., Path], reference: dict[str, Any], tmp_path: Path
) -> None:
    """Days 15 and 25 at baseline 03.01 (no DN offset), day 05 at 05.10: the old DN are shifted by +1000."""
    new, old = sample_style("pc"), sample_style("pc", "03.01")
    mixed = tmp_path / "mixed"
    shutil.copytree(new.parent, mixed, ignore=shutil.ignore_patterns("generator.json"))
    replaced = 0
    for folder in sorted((old.parent / TRUTH.collection_id).iterdir()):
        if folder.is_dir() and folder.name[17:19] in ("15", "25"):  # S2B_MSIL2A_YYYYMMDD...
            shutil.rmtree(mixed / TRUTH.collection_id / folder.name)
            shutil.copytree(folder, mixed / TRUTH.collection_id / folder.name)
            replaced += 1
    assert replaced >= 4
    baselines = {
        json.loads(p.read_text())["properties"]["s2:processing_baseline"]
        for p in mixed.glob(f"{TRUTH.collection_id}/*/*.json")
    }
    assert baselines == {"05.10", "03.01"}
    run(_job(mixed / "catalog.json"), tmp_path / "out")
    _same(_pixels(tmp_path / "out"), reference, "mixed baselines")


def test_old_baseline_only_gives_the_same_reflectance(
    sample_style: Callable[..., Path], reference: dict[str, Any], tmp_path: Path
) -> None:
    run(_job(sample_style("earth-search", "03.01")), tmp_path / "out")
    ours = _pixels(tmp_path / "out")
    assert list(ours) == list(reference)
    for name, (pixels, (scale, offset)) in ours.items():
        ref, (ref_scale, ref_offset) = reference[name]
        if name.endswith("clear-count.tif"):
            np.testing.assert_array_equal(pixels, ref)
            continue
        assert offset == 0.0 and ref_offset == -0.1
        valid = ref > 0
        np.testing.assert_array_equal(pixels > 0, valid)
        np.testing.assert_allclose(
            pixels[valid] * scale + offset, ref[valid] * ref_scale + ref_offset, rtol=0, atol=1e-9
        )


def _without_scl(doc: dict[str, Any]) -> None:
    doc["assets"].pop("SCL_20m")


def test_no_scl_names_the_unmasked_run_and_unmasked_runs(
    sample_style: Callable[..., Path], tmp_path: Path
) -> None:
    catalog = edited_copy(sample_style("stac-1.1"), tmp_path / "no-scl", _without_scl)
    with pytest.raises(
        ToolInputError, match='no scene classification.*Set masked_classes: "" to run without'
    ):
        run(_job(catalog), tmp_path / "masked")
    run(_job(catalog, masked_classes=""), tmp_path / "out")
    with rasterio.open(tmp_path / "out" / "monthly-mosaic-2024-06" / "clear-count.tif") as src:
        count = src.read(1)
    # nothing masked: every date with data counts (tile 0 has all three June dates)
    assert count.max() == 3 and count[count > 0].min() >= 1


def test_s3_hrefs_through_the_block_reader(
    s3_archive: tuple[str, str],
    sample_style: Callable[..., Path],
    reference: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The mosaic's own windowed reads (not odc-stac) reach s3:// assets on a loopback S3 endpoint."""
    endpoint, bucket = s3_archive

    def to_s3(doc: dict[str, Any]) -> None:
        for asset in doc["assets"].values():
            asset["href"] = f"s3://{bucket}/{doc['id']}/{asset['href'].removeprefix('./')}"

    catalog = edited_copy(sample_style("pc"), tmp_path / "s3", to_s3)
    for key, value in {
        "AWS_ACCESS_KEY_ID": "eopack-test",
        "AWS_SECRET_ACCESS_KEY": "eopack-test-secret",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_S3_ENDPOINT": endpoint,
        "AWS_HTTPS": "NO",
        "AWS_VIRTUAL_HOSTING": "FALSE",
    }.items():
        monkeypatch.setenv(key, value)
    run(_job(catalog), tmp_path / "out")
    _same(_pixels(tmp_path / "out"), reference, "s3")
