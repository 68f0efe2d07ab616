"""geozarr's network inputs against the attacks of issue 21 (findings 1, 6, 14), on loopback servers.

127.0.0.1 is the private canary nothing may reach; a server on 127.0.0.2 plays the public internet
(the guard is told to treat exactly that address as public).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from canary import RawServer, http_reply, redirect_to

from eopack_eo_common import urlguard
from eopack_eo_common.errors import ToolInputError
from eopack_geozarr.cli import main
from eopack_geozarr.core import open_tree
from eopack_sample_data.eopf import generate
from imageserver import ImageServer

ARGS = ["--groups", "measurements/reflectance/r10m", "--spatial-chunk", "64", "--min-dimension", "8"]


@pytest.fixture
def canary() -> Iterator[RawServer]:
    with RawServer("127.0.0.1", http_reply(b'{"zarr_format": 3, "node_type": "group"}')) as server:
        yield server


@pytest.fixture
def public_standin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(urlguard.ALLOW_PRIVATE_ENV, raising=False)
    real = urlguard.check_address
    monkeypatch.setattr(urlguard, "check_address", lambda h, ip: None if ip == "127.0.0.2" else real(h, ip))


@pytest.fixture
def redirector(canary: RawServer, public_standin: None) -> Iterator[RawServer]:
    """A "public" store whose every path answers 302 to the canary."""
    with RawServer("127.0.0.2", redirect_to(f"{canary.url}/p.zarr/zarr.json")) as server:
        yield server


def test_store_reads_do_not_follow_redirects_into_the_private_network(
    redirector: RawServer, canary: RawServer
) -> None:
    """fsspec/aiohttp followed this 302 to the internal server (8 requests in the audit); now refused."""
    with pytest.raises(ToolInputError, match="refusing to fetch from 127.0.0.1"):
        open_tree(f"{redirector.url}/p.zarr")
    assert redirector.connections >= 1
    assert canary.connections == 0


def test_cli_zarr_url_redirect_to_private_is_exit_2(
    redirector: RawServer, canary: RawServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["--zarr-url", f"{redirector.url}/p.zarr", "--outdir", str(tmp_path / "o"), *ARGS])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[-1].startswith("geozarr: error: refusing to fetch from 127.0.0.1")
    assert canary.connections == 0


@pytest.fixture(scope="module")
def product(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate(tmp_path_factory.mktemp("eopf") / "p", size=24)


@pytest.mark.parametrize("href", ["file://{product}", "ftp://example.org/p.zarr"])
def test_remote_item_cannot_point_at_local_files(
    href: str,
    product: Path,
    tmp_path: Path,
    allow_private: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A remote STAC item naming a local store made the tool read (and publish) local files."""
    served = tmp_path / "served"
    served.mkdir()
    item: dict[str, object] = {
        "type": "Feature",
        "stac_version": "1.1.0",
        "id": "evil",
        "properties": {"datetime": "2024-06-01T00:00:00Z"},
        "geometry": None,
        "links": [],
        "assets": {"zarr": {"href": href.format(product=product), "type": "application/vnd+zarr"}},
    }
    (served / "item.json").write_text(json.dumps(item))
    with ImageServer(served) as url:
        code = main(["--stac-item", f"{url}/item.json", "--outdir", str(tmp_path / "o"), *ARGS])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, err
    assert "a remote item's Zarr asset must be an http(s) or s3 URL" in err[-1]
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


@pytest.mark.parametrize(
    ("flag", "url", "why"),
    [
        ("--zarr-url", "http://[::1/p.zarr", "no closing ']'"),
        ("--zarr-url", "http://example.org:99999/p.zarr", "port 99999"),
        ("--zarr-url", "http://" + "a" * 70 + ".example/p.zarr", "70-character label"),
        ("--stac-item", "http://127.0.0.1:{port}\\@93.184.216.34/item.json", "backslash"),
        ("--zarr-url", "http://127.0.0.1:{port}\\@93.184.216.34/p.zarr", "backslash"),
    ],
)
def test_bad_urls_are_one_line_exit_2(
    flag: str,
    url: str,
    why: str,
    canary: RawServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv(urlguard.ALLOW_PRIVATE_ENV, raising=False)
    code = main([flag, url.format(port=canary.port), "--outdir", str(tmp_path / "o"), *ARGS])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("geozarr: error: url ") and why in err[0]
    assert canary.connections == 0
