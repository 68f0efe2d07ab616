"""Safe downloads against a real loopback HTTP server."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from eopack_eo_common import download, urlguard
from eopack_eo_common.download import check_address, fetch
from eopack_eo_common.errors import ToolError, ToolInputError


@pytest.mark.parametrize(
    "ip",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "::1",
        "fe80::1",
        "fd00::1",
        "::ffff:127.0.0.1",
        "224.0.0.1",
    ],
)
def test_non_public_addresses_refused(ip: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(download.ALLOW_PRIVATE_ENV, raising=False)
    with pytest.raises(ToolInputError, match="EOPACK_ALLOW_PRIVATE_URLS=1"):
        check_address("h", ip)


@pytest.mark.parametrize("ip", ["93.184.216.34", "2606:4700::1111", "8.8.8.8"])
def test_public_addresses_allowed(ip: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(download.ALLOW_PRIVATE_ENV, raising=False)
    check_address("h", ip)


def test_loopback_url_refused_without_opt_in(
    image_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(download.ALLOW_PRIVATE_ENV, raising=False)
    with pytest.raises(ToolInputError, match=r"refusing to fetch from 127\.0\.0\.1"):
        fetch(f"{image_server}/sample-rgb.png", tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_localhost_name_checked_after_resolution(
    image_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(download.ALLOW_PRIVATE_ENV, raising=False)
    url = image_server.replace("127.0.0.1", "localhost")
    with pytest.raises(ToolInputError, match="refusing to fetch from localhost"):
        fetch(f"{url}/sample-rgb.png", tmp_path / "x")


def test_every_redirect_hop_is_checked(
    image_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Pretend 127.0.0.1 is public and 'localhost' is not, so the second hop must be refused.
    real = urlguard.check_address

    def only_ip_literal(host: str, ip: str) -> None:
        if host == "localhost":
            monkeypatch.delenv(download.ALLOW_PRIVATE_ENV, raising=False)
            real(host, ip)

    monkeypatch.setattr(urlguard, "check_address", only_ip_literal)
    target = image_server.replace("127.0.0.1", "localhost") + "/sample-rgb.png"
    with pytest.raises(ToolInputError, match="refusing to fetch from localhost"):
        fetch(f"{image_server}/redirect?to={target}", tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_download_and_redirect(image_server: str, images: Path, tmp_path: Path, allow_private: None) -> None:
    got = fetch(f"{image_server}/redirect?to=/sample-rgb.png", tmp_path / "x")
    assert got.path.read_bytes() == (images / "sample-rgb.png").read_bytes()
    assert got.url.endswith("/sample-rgb.png") and got.content_type == "image/png"


@pytest.mark.parametrize("scheme_url", ["ftp://example.org/a.png", "file:///etc/passwd", "gopher://x/"])
def test_only_http_and_https(scheme_url: str, tmp_path: Path) -> None:
    with pytest.raises(ToolInputError, match="url must start with http:// or https://"):
        fetch(scheme_url, tmp_path / "x")


def test_http_error_status(image_server: str, tmp_path: Path, allow_private: None) -> None:
    with pytest.raises(ToolError, match="HTTP 404"):
        fetch(f"{image_server}/missing", tmp_path / "x")


def test_declared_size_over_limit(image_server: str, tmp_path: Path, allow_private: None) -> None:
    with pytest.raises(ToolInputError, match="over the limit of 1000 bytes"):
        fetch(f"{image_server}/huge.png", tmp_path / "x", max_bytes=1000)


def test_streamed_size_over_limit_leaves_nothing(
    image_server: str, tmp_path: Path, allow_private: None
) -> None:
    with pytest.raises(ToolInputError, match="sent more than the limit of 100000 bytes"):
        fetch(f"{image_server}/endless.png", tmp_path / "x", max_bytes=100_000)
    assert not (tmp_path / "x").exists()


def test_read_timeout_is_bounded(image_server: str, tmp_path: Path, allow_private: None) -> None:
    started = time.monotonic()
    with pytest.raises(ToolError, match="cannot download"):
        fetch(f"{image_server}/slow.png?s=5", tmp_path / "x", timeout=0.5)
    assert time.monotonic() - started < 4


def test_unreachable_host(tmp_path: Path, allow_private: None) -> None:
    with pytest.raises(ToolError, match="cannot download http://127.0.0.1:1/"):
        fetch("http://127.0.0.1:1/a.png", tmp_path / "x", timeout=2)


def test_unresolvable_host(tmp_path: Path) -> None:
    with pytest.raises(ToolInputError, match="cannot resolve host 'no-such-host.invalid'"):
        fetch("http://no-such-host.invalid/a.png", tmp_path / "x")
