"""The URL guard against the attacks of issue 21, each replayed against real loopback servers.

127.0.0.1 is the private canary: nothing may reach it. Where an attack needs a "public" first
hop, a server on 127.0.0.2 plays the public internet (this machine has none): the guard is told
to treat exactly that address as public, nothing else changes.
"""

from __future__ import annotations

import contextlib
import http.server
import ipaddress
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from canary import RawServer, http_reply, redirect_to, trickle
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eopack_eo_common import urlguard
from eopack_eo_common.download import fetch, open_url
from eopack_eo_common.errors import ToolError, ToolInputError
from eopack_eo_common.urlguard import check_address, parse_url

PUBLIC = "93.184.216.34"  # a public address literal: the old guard checked this, then connected elsewhere


@pytest.fixture
def no_private(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(urlguard.ALLOW_PRIVATE_ENV, raising=False)


@pytest.fixture
def canary() -> Iterator[RawServer]:
    with RawServer("127.0.0.1", http_reply(b"secret from the internal network")) as server:
        yield server


@pytest.fixture
def public_standin(monkeypatch: pytest.MonkeyPatch, no_private: None) -> None:
    """Make the guard treat 127.0.0.2 (only) as a public address."""
    real = urlguard.check_address

    def check(host: str, ip: str) -> None:
        if ip != "127.0.0.2":
            real(host, ip)

    monkeypatch.setattr(urlguard, "check_address", check)


# ---- finding 1a: one parser; ambiguous forms refused ------------------------------------------------


@pytest.mark.parametrize(
    "template",
    [
        # the forms where urllib.parse saw the public host and urllib3 connected to 127.0.0.1
        "http://127.0.0.1:{port}\\@{public}/",
        "http://127.0.0.1:{port}\\\\@{public}/",
        "http://127.0.0.1\\@{public}:{port}/",
        "http://127.0.0.1:{port}\\\\\\@{public}",
        "http://127.0.0.1:{port}\\@{public}\\",
    ],
)
def test_parser_differential_forms_never_reach_the_canary(
    template: str, canary: RawServer, tmp_path: Path, no_private: None
) -> None:
    url = template.format(port=canary.port, public=PUBLIC)
    with pytest.raises(ToolInputError, match="backslash"):
        fetch(url, tmp_path / "x", timeout=2)
    assert canary.connections == 0
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://user:pw@example.org/", "user names and passwords"),
        ("http://example.org\t/", "percent-encode"),
        ("http://exa mple.org/", "percent-encode"),
        ("http://ex\u00e4mple.org/", "punycode"),
        ("http://127.1/", "legacy numeric IPv4"),
        ("http://2130706433/", "legacy numeric IPv4"),
        ("http://0x7f.0.0.1/", "legacy numeric IPv4"),
        ("http://0177.0.0.1/", "legacy numeric IPv4"),
        ("http://[::1/", "no closing"),
        ("http://[fe80::1%25eth0]/", "zone ids"),
        ("http://::1/", "in brackets"),
        ("http://example.org:99999/", "port 99999 is not a number from 1 to 65535"),
        ("http://example.org:0/", "port 0"),
        ("http://example.org:/", "port ''"),
        ("http://example.org:8o/", "port '8o'"),
        ("http://" + "a" * 70 + ".org/", "70-character label"),
        ("http://a..org/", "empty label"),
        ("http://%31%32%37.0.0.1/", "may hold only"),
        ("http:///a.png", "no host name"),
    ],
)
def test_ambiguous_or_broken_urls_are_refused_with_the_reason(url: str, why: str) -> None:
    with pytest.raises(ToolInputError, match=f"is not accepted: .*{why}"):
        parse_url(url)


def test_parsed_parts_are_what_is_connected_to() -> None:
    got = parse_url("HTTP://Example.ORG:8080/a%20b?q=1#frag")
    assert (got.scheme, got.host, got.port, got.target) == ("http", "example.org", 8080, "/a%20b?q=1")
    assert parse_url("https://[::FFFF:7F00:1]/").host == "::ffff:7f00:1"
    assert parse_url("http://example.org").url == "http://example.org/"


# ---- findings 1b and 1c: DNS rebinding, with and without Connection: close ---------------------------


def test_dns_rebinding_cannot_move_the_connection(
    canary: RawServer, public_standin: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The name answers "public" once, then 127.0.0.1: only the checked answer is ever connected to.

    The canary answers HTTP/1.0 with ``Connection: close``: the case where the old peer check was
    skipped (1b), and where the request was sent before any check (1c).
    """
    real = socket.getaddrinfo
    answers: list[str] = []

    def rebinding(host: object, port: object, *args: object, **kwargs: object) -> object:
        if host != "rebind.test":
            return real(host, port, *args, **kwargs)  # type: ignore[arg-type]
        ip = "127.0.0.2" if not answers else "127.0.0.1"
        answers.append(ip)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port))]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    with RawServer("127.0.0.2", http_reply(b"public content"), port=canary.port) as public:
        got = fetch(f"http://rebind.test:{canary.port}/a.png", tmp_path / "x", timeout=2)
        assert got.path.read_bytes() == b"public content"
        assert answers == ["127.0.0.2"]  # resolved once
        assert canary.connections == 0 and public.connections == 1
        assert f"Host: rebind.test:{canary.port}\r\n".encode() in public.requests[0]


@pytest.mark.parametrize(
    "location",
    [
        "http://127.0.0.1:{port}/",
        "http://localhost:{port}/",
        "http://[::ffff:127.0.0.1]:{port}/",
        "http://127.0.0.1:{port}\\@127.0.0.2/",
        "//127.0.0.1:{port}/",
        "http://2130706433:{port}/",
    ],
)
def test_redirects_to_private_addresses_are_refused(
    location: str, canary: RawServer, public_standin: None, tmp_path: Path
) -> None:
    with RawServer("127.0.0.2", redirect_to(location.format(port=canary.port))) as public:
        with pytest.raises(ToolInputError, match="refusing to fetch|is not accepted"):
            fetch(f"{public.url}/start.png", tmp_path / "x", timeout=2)
        assert public.connections == 1
    assert canary.connections == 0
    assert not (tmp_path / "x").exists()


def test_a_public_redirect_is_followed(canary: RawServer, public_standin: None, tmp_path: Path) -> None:
    with RawServer("127.0.0.2", http_reply(b"final")) as final:
        first = RawServer("127.0.0.2", redirect_to(f"{final.url}/b.png"))
        with first:
            got = fetch(f"{first.url}/a.png", tmp_path / "x", timeout=2)
    assert got.path.read_bytes() == b"final" and got.url == f"{final.url}/b.png"
    assert canary.connections == 0


# ---- finding 9: IPv6 forms that embed a private IPv4 address ----------------------------------------


@pytest.mark.parametrize(
    "ip",
    [
        "::ffff:127.0.0.1",  # IPv4-mapped (already refused before issue 21)
        "::ffff:0:7f00:1",  # IPv4-translated ::ffff:0:0:0/96 (passed before)
        "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1 (passed before)
        "64:ff9b::a9fe:a9fe",  # NAT64 of the cloud metadata address (passed before)
        "2002:7f00:1::1",  # 6to4 of 127.0.0.1 (passed before)
        "2002:a00:1::",  # 6to4 of 10.0.0.1 (passed before)
        "::7f00:1",  # IPv4-compatible ::127.0.0.1 (passed before)
        "::5db8:d822",  # IPv4-compatible, even of a public address: deprecated
        "64:ff9b:1::1",  # local-use NAT64 (passed before)
        "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo
    ],
)
def test_ipv6_forms_embedding_private_ipv4_are_refused(ip: str, no_private: None) -> None:
    with pytest.raises(ToolInputError, match="EOPACK_ALLOW_PRIVATE_URLS=1"):
        check_address("h", ip)


@pytest.mark.parametrize("ip", ["64:ff9b::5db8:d822", "2002:5db8:d822::1", "2606:4700::1111"])
def test_ipv6_forms_of_public_ipv4_pass(ip: str, no_private: None) -> None:
    check_address("h", ip)


def test_ipv4_mapped_url_does_not_reach_the_ipv4_canary(
    canary: RawServer, tmp_path: Path, no_private: None
) -> None:
    # The kernel really routes ::ffff:127.0.0.1 to the IPv4 loopback: the refusal is what stops it.
    with pytest.raises(ToolInputError, match="the IPv4-mapped form of 127.0.0.1"):
        fetch(f"http://[::ffff:127.0.0.1]:{canary.port}/", tmp_path / "x", timeout=2)
    assert canary.connections == 0


def test_opt_in_still_reaches_loopback(canary: RawServer, tmp_path: Path, allow_private: None) -> None:
    got = fetch(f"{canary.url}/a.png", tmp_path / "x", timeout=2)
    assert got.path.read_bytes() == b"secret from the internal network"
    assert canary.connections == 1


# ---- finding 7: a real overall deadline ---------------------------------------------------------------


@pytest.mark.parametrize("head_too", [False, True], ids=["trickled-body", "trickled-headers"])
def test_trickling_server_is_cut_at_the_deadline(head_too: bool, tmp_path: Path, allow_private: None) -> None:
    # One byte every 0.05 s, each well within the 1 s read timeout: only the deadline can stop it
    # (the old check between 64 KiB reads let this run for 1000 x 0.05 = 50 s).
    with RawServer("127.0.0.1", trickle(size=1000, every=0.05, head_too=head_too)) as server:
        started = time.monotonic()
        with pytest.raises(ToolError, match="before the deadline"):
            fetch(f"{server.url}/slow.png", tmp_path / "x", timeout=1, deadline=1)
        took = time.monotonic() - started
    assert took < 1.8, f"the 1 s deadline held for {took:.2f} s"
    assert not (tmp_path / "x").exists()


# ---- finding 14: bad limits are input errors -----------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"timeout": -1}, "timeout must be a positive number of seconds; got -1"),
        ({"timeout": 0}, "timeout must be a positive number of seconds; got 0"),
        ({"max_bytes": -1}, "max_bytes must be a positive number of bytes; got -1"),
        ({"deadline": 0}, "deadline must be a positive number of seconds; got 0"),
    ],
)
def test_bad_limits_are_input_errors(kwargs: dict, message: str, canary: RawServer, tmp_path: Path) -> None:  # type: ignore[type-arg]
    with pytest.raises(ToolInputError, match=message):
        fetch(f"{canary.url}/a.png", tmp_path / "x", **kwargs)
    assert canary.connections == 0


def test_head_requests_go_through_the_guard(canary: RawServer, no_private: None) -> None:
    opened = open_url(f"{canary.url}/zarr.json", method="HEAD", timeout=2)
    with pytest.raises(ToolInputError, match="refusing to fetch from 127.0.0.1"), opened:
        pass
    assert canary.connections == 0


# ---- the property: no generated URL form reaches the canary ---------------------------------------

_LOOPBACK_HOSTS = [
    "127.0.0.1", "127.0.0.2", "127.1", "127.0.1", "2130706433", "0x7f000001", "0x7f.0.0.1",
    "0177.0.0.1", "017700000001", "0", "0.0.0.0", "localhost", "LOCALHOST", "localhost.",
    "127.0.0.1.", "[::1]", "[::]", "[::ffff:127.0.0.1]", "[::ffff:7f00:1]", "[0:0:0:0:0:ffff:7f00:1]",
    "[::127.0.0.1]", "[::ffff:0:127.0.0.1]", "[64:ff9b::127.0.0.1]", "[2002:7f00:1::]", "[::1%25lo]",
    "%31%32%37.0.0.1", "\uff11\uff12\uff17.\uff10.\uff10.\uff11", "127.0.0.1%00", "127.0.0.1\x00",
    "[::ffff:127.0.0.1", "::1", "169.254.169.254", "10.0.0.1",
]  # fmt: skip
_SCHEMES = [
    "http://",
    "HTTP://",
    "hTtP://",
    "http:/",
    "http:",
    "http:\\\\",
    "http:\\/",
    " http://",
    "https://",
]
_USERINFO = ["", "user@", "127.0.0.2@", "user:pw@", "@", "127.0.0.2%40"]
_PORTS = [":{port}", ":0{port}", ":{port}.", ":+{port}", ": {port}", ":{port}:{port}", ""]
_TRICKS = ["", "\\@127.0.0.2", "\\\\@127.0.0.2", "\t@127.0.0.2", "#@127.0.0.2", "?@127.0.0.2", "/\\@127.0.0.2",
           ";@127.0.0.2", " @127.0.0.2", "%5c@127.0.0.2", "\\@127.0.0.2:{port}", "\r\n@127.0.0.2"]  # fmt: skip
_TAILS = ["/", "", "/a.png", "\\a.png", "/..\\..\\", "?x=1", "#f", "/%2e%2e/"]

url_parts = st.tuples(
    st.sampled_from(_SCHEMES),
    st.sampled_from(_USERINFO),
    st.sampled_from(_LOOPBACK_HOSTS),
    st.sampled_from(_PORTS),
    st.sampled_from(_TRICKS),
    st.sampled_from(_TAILS),
)
url_forms = url_parts.map("".join)


@pytest.fixture
def canaries(public_standin: None) -> Iterator[tuple[RawServer, RawServer]]:
    """The canary on 127.0.0.1 and on ::1, same port; a "public" decoy on 127.0.0.2, same port too."""
    v4 = RawServer("127.0.0.1")
    v6 = RawServer("::1", port=v4.port)
    with v4, v6, RawServer("127.0.0.2", http_reply(b"ok"), port=v4.port):
        yield v4, v6


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(parts=url_parts)
def test_no_url_form_reaches_the_canary(
    parts: tuple[str, ...], canaries: tuple[RawServer, RawServer], tmp_path: Path
) -> None:
    v4, v6 = canaries
    url = "".join(parts).replace("{port}", str(v4.port))
    scheme, userinfo, host, port, trick, tail = parts
    plain = (scheme.lower(), userinfo, host, port, trick) == ("http://", "", "127.0.0.2", ":{port}", "")
    try:
        got = fetch(url, tmp_path / "x", timeout=1, deadline=3)
    except ToolError:
        assert not (plain and "\\" not in tail), f"{url!r} to the public stand-in was refused"
    else:  # only the "public" decoy may answer
        assert got.path.read_bytes() == b"ok", url
    assert (v4.connections, v6.connections) == (0, 0), f"{url!r} reached the canary"


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(form=url_forms)
def test_no_redirect_form_reaches_the_canary(
    form: str, canaries: tuple[RawServer, RawServer], tmp_path: Path
) -> None:
    v4, v6 = canaries
    location = form.replace("{port}", str(v4.port))
    first = RawServer("127.0.0.2", redirect_to(location.replace("\r", "").replace("\n", "")))
    with first, contextlib.suppress(ToolError):
        fetch(f"{first.url}/start", tmp_path / "x", timeout=1, deadline=3)
    assert (v4.connections, v6.connections) == (0, 0), f"a redirect to {location!r} reached the canary"


@settings(max_examples=200, deadline=None)
@given(ip=st.ip_addresses())
def test_every_refused_address_is_non_public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> None:
    """The policy only ever refuses, never widens: every address it lets through is global unicast."""
    import os

    os.environ.pop(urlguard.ALLOW_PRIVATE_ENV, None)
    try:
        check_address("h", str(ip))
    except ToolInputError:
        return
    assert ip.is_global and not ip.is_multicast
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        assert ip.ipv4_mapped.is_global


# ---- TLS: the pinned connection keeps the name for SNI, certificate check and Host -------------------


def _tls_server(tmp_path: Path, name: str) -> tuple[http.server.ThreadingHTTPServer, list[str], list[str]]:
    """An HTTPS server on 127.0.0.2 with a self-signed certificate for ``name``; records SNI and Host."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-subj", f"/CN={name}", "-addext", f"subjectAltName=DNS:{name}"),
            *("-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    snis: list[str] = []
    hosts: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            hosts.append(self.headers["Host"])
            body = b"over tls"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    context.sni_callback = lambda sock, server_name, ctx: snis.append(server_name or "")  # type: ignore[assignment,func-returns-value]
    server = http.server.ThreadingHTTPServer(("127.0.0.2", 0), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, snis, hosts


@pytest.mark.parametrize("cert_name", ["tls.test", "other.test"])
def test_https_connects_to_the_checked_address_with_the_url_name(
    cert_name: str, public_standin: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, snis, hosts = _tls_server(tmp_path, cert_name)
    port = server.server_address[1]
    real = socket.getaddrinfo

    def resolver(host: object, *args: object, **kwargs: object) -> object:
        if host == "tls.test":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.2", port))]
        return real(host, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "cert.pem"))  # trust the test certificate only
    try:
        if cert_name == "tls.test":
            got = fetch(f"https://tls.test:{port}/a.png", tmp_path / "x", timeout=5)
            assert got.path.read_bytes() == b"over tls"
            assert snis == ["tls.test"] and hosts == [f"tls.test:{port}"]
        else:  # the certificate is checked against the URL's name, not the address connected to
            with pytest.raises(ToolError, match="certificate|hostname"):
                fetch(f"https://tls.test:{port}/a.png", tmp_path / "x", timeout=5)
            assert hosts == []
    finally:
        server.shutdown()
        server.server_close()
