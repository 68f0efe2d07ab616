"""Fixtures shared by every test in the repository (tools and runners alike)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).parent
# Helpers, not tests: some run inside isolated venvs with their own dependencies (zoo_wes_driver).
collect_ignore_glob = ["tests/support/*"]
sys.path.insert(0, str(ROOT / "tests" / "support"))

from imageserver import ImageServer, make_images  # noqa: E402


@pytest.fixture(scope="session")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("images")
    make_images(folder)
    return folder


@pytest.fixture(scope="session")
def image_server(images: Path) -> Iterator[str]:
    """Base URL of a loopback server for the generated images (see tests/support/imageserver.py)."""
    with ImageServer(images) as url:
        yield url


@pytest.fixture(scope="session")
def sample_catalog() -> Path:
    """The default sample Sentinel-2 catalog in <repo>/data/sample (generated once, then reused)."""
    from eopack_sample_data.s2 import generate

    return generate(ROOT / "data" / "sample")


@pytest.fixture(scope="session")
def sample_style() -> Callable[..., Path]:
    """``make(style, baseline="05.10")``: the sample scene spelt like a public archive.

    Styles ``eopack`` (the default catalog), ``pc``, ``earth-search``, ``stac-1.1``; a baseline
    before 04.00 stores the same reflectances without the +1000 DN offset. Generated once into
    <repo>/data/sample-<style>[-<baseline>] (what ``eopack sample-data --style`` writes), then reused.
    """
    from eopack_sample_data.s2 import generate

    def make(style: str, baseline: str = "05.10") -> Path:
        name = "sample" if style == "eopack" else f"sample-{style}"
        if baseline != "05.10":
            name += f"-{baseline}"
        return generate(ROOT / "data" / name, style=style, processing_baseline=baseline)

    return make


@pytest.fixture(scope="session")
def s3_archive(sample_style: Callable[..., Path]) -> Iterator[tuple[str, str]]:
    """(endpoint host:port, bucket): moto's S3 server on loopback holding the pc-style sample.

    Objects are ``s3://<bucket>/<item id>/<file>``. Point GDAL at it with ``AWS_S3_ENDPOINT``,
    ``AWS_HTTPS=NO`` and ``AWS_VIRTUAL_HOSTING=FALSE`` (plus any AWS_ACCESS_KEY_ID/SECRET).
    """
    import boto3
    from moto.server import ThreadedMotoServer

    bucket = "eopack-sentinel-archive"
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        s3 = boto3.client(
            "s3",
            endpoint_url=f"http://{host}:{port}",
            region_name="us-east-1",
            aws_access_key_id="eopack",
            aws_secret_access_key="eopack",
        )
        s3.create_bucket(Bucket=bucket)
        folder = sample_style("pc").parent / "sentinel-2-l2a"
        for tif in sorted(folder.glob("*/*.tif")):
            s3.upload_file(str(tif), bucket, tif.relative_to(folder).as_posix())
        yield f"{host}:{port}", bucket
    finally:
        server.stop()


@pytest.fixture
def allow_private(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EOPACK_ALLOW_PRIVATE_URLS", "1")


@pytest.fixture
def repo_root() -> Path:
    return ROOT
