"""fsspec/aiohttp store access through the URL guard (issue 21, finding 6), against loopback servers."""

from __future__ import annotations

from collections.abc import Iterator

import aiohttp
import fsspec
import pytest
from canary import RawServer, http_reply, redirect_to

from eopack_eo_common import urlguard
from eopack_eo_common.errors import ToolInputError
from eopack_eo_common.remote import http_storage_options


@pytest.fixture
def canary() -> Iterator[RawServer]:
    with RawServer("127.0.0.1", http_reply(b'{"zarr_format": 3, "node_type": "group"}')) as server:
        yield server


@pytest.fixture
def public_standin(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the guard treat 127.0.0.2 (only) as public; 127.0.0.1 stays the private canary."""
    monkeypatch.delenv(urlguard.ALLOW_PRIVATE_ENV, raising=False)
    real = urlguard.check_address
    monkeypatch.setattr(urlguard, "check_address", lambda h, ip: None if ip == "127.0.0.2" else real(h, ip))


def _http(url: str) -> fsspec.AbstractFileSystem:
    return fsspec.filesystem("http", skip_instance_cache=True, **http_storage_options(url))


def test_unguarded_fsspec_follows_a_redirect_into_the_private_network(
    canary: RawServer, public_standin: None
) -> None:
    """The audit's finding, reproduced: plain fsspec reads the internal server after one 302."""
    with RawServer("127.0.0.2", redirect_to(f"{canary.url}/zarr.json")) as public:
        fs = fsspec.filesystem("http", skip_instance_cache=True)
        assert b"zarr_format" in fs.cat(f"{public.url}/p.zarr/zarr.json")
    assert canary.connections >= 1


def test_guarded_fsspec_refuses_the_redirect(canary: RawServer, public_standin: None) -> None:
    with RawServer("127.0.0.2", redirect_to(f"{canary.url}/zarr.json")) as public:
        url = f"{public.url}/p.zarr/zarr.json"
        with pytest.raises(ToolInputError, match="refusing to fetch from 127.0.0.1"):
            _http(url).cat(url)
        assert public.connections >= 1
    assert canary.connections == 0


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_guarded_fsspec_refuses_private_hosts(host: str, canary: RawServer, public_standin: None) -> None:
    url = f"http://{host}:{canary.port}/p.zarr/zarr.json"
    with pytest.raises(ToolInputError, match="refusing to fetch from"):
        _http(url).cat(url)
    assert canary.connections == 0


@pytest.mark.parametrize("host", ["[::ffff:7f00:1]", "[::1]"])
def test_ipv6_literal_stores_never_connect(host: str, canary: RawServer, public_standin: None) -> None:
    """fsspec's URL encoding loses IPv6 literal hosts (aiohttp then refuses "http://"): no connection."""
    url = f"http://{host}:{canary.port}/p.zarr/zarr.json"
    with pytest.raises((ToolInputError, aiohttp.ClientError)):
        _http(url).cat(url)
    assert canary.connections == 0


def test_guarded_fsspec_reads_public_and_opted_in_stores(
    canary: RawServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(urlguard.ALLOW_PRIVATE_ENV, "1")
    url = f"{canary.url}/p.zarr/zarr.json"
    assert b"zarr_format" in _http(url).cat(url)


def test_store_url_must_pass_the_parser() -> None:
    with pytest.raises(ToolInputError, match="backslash"):
        http_storage_options("http://127.0.0.1:8080\\@93.184.216.34/p.zarr")
