"""EOEPCA staging (issue 19, item 2): our stage-in/stage-out packages, wrapped around the Sentinel-2
packages by eoap-cwlwrap, run end to end: stage-in from the local STAC API over HTTP, the package,
stage-out to the loopback S3 endpoint; the bucket is read back with pystac and compared with a
direct run of the same package (same item ids, same pixels).

moto stands in for the platform's object store (none can run here); everything else is real.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import numpy as np
import pytest
import rasterio
from rasterio.io import MemoryFile

from eopack.clients import s3 as s3_client
from eopack.package import find_package
from eopack.services.s3 import S3Service
from eopack.services.stac import StacStack
from eopack.staging import _load_all, wrap_package
from eopack_eo_common.stac import validate_tree

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.stacapi, pytest.mark.s3]


# --------------------------------------------------------------------------- the S3 endpoint


def test_s3_endpoint_refuses_unsigned_and_wrongly_signed_requests(s3_endpoint: S3Service) -> None:
    from botocore.exceptions import ClientError

    key = s3_endpoint.key()
    assert oct(s3_endpoint.credentials_file.stat().st_mode & 0o777) == "0o600"
    good = s3_client.client(s3_endpoint.url, key, s3_endpoint.region)
    assert s3_endpoint.bucket in {b["Name"] for b in good.list_buckets()["Buckets"]}
    for bad in (s3_client.S3Key(key.access_key_id, "wrong"), s3_client.S3Key("AKIANOTAKEY", "wrong")):
        with pytest.raises(ClientError) as err:
            s3_client.client(s3_endpoint.url, bad, s3_endpoint.region).list_buckets()
        assert err.value.response["Error"]["Code"] in {"SignatureDoesNotMatch", "InvalidAccessKeyId"}
    assert key.secret_access_key not in repr(key)


def test_eopack_s3_status_reports_the_running_endpoint(s3_endpoint: S3Service) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "eopack", "s3", "status", "--json", "--state-dir", str(s3_endpoint.state_dir)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["up"] is True and doc["url"] == s3_endpoint.url and doc["bucket"] == s3_endpoint.bucket
    assert s3_endpoint.key().secret_access_key not in proc.stdout + proc.stderr


# --------------------------------------------------------------------------- the contracts


def test_stage_packages_pass_eoap_cwlwrap_component_contracts() -> None:
    from eoap_cwlwrap.types import (
        validate_directory_stage_in,
        validate_directory_stage_out,
        validate_file_stage_in,
    )

    stage_in = {p.id: p for p in _load_all(find_package("stage-in").path)}
    stage_out = {p.id: p for p in _load_all(find_package("stage-out").path)}
    validate_directory_stage_in(stage_in["stage-in"])
    validate_file_stage_in(stage_in["stage-in-file"])
    validate_directory_stage_out(stage_out["stage-out"])


def test_eopack_validate_passes_for_the_staging_packages() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "eopack", "validate", "stage-in", "stage-out"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    said = proc.stdout + proc.stderr
    assert "ok stage-in 1.0.0" in said and "ok stage-out 1.0.0" in said


# --------------------------------------------------------------------------- reading the bucket back


class _Bucket:
    """pystac reading s3:// through the loopback endpoint with the service's key."""

    def __init__(self, service: S3Service) -> None:
        self.s3 = s3_client.client(service.url, service.key(), service.region)

    def get(self, url: str) -> bytes:
        parts = urlsplit(url)
        assert parts.scheme == "s3", url
        return bytes(self.s3.get_object(Bucket=parts.netloc, Key=parts.path.lstrip("/"))["Body"].read())

    def catalog(self, url: str) -> Any:
        import pystac
        from pystac.stac_io import DefaultStacIO

        bucket = self

        class S3IO(DefaultStacIO):
            def read_text(self, source: Any, *args: Any, **kwargs: Any) -> str:
                href = str(source)
                if href.startswith("s3://"):
                    return bucket.get(href).decode()
                return str(super().read_text(source, *args, **kwargs))

        return pystac.Catalog.from_file(url, stac_io=S3IO())

    def mirror(self, url: str, dest: Path) -> Path:
        """Every object under the catalog's folder, as files (for the offline STAC validator)."""
        parts = urlsplit(url)
        prefix = parts.path.lstrip("/").rsplit("/", 1)[0] + "/"
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=parts.netloc, Prefix=prefix)
        for page in pages:
            for obj in page.get("Contents", []):
                target = dest / obj["Key"][len(prefix) :]
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(self.get(f"s3://{parts.netloc}/{obj['Key']}"))
        return dest / "catalog.json"


def _tifs_from_bucket(bucket: _Bucket, items: list[Any]) -> dict[str, np.ndarray]:
    out = {}
    for item in items:
        for key, asset in item.assets.items():
            if asset.href.endswith(".tif"):
                with MemoryFile(bucket.get(asset.href)) as mem, mem.open() as src:
                    out[f"{item.id}/{key}"] = src.read()
    return out


def _tifs_from_folder(folder: Path) -> dict[str, np.ndarray]:
    import pystac

    out = {}
    for item in pystac.Catalog.from_file(str(folder / "catalog.json")).get_items(recursive=True):
        for key, asset in item.assets.items():
            if asset.href.endswith(".tif"):
                with rasterio.open(asset.get_absolute_href()) as src:
                    out[f"{item.id}/{key}"] = src.read()
    return out


# --------------------------------------------------------------------------- end to end

APPS: dict[str, dict[str, Any]] = {
    "ndvi": {
        "bbox": "11.4,46.5,11.5,46.6",
        "job": {
            "aoi": "11.4,46.5,11.5,46.6",
            "start_date": "2024-06-01",
            "end_date": "2024-07-31",
            "max_cloud_cover": 50,
            "aggregation": "none",
            "resolution": 20,
        },
    },
    "cloudless-mosaic": {
        "bbox": "11.4,46.5,11.65,46.6",
        "job": {
            "start_date": "2024-06-01",
            "end_date": "2024-07-31",
            "aoi": "11.4,46.5,11.65,46.6",
            "bands": ["red", "green", "blue", "nir"],
            "resolution": 20,
        },
    },
    "openeo-graph": {
        "bbox": "11.4,46.5,11.5,46.6",
        "job": {"collection_map": "SENTINEL2_L2A=sentinel-2-l2a"},
        "graph": "ndvi.json",
    },
}


def _search_url(api: str, bbox: str) -> str:
    """A GET search of every sample date; limit 3 makes the stage-in follow several pages."""
    query = {
        "collections": "sentinel-2-l2a",
        "bbox": bbox,
        "datetime": "2024-06-01T00:00:00Z/2024-07-31T23:59:59Z",
        "limit": 3,
    }
    return f"{api}/search?{urlencode(query)}"


def _eopack_run(
    cwl: str, job: dict[str, Any], outdir: Path, runner: str, *extra: str, env: dict[str, str] | None = None
) -> dict[str, Any]:
    job_file = outdir.with_suffix(".yml")
    job_file.write_text(json.dumps(job))
    env = {**os.environ, "EOPACK_ALLOW_PRIVATE_URLS": "1", **(env or {})}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "eopack",
            "run",
            cwl,
            str(job_file),
            "--runner",
            runner,
            "--no-container",
            "--outdir",
            str(outdir),
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    outputs: dict[str, Any] = json.loads((outdir / ".eopack" / "outputs.json").read_text())
    return {"outputs": outputs, "log": proc.stdout + proc.stderr}


def _staged_run(
    app: str,
    runner: str,
    stac_api: StacStack,
    s3_endpoint: S3Service,
    tmp_path: Path,
    *extra: str,
    env: dict[str, str] | None = None,
) -> tuple[str, dict[str, Any]]:
    spec = APPS[app]
    wrapped = wrap_package(find_package(app), tmp_path / f"{app}-staged.cwl")
    job: dict[str, Any] = {
        **spec["job"],
        "input_catalog": {"value": _search_url(stac_api.api_url, spec["bbox"])},
        "s3_bucket": s3_endpoint.bucket,
        "process_name": app,
        "s3_endpoint": s3_endpoint.url,
        "s3_region": s3_endpoint.region,
        "s3_credentials": {
            "class": "File",
            "location": str(s3_endpoint.credentials_file),
            "format": "https://www.iana.org/assignments/media-types/text/plain",
        },
    }
    if "graph" in spec:
        graph = ROOT / "app-packages" / app / "examples" / spec["graph"]
        job["process_graph"] = {"value": graph.as_uri()}
    run = _eopack_run(str(wrapped), job, tmp_path / f"staged-{runner}", runner, *extra, env=env)
    (value,) = run["outputs"].values()
    return value["value"], run


def _direct_run(app: str, stac_api: StacStack, tmp_path: Path) -> Path:
    spec = APPS[app]
    job: dict[str, Any] = {**spec["job"], "stac_api": stac_api.api_url}
    if "graph" in spec:
        job["process_graph"] = {
            "class": "File",
            "location": str(ROOT / "app-packages" / app / "examples" / spec["graph"]),
            "format": "https://www.iana.org/assignments/media-types/application/json",
        }
    run = _eopack_run(app, job, tmp_path / "direct", "cwltool")
    (value,) = run["outputs"].values()
    return Path(value["path"])


@pytest.fixture(scope="module")
def direct_ndvi(stac_api: StacStack, tmp_path_factory: pytest.TempPathFactory) -> dict[str, np.ndarray]:
    """ndvi's tool run in-process on the API (the same job as APPS["ndvi"]), pixels by item/asset."""
    from eopack_ndvi.core import NdviJob, run

    spec = APPS["ndvi"]["job"]
    out = tmp_path_factory.mktemp("direct-ndvi")
    job = NdviJob.from_args(
        aoi=spec["aoi"],
        start_date=spec["start_date"],
        end_date=spec["end_date"],
        max_cloud_cover=spec["max_cloud_cover"],
        stac_api=stac_api.api_url,
    )  # type: ignore[arg-type]
    run(job, out)
    return _tifs_from_folder(out)


def _assert_bucket_equals(url: str, s3_endpoint: S3Service, direct: dict[str, np.ndarray]) -> None:
    bucket = _Bucket(s3_endpoint)
    items = list(bucket.catalog(url).get_items(recursive=True))
    staged = _tifs_from_bucket(bucket, items)
    assert sorted(staged) == sorted(direct) and staged
    for name, pixels in direct.items():
        np.testing.assert_array_equal(staged[name], pixels, err_msg=name)


@pytest.mark.parametrize("app", sorted(APPS))
def test_wrapped_package_runs_on_cwltool_and_equals_a_direct_run(
    app: str, stac_api: StacStack, s3_endpoint: S3Service, tmp_path: Path
) -> None:
    url, run = _staged_run(app, "cwltool", stac_api, s3_endpoint, tmp_path)
    assert url.startswith(f"s3://{s3_endpoint.bucket}/{app}-") and url.endswith("/catalog.json")
    secret = s3_endpoint.key().secret_access_key
    assert secret not in run["log"]
    assert not [
        p
        for p in (tmp_path / "staged-cwltool").rglob("*")
        if p.is_file() and secret in p.read_text(errors="ignore")
    ]

    bucket = _Bucket(s3_endpoint)
    catalog = bucket.catalog(url)
    # The platform's layout: root catalog -> one Collection named after the run folder -> items.
    (collection,) = list(catalog.get_children())
    assert collection.id == url.split("/")[-2]
    items = list(catalog.get_items(recursive=True))
    for item in items:
        for asset in item.assets.values():
            assert asset.href.startswith(
                f"s3://{s3_endpoint.bucket}/{collection.id}/{collection.id}/{item.id}/"
            )

    direct = _direct_run(app, stac_api, tmp_path)
    import pystac

    direct_ids = sorted(
        i.id for i in pystac.Catalog.from_file(str(direct / "catalog.json")).get_items(recursive=True)
    )
    assert sorted(i.id for i in items) == direct_ids and direct_ids

    staged_px, direct_px = _tifs_from_bucket(bucket, items), _tifs_from_folder(direct)
    assert sorted(staged_px) == sorted(direct_px) and staged_px
    for name, pixels in direct_px.items():
        np.testing.assert_array_equal(staged_px[name], pixels, err_msg=name)

    # Core schemas (offline) on every document; the house rule "asset hrefs are relative" is for
    # local results: in the bucket every asset href is an s3:// URL, and each of those must exist.
    report = validate_tree(bucket.mirror(url, tmp_path / "bucket").parent)
    assets = [a for item in items for a in item.assets.values()]
    absolute = [e for e in report.errors if "is not relative" in e and "'s3://" in e]
    assert report.documents == len(items) + 2
    assert [e for e in report.errors if e not in absolute] == [] and len(absolute) == len(assets)
    for asset in assets:
        assert bucket.get(asset.href)


def test_one_search_uri_stages_every_date_for_a_median(stac_api: StacStack, tmp_path: Path) -> None:
    """The multi-item path: one URI (a STAC API search) stages every matching item, over several
    pages, as direct children; the wrapped median above is computed from exactly these."""
    import pystac

    url = _search_url(stac_api.api_url, APPS["cloudless-mosaic"]["bbox"])
    env = {**os.environ, "EOPACK_ALLOW_PRIVATE_URLS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "eopack_stage_in.cli", url, "--outdir", str(tmp_path / "staged")],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    items = list(pystac.Catalog.from_file(str(tmp_path / "staged" / "catalog.json")).get_items())
    from pystac_client import Client

    expected = {
        i.id
        for i in Client.open(stac_api.api_url)
        .search(
            collections=["sentinel-2-l2a"],
            bbox=[11.4, 46.5, 11.65, 46.6],
            datetime="2024-06-01T00:00:00Z/2024-07-31T23:59:59Z",
        )
        .items()
    }
    assert {i.id for i in items} == expected and len(expected) > 3  # more than one page of 3
    assert len({i.datetime for i in items}) >= 6  # many dates, as a median needs
    for item in items:
        for asset in item.assets.values():
            assert Path(asset.get_absolute_href() or "").is_file()

    # The median over these dates, from the staged folder, equals the one from the API.
    spec = APPS["cloudless-mosaic"]["job"]
    staged = _eopack_run(
        "cloudless-mosaic",
        {**spec, "input_catalog": {"class": "Directory", "location": str(tmp_path / "staged")}},
        tmp_path / "from-staged",
        "cwltool",
    )
    (value,) = staged["outputs"].values()
    direct = _direct_run("cloudless-mosaic", stac_api, tmp_path)
    staged_px, direct_px = _tifs_from_folder(Path(value["path"])), _tifs_from_folder(direct)
    assert sorted(staged_px) == sorted(direct_px) and staged_px
    for name, pixels in direct_px.items():
        np.testing.assert_array_equal(staged_px[name], pixels, err_msg=name)


def test_wrapped_ndvi_runs_on_toil(
    stac_api: StacStack, s3_endpoint: S3Service, tmp_path: Path, direct_ndvi: dict[str, np.ndarray]
) -> None:
    url, _run = _staged_run("ndvi", "toil", stac_api, s3_endpoint, tmp_path)
    _assert_bucket_equals(url, s3_endpoint, direct_ndvi)


@pytest.mark.wes
def test_wrapped_ndvi_runs_via_wes(
    stac_api: StacStack,
    s3_endpoint: S3Service,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    direct_ndvi: dict[str, np.ndarray],
) -> None:
    """Through our WES (Toil server + Celery): a stack of its own whose workers may fetch loopback."""
    import shutil
    import tempfile

    from eopack.services import _proc, wes

    if any(
        shutil.which(c) is None and not Path(f"/usr/sbin/{c}").exists() for c in ("redis-server", "nginx")
    ):
        pytest.skip(f"the WES stack needs redis-server and nginx: {wes.SETUP_FIX}")
    monkeypatch.setenv("EOPACK_ALLOW_PRIVATE_URLS", "1")  # the workers pass it to the tools
    state_dir = Path(tempfile.mkdtemp(prefix="eopack-wes-staging-"))
    try:
        service = wes.up(state_dir, port=_proc.free_port(), workers=1)
        auth = {"WES_USER": service.user, "WES_PASSWORD": service.password_file.read_text().strip()}
        url, run = _staged_run(
            "ndvi", "wes", stac_api, s3_endpoint, tmp_path, "--wes-url", service.url, env=auth
        )
    finally:
        wes.down(state_dir)
        shutil.rmtree(state_dir, ignore_errors=True)
    _assert_bucket_equals(url, s3_endpoint, direct_ndvi)
    assert s3_endpoint.key().secret_access_key not in run["log"]
