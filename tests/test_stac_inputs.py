"""Packages read the same pixels from the real STAC API as from the staged catalog."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio

from eopack.services.stac import StacStack
from eopack_cli import Eopack
from eopack_ndvi.core import NdviJob, run

pytestmark = pytest.mark.stacapi


def _layers(folder: Path) -> dict[str, np.ndarray]:
    out = {}
    for tif in sorted(folder.glob("*/ndvi.tif")):
        with rasterio.open(tif) as src:
            out[tif.parent.name] = src.read(1)
    return out


def _job(**source: object) -> NdviJob:
    return NdviJob.from_args(
        aoi="11.4,46.5,11.5,46.6",
        start_date="2024-06-01",
        end_date="2024-07-31",
        max_cloud_cover=50,
        **source,
    )  # type: ignore[arg-type]


def test_api_and_staged_catalog_give_identical_rasters(
    stac_api: StacStack, sample_catalog: Path, tmp_path: Path
) -> None:
    run(_job(stac_api=stac_api.api_url), tmp_path / "api")
    run(_job(input_catalog=sample_catalog.parent), tmp_path / "staged")
    api, staged = _layers(tmp_path / "api"), _layers(tmp_path / "staged")
    assert list(api) == list(staged) and len(api) >= 4
    for name in api:
        np.testing.assert_array_equal(api[name], staged[name], err_msg=name)


def test_unknown_collection_on_the_api_lists_the_available_ones(stac_api: StacStack, tmp_path: Path) -> None:
    from eopack_eo_common.errors import ToolInputError

    job = NdviJob.from_args(
        aoi="11.4,46.5,11.5,46.6",
        start_date="2024-06-01",
        end_date="2024-06-30",
        collection="nope",
        stac_api=stac_api.api_url,
    )
    with pytest.raises(
        ToolInputError, match=r"collection 'nope' is not in the STAC API .*; available: (.*, )?sentinel-2-l2a"
    ):
        run(job, tmp_path)


def _eopack_run(eopack: Eopack, job: Path, outdir: Path) -> Path:
    proc = eopack("run", "ndvi", str(job), "--outdir", str(outdir), "-q", allow_private=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return Path(proc.stdout.strip().splitlines()[-1])


def test_eopack_run_stac_api_example_matches_the_default_job(
    eopack: Eopack, root: Path, stac_api: StacStack, tmp_path: Path
) -> None:
    """Acceptance: examples/stac-api.yml (pointed at this session's API) == examples/default.yml."""
    example = (root / "app-packages/ndvi/examples/stac-api.yml").read_text()
    assert "http://127.0.0.1:8089" in example
    job = tmp_path / "stac-api.yml"
    job.write_text(example.replace("http://127.0.0.1:8089", stac_api.api_url))
    api = _eopack_run(eopack, job, tmp_path / "api")
    staged = _eopack_run(eopack, root / "app-packages/ndvi/examples/default.yml", tmp_path / "staged")
    a, b = _layers(api.parent), _layers(staged.parent)
    assert list(a) == list(b) and a
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def test_mosaic_api_and_staged_catalog_give_identical_rasters(
    stac_api: StacStack, sample_catalog: Path, tmp_path: Path
) -> None:
    from eopack_cloudless_mosaic.core import MosaicJob
    from eopack_cloudless_mosaic.core import run as mosaic

    def job(**source: object) -> MosaicJob:
        return MosaicJob.from_args(
            aoi="11.4,46.5,11.65,46.6", start_date="2024-06-01", end_date="2024-07-31", **source
        )  # type: ignore[arg-type]

    mosaic(job(stac_api=stac_api.api_url), tmp_path / "api")
    mosaic(job(input_catalog=sample_catalog.parent), tmp_path / "staged")
    tifs = sorted(p.relative_to(tmp_path / "api") for p in (tmp_path / "api").rglob("*.tif"))
    assert len(tifs) == 10
    for tif in tifs:
        with rasterio.open(tmp_path / "api" / tif) as a, rasterio.open(tmp_path / "staged" / tif) as b:
            np.testing.assert_array_equal(a.read(), b.read(), err_msg=str(tif))
