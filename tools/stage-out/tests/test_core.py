"""stage-out into moto's in-process S3 (no object store can run here): the platform's layout,
rewritten hrefs, the bytes in the bucket, and the failures a user can act on."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pystac
import pytest
from moto import mock_aws

from eopack_stage_in.core import stage_in
from eopack_stage_out.cli import main
from eopack_stage_out.core import S3Settings, stage_out

BUCKET = "eopack-results"
KEY, SECRET = "AKIAEOPACKTEST", "s3cr3t-never-printed"


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name in ("AWS_ENDPOINT_URL_S3", "STAGEOUT_AWS_SERVICEURL", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("STAGEOUT_AWS_ACCESS_KEY_ID", KEY)
    monkeypatch.setenv("STAGEOUT_AWS_SECRET_ACCESS_KEY", SECRET)
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


@pytest.fixture
def staged(sample_catalog: Path, tmp_path: Path) -> Path:
    stage_in([str(sample_catalog)], tmp_path / "results")
    return tmp_path / "results"


def _get(client: Any, url: str) -> bytes:
    bucket, key = url[len("s3://") :].split("/", 1)
    return bytes(client.get_object(Bucket=bucket, Key=key)["Body"].read())


def test_the_platform_layout_with_hrefs_in_the_bucket(s3: Any, staged: Path) -> None:
    settings = S3Settings.resolve(None, None, None)
    out = stage_out(staged, BUCKET, settings, subfolder="ndvi-abc123")
    assert out.catalog_url == f"s3://{BUCKET}/ndvi-abc123/catalog.json"
    catalog = json.loads(_get(s3, out.catalog_url))
    children = [lk["href"] for lk in catalog["links"] if lk["rel"] == "child"]
    assert children == ["./ndvi-abc123/collection.json"] and not [
        lk for lk in catalog["links"] if lk["rel"] == "item"
    ]
    collection = json.loads(_get(s3, f"s3://{BUCKET}/ndvi-abc123/ndvi-abc123/collection.json"))
    item_links = [lk["href"] for lk in collection["links"] if lk["rel"] == "item"]
    local = {i.id: i for i in pystac.Catalog.from_file(str(staged / "catalog.json")).get_items()}
    assert len(item_links) == len(local) == len(out.item_ids)
    for item_id, item in local.items():
        doc = json.loads(_get(s3, f"s3://{BUCKET}/ndvi-abc123/ndvi-abc123/{item_id}/{item_id}.json"))
        assert doc["collection"] == "ndvi-abc123"
        for key, asset in doc["assets"].items():
            assert asset["href"] == f"s3://{BUCKET}/ndvi-abc123/ndvi-abc123/{item_id}/{key}.tif"
            assert _get(s3, asset["href"]) == Path(item.assets[key].get_absolute_href() or "").read_bytes()


def test_cli_prints_the_url_writes_the_cwl_output_and_never_the_secret(
    s3: Any, staged: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [str(staged), "--s3-bucket", BUCKET, "--process-name", "ndvi", "--outdir", str(tmp_path / "o")]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    url = out.strip()
    assert url.startswith(f"s3://{BUCKET}/ndvi-") and len(url.split("/")[3]) == len("ndvi-") + 6
    assert json.loads((tmp_path / "o" / "cwl.output.json").read_text()) == {
        "stac_catalog_uri": {"value": url}
    }
    assert SECRET not in out + err


def test_a_credentials_file_is_used(
    s3: Any, staged: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("STAGEOUT_AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("STAGEOUT_AWS_SECRET_ACCESS_KEY")
    creds = tmp_path / "credentials"
    creds.write_text(f"[default]\naws_access_key_id = {KEY}\naws_secret_access_key = {SECRET}\n")
    assert (
        main([str(staged), "--s3-bucket", BUCKET, "--s3-credentials", str(creds), "--outdir", str(tmp_path)])
        == 0
    )


def test_items_only_below_a_child_catalog_fail_with_exit_1(
    s3: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str], sample_catalog: Path
) -> None:
    """The platform's stage-out would upload an empty catalog; we refuse and say why."""
    assert main([str(sample_catalog.parent), "--s3-bucket", BUCKET, "--outdir", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "12 item(s) are below child catalogs" in err[0]


def test_a_missing_bucket_is_exit_2(
    s3: Any, staged: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([str(staged), "--s3-bucket", "no-such-bucket", "--outdir", str(tmp_path)]) == 2
    assert "bucket 'no-such-bucket' does not exist" in capsys.readouterr().err


def test_a_folder_without_catalog_is_exit_2(
    s3: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([str(tmp_path), "--s3-bucket", BUCKET, "--outdir", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == f"stage-out: error: {tmp_path} has no catalog.json at its root"
