"""Asset access as archives need it (issue 20): s3:// on a loopback S3, bearer headers, signed hrefs.

Each credential is a canary: the run must succeed with it, and it must appear in no output file,
no log line and no error message.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from authserver import AuthServer
from stac_edit import edited_copy

from eopack_ndvi.cli import main

SEED_AOI = "11.4,46.5,11.5,46.6"
CANARY = "CANARY-7f3e9a1c-do-not-print"


def _args(catalog: Path, outdir: Path) -> list[str]:
    return [
        "--input-catalog", str(catalog.parent), "--aoi", SEED_AOI,
        "--start-date", "2024-06-01", "--end-date", "2024-06-30", "--outdir", str(outdir), "-v",
    ]  # fmt: skip


def _layers(out: Path) -> dict[str, np.ndarray]:
    layers = {}
    for path in sorted(out.glob("*/ndvi.tif")):
        with rasterio.open(path) as src:
            layers[path.parent.name] = src.read(1)
    return layers


def _assert_no_canary(out: Path, *texts: str) -> None:
    for text in texts:
        assert CANARY not in text
    for path in out.rglob("*"):
        if path.is_file():
            assert CANARY.encode() not in path.read_bytes(), path


def _rehref(prefix: str) -> Callable[[dict[str, Any]], None]:
    """Asset hrefs -> ``<prefix>/<item id>/<file>`` (the layout of the staged sample catalog)."""

    def edit(doc: dict[str, Any]) -> None:
        for asset in doc["assets"].values():
            asset["href"] = f"{prefix}/{doc['id']}/{asset['href'].removeprefix('./')}"

    return edit


@pytest.fixture(scope="module")
def pc_catalog(sample_style: Callable[..., Path]) -> Path:
    return sample_style("pc")


@pytest.fixture(scope="module")
def reference(pc_catalog: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, np.ndarray]:
    out = tmp_path_factory.mktemp("ndvi-local")
    assert main(_args(pc_catalog, out)) == 0
    return _layers(out)


@pytest.fixture
def clean_gdal_env() -> Iterator[None]:
    """configure_gdal() writes GDAL_HTTP_HEADERS into the environment; take it out again."""
    before = os.environ.get("GDAL_HTTP_HEADERS")
    yield
    if before is None:
        os.environ.pop("GDAL_HTTP_HEADERS", None)
    else:
        os.environ["GDAL_HTTP_HEADERS"] = before


def test_s3_hrefs_on_a_loopback_s3(
    s3_archive: tuple[str, str],
    pc_catalog: Path,
    reference: dict[str, np.ndarray],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    endpoint, bucket = s3_archive
    catalog = edited_copy(pc_catalog, tmp_path / "s3-catalog", _rehref(f"s3://{bucket}"))
    for key, value in {
        "AWS_ACCESS_KEY_ID": "eopack-test",
        "AWS_SECRET_ACCESS_KEY": CANARY,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_S3_ENDPOINT": endpoint,
        "AWS_HTTPS": "NO",
        "AWS_VIRTUAL_HOSTING": "FALSE",
    }.items():
        monkeypatch.setenv(key, value)
    assert main(_args(catalog, tmp_path / "out")) == 0
    ours = _layers(tmp_path / "out")
    assert list(ours) == list(reference) and ours
    for name, pixels in ours.items():
        np.testing.assert_array_equal(pixels, reference[name], err_msg=name)
    captured = capsys.readouterr()
    _assert_no_canary(tmp_path / "out", captured.out, captured.err, caplog.text)


def test_bearer_header_from_the_environment(
    pc_catalog: Path,
    reference: dict[str, np.ndarray],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    clean_gdal_env: None,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    with AuthServer(pc_catalog.parent / "sentinel-2-l2a", CANARY) as url:
        catalog = edited_copy(pc_catalog, tmp_path / "http-catalog", _rehref(url))
        monkeypatch.setenv("EOPACK_ASSET_HEADERS", f"Authorization: Bearer {CANARY}")
        assert main(_args(catalog, tmp_path / "out")) == 0
    ours = _layers(tmp_path / "out")
    assert list(ours) == list(reference)
    for name, pixels in ours.items():
        np.testing.assert_array_equal(pixels, reference[name], err_msg=name)
    captured = capsys.readouterr()
    _assert_no_canary(tmp_path / "out", captured.out, captured.err, caplog.text)


def test_signed_hrefs_through_an_href_modifier(
    pc_catalog: Path,
    reference: dict[str, np.ndarray],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = AuthServer(pc_catalog.parent / "sentinel-2-l2a", CANARY)
    with server as url:
        catalog = edited_copy(pc_catalog, tmp_path / "http-catalog", _rehref(url))
        monkeypatch.setenv("EOPACK_HREF_MODIFIER", "hrefsign:add_token")
        monkeypatch.setenv("EOPACK_TEST_TOKEN", CANARY)
        assert main(_args(catalog, tmp_path / "out")) == 0
    codes = [code for _, code in server.requests]
    assert 206 in codes and 401 not in codes  # Range reads, all authorised
    ours = _layers(tmp_path / "out")
    assert list(ours) == list(reference)
    for name, pixels in ours.items():
        np.testing.assert_array_equal(pixels, reference[name], err_msg=name)
    captured = capsys.readouterr()
    _assert_no_canary(tmp_path / "out", captured.out, captured.err, caplog.text)


def test_a_refused_signed_href_fails_without_showing_the_signature(
    pc_catalog: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = AuthServer(pc_catalog.parent / "sentinel-2-l2a", "the-right-token")
    with server as url:
        catalog = edited_copy(pc_catalog, tmp_path / "http-catalog", _rehref(url))
        monkeypatch.setenv("EOPACK_HREF_MODIFIER", "hrefsign:add_token")
        monkeypatch.setenv("EOPACK_TEST_TOKEN", CANARY)  # wrong: the server answers 401
        code = main(_args(catalog, tmp_path / "out"))
    assert code == 1
    assert 401 in {c for _, c in server.requests}
    captured = capsys.readouterr()
    errors = [line for line in captured.err.splitlines() if line.startswith("ndvi: error:")]
    assert errors == [
        "ndvi: error: cannot read the input assets (RasterioIOError('HTTP response code: 401')); check the "
        "asset hrefs and their access: EOPACK_ASSET_HEADERS, EOPACK_HREF_MODIFIER or the AWS_* variables for s3://"
    ]
    _assert_no_canary(tmp_path, captured.out, captured.err, caplog.text)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
