"""Asset access helpers: href modifiers (Planetary Computer signing, plugins) and redaction."""

from __future__ import annotations

import datetime as dt
import logging
import os
from pathlib import Path

import pystac
import pytest
from authserver import AuthServer

from eopack_eo_common import access
from eopack_eo_common.errors import ToolInputError

CANARY = "CANARY-51d0-do-not-print"
BLOB = "https://sentinel2l2a01.blob.core.windows.net/sentinel2-l2/32/T/PS/2024/06/05/B04.tif"


def _item(href: str) -> pystac.Item:
    item = pystac.Item("S2B_TEST", None, None, dt.datetime(2024, 6, 5, tzinfo=dt.UTC), {})
    item.add_asset("B04", pystac.Asset(href, media_type=pystac.MediaType.COG, roles=["data"]))
    return item


def test_planetary_computer_signing_against_a_loopback_token_service(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The real planetary-computer package asks the SAS service (here on loopback) and signs the href."""
    import planetary_computer.sas
    import planetary_computer.settings

    with AuthServer(tmp_path, CANARY) as url:
        monkeypatch.setenv("PC_SDK_SAS_URL", f"{url}/api/sas/v1/token")
        monkeypatch.setattr(planetary_computer.sas, "TOKEN_CACHE", {})
        monkeypatch.setenv("EOPACK_HREF_MODIFIER", "planetary-computer")
        items = [_item(BLOB), _item("/local/B04.tif")]
        planetary_computer.settings.Settings.get.cache_clear()  # settings are read once per process
        try:
            with caplog.at_level(logging.INFO):
                access.modify_hrefs(items)
        finally:
            planetary_computer.settings.Settings.get.cache_clear()
    assert items[0].assets["B04"].href == f"{BLOB}?token={CANARY}"
    assert items[1].assets["B04"].href == "/local/B04.tif"  # not blob storage: left alone
    assert access.redact(f"cannot read {items[0].assets['B04'].href}") == f"cannot read {BLOB}?<redacted>"
    assert CANARY not in caplog.text


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("nope", "must be planetary-computer or package.module:function"),
        ("no_such_module_here:sign", "cannot be imported"),
        ("os.path:no_such_function", "cannot be imported"),
    ],
)
def test_bad_modifier_is_an_input_error(spec: str, words: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EOPACK_HREF_MODIFIER", spec)
    with pytest.raises(ToolInputError, match=words):
        access.modify_hrefs([_item("/x.tif")])


def test_redact_removes_secrets_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EOPACK_ASSET_HEADERS", f"Authorization: Bearer {CANARY}\r\nX-Api-Key: k3y-{CANARY}")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-secret-value")
    text = f"sent Bearer {CANARY} and k3y-{CANARY}; secret aws-secret-value; s3://b/k?X-Amz-Signature=abc"
    assert access.redact(text) == "sent <redacted> and <redacted>; secret <redacted>; s3://b/k?<redacted>"


def test_headers_reach_gdal_through_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EOPACK_ASSET_HEADERS", f"Authorization: Bearer {CANARY}")
    monkeypatch.setenv("GDAL_HTTP_HEADERS", "")  # recorded, so monkeypatch restores it afterwards
    access.configure_gdal()
    assert os.environ["GDAL_HTTP_HEADERS"] == f"Authorization: Bearer {CANARY}"


def test_logging_filter_redacts_records(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_SESSION_TOKEN", CANARY)
    record = logging.LogRecord(
        "x", logging.ERROR, __file__, 1, "failed %s with %s", ("s3://b/k?sig=1", CANARY), None
    )
    assert access.RedactingFilter().filter(record)
    assert record.getMessage() == "failed s3://b/k?<redacted> with <redacted>"


def _item_at(folder: Path, name: str) -> pystac.Item:
    item = pystac.Item(name, None, None, dt.datetime(2024, 6, 1, tzinfo=dt.UTC), {})
    item.add_asset("B04", pystac.Asset(f"{folder}/{name}/B04.tif"))
    item.add_asset("remote", pystac.Asset("https://example.com/x/B04.tif"))
    return item


def test_staged_paths_are_handed_to_the_workers_as_the_host_folder_of_the_same_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    staged = tmp_path / "var" / "lib" / "cwl" / "stg1234" / "sample"  # where the container sees it
    staged.mkdir(parents=True)
    items = [_item_at(staged, "a"), _item_at(staged, "b")]
    monkeypatch.setenv(access.WORKER_PATHS_ENV, '["/work/data/other", "/work/data/sample"]')
    access.map_worker_paths(items, staged)
    assert [i.assets["B04"].href for i in items] == [
        "/work/data/sample/a/B04.tif",
        "/work/data/sample/b/B04.tif",
    ]
    assert items[0].assets["remote"].href == "https://example.com/x/B04.tif"  # URLs stay as they are


def test_without_the_variable_or_outside_a_container_nothing_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    items = [_item_at(tmp_path / "sample", "a")]
    (tmp_path / "sample").mkdir()
    access.map_worker_paths(items, tmp_path / "sample")
    monkeypatch.setenv(access.WORKER_PATHS_ENV, f'["{tmp_path / "sample"}"]')  # the tool sees the host path
    access.map_worker_paths(items, tmp_path / "sample")
    assert items[0].assets["B04"].href == f"{tmp_path}/sample/a/B04.tif"
    monkeypatch.setenv(access.WORKER_PATHS_ENV, "not json")
    with pytest.raises(ToolInputError, match="EOPACK_WORKER_PATHS must be a JSON list of folders"):
        access.map_worker_paths(items, tmp_path / "sample")
