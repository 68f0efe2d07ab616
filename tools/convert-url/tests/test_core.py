"""convert-url end to end in-process, against a real loopback HTTP server."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from PIL import Image

from eopack_convert_url.cli import main
from eopack_convert_url.core import convert, parse_size
from eopack_eo_common.errors import ToolInputError
from eopack_eo_common.stac import validate_tree


@pytest.mark.parametrize("text", ["fifty", "50", "0%", "-5%", "10x", "0x10", "1e3%", "100000x2"])
def test_bad_sizes(text: str) -> None:
    with pytest.raises(ToolInputError, match="size"):
        parse_size(text)


def test_png_half_size_is_the_block_average(
    image_server: str, images: Path, tmp_path: Path, allow_private: None
) -> None:
    catalog = convert(f"{image_server}/sample-rgb.png", "resize", "50%", tmp_path, max_bytes=10**6, timeout=5)
    out = np.asarray(Image.open(tmp_path / "sample-rgb" / "sample-rgb.png"))
    np.testing.assert_array_equal(out, np.load(images / "sample-rgb-half.npy"))
    report = validate_tree(catalog.parent)
    assert report.ok, report.errors
    item = json.loads((tmp_path / "sample-rgb" / "sample-rgb.json").read_text())
    # docs/adr/0005: no georeferencing -> the global footprint, flagged, so catalogs can index it
    assert item["bbox"] == [-180.0, -90.0, 180.0, 90.0]
    assert item["geometry"]["coordinates"][0][:4] == [[-180, -90], [180, -90], [180, 90], [-180, 90]]
    assert item["properties"]["eopack:georeferenced"] is False
    assert item["properties"]["processing:software"] == {"eopack-convert-url": "1.0.0"}
    assert item["assets"]["data"]["type"] == "image/png"
    assert item["assets"]["data"]["roles"] == ["data"]


def test_geotiff_keeps_georeferencing(image_server: str, tmp_path: Path, allow_private: None) -> None:
    convert(f"{image_server}/sample-s2.tif", "resize", "32x16", tmp_path, max_bytes=10**6, timeout=5)
    with rasterio.open(tmp_path / "sample-s2" / "sample-s2.tif") as src:
        assert (src.width, src.height, src.count, src.dtypes[0]) == (32, 16, 2, "uint16")
        assert src.crs.to_epsg() == 32632
        assert src.transform == rasterio.Affine(20.0, 0, 680000.0, 0, -20.0, 5160000.0)
        assert src.bounds == (680000.0, 5159680.0, 680640.0, 5160000.0)
    item = json.loads((tmp_path / "sample-s2" / "sample-s2.json").read_text())
    assert item["properties"]["proj:code"] == "EPSG:32632" and item["properties"]["proj:epsg"] == 32632
    assert item["properties"]["proj:shape"] == [16, 32]
    assert item["properties"]["eopack:georeferenced"] is True
    west, south, east, north = item["bbox"]
    assert 11.34 < west < east < 11.36 and 46.56 < south < north < 46.57
    assert validate_tree(tmp_path).ok


def test_cli_bad_input_exit_code_and_one_line(
    image_server: str, tmp_path: Path, allow_private: None, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        ["--fn", "resize", "--url", f"{image_server}/page.html", "--size", "50%", "--outdir", str(tmp_path)]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[-1] == (
        "convert-url: error: the downloaded content is not an image (server said "
        "Content-Type: text/html); check that the url points at an image file"
    )
    assert list(tmp_path.iterdir()) == []


def test_cli_unknown_function_lists_accepted(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--fn", "rotate", "--url", "http://x/a.png", "--size", "50%", "--outdir", str(tmp_path)])
    assert code == 2
    assert "fn 'rotate' is not supported; use one of: resize" in capsys.readouterr().err


def test_dask_performance_report_on_request(image_server: str, tmp_path: Path, allow_private: None) -> None:
    convert(
        f"{image_server}/sample-rgb.png",
        "resize",
        "50%",
        tmp_path,
        max_bytes=10**6,
        timeout=5,
        dask_report=True,
    )
    report = (tmp_path / "dask-report.html").read_text()
    assert "<html" in report.lower() and "Dask Performance Report" in report
