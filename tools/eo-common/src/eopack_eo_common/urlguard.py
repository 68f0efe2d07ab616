"""The URL guard: one strict URL parser and one address policy, shared by every network client of the tools.

A tool that fetches a URL a user (or a STAC item) names must not become a way into the networks
its host can reach. The guard's rules:

* **One parser.** :func:`parse_url` accepts only unambiguous ``http``/``https`` URLs and returns
  the parts every client then uses as they are; nothing parses the raw text a second time.
  Backslashes, control characters, spaces, non-ASCII text, user info (``user@``), ports outside
  1-65535, unclosed IPv6 brackets, IPv6 zone ids, DNS labels over 63 characters and legacy numeric
  IPv4 forms (``127.1``, ``2130706433``, ``0x7f.0.0.1``, ``0177.0.0.1``) are refused, because two
  parsers read them differently (``http://127.0.0.1:80\\@example.com/`` is ``example.com`` to
  ``urllib.parse`` and ``127.0.0.1`` to urllib3).
* **One address policy.** :func:`check_address` refuses anything but public unicast addresses:
  loopback, private, link-local (cloud metadata at 169.254.169.254), carrier-grade NAT,
  multicast, reserved, and IPv6 forms that carry such an IPv4 address inside them (IPv4-mapped
  ``::ffff:0:0/96``, IPv4-translated ``::ffff:0:0:0/96``, NAT64 ``64:ff9b::/96``, 6to4
  ``2002::/16``) or are deprecated (IPv4-compatible ``::a.b.c.d``, local-use NAT64
  ``64:ff9b:1::/48``).
* **Resolve once.** :func:`resolve` asks DNS once per connection and checks every answer; the
  clients connect to the checked address itself (see ``download`` and ``remote``), so a DNS
  answer that changes between the check and the connection (rebinding) changes nothing.

``EOPACK_ALLOW_PRIVATE_URLS=1`` lifts the address policy (never the parser) for tests and trusted
private deployments.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
from dataclasses import dataclass

from .errors import ToolInputError

__all__ = ["ALLOW_PRIVATE_ENV", "Target", "check_address", "parse_url", "private_allowed", "resolve"]

ALLOW_PRIVATE_ENV = "EOPACK_ALLOW_PRIVATE_URLS"
_DEFAULT_PORTS = {"http": 80, "https": 443}
_URL = re.compile(
    r"^(?P<scheme>https?)://(?P<authority>[^/?#]*)(?P<path>[^?#]*)(?:\?(?P<query>[^#]*))?(?:#.*)?$"
)
_LABEL = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$")
_NUMERIC_LABEL = re.compile(r"^(?:0x[0-9a-f]*|[0-9]+)$")

_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")
_TRANSLATED = ipaddress.IPv6Network("::ffff:0:0:0/96")
_COMPATIBLE = ipaddress.IPv6Network("::/96")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")
_SIX_TO_FOUR = ipaddress.IPv6Network("2002::/16")


def private_allowed() -> bool:
    """Whether ``EOPACK_ALLOW_PRIVATE_URLS`` lifts the address policy."""
    return os.environ.get(ALLOW_PRIVATE_ENV, "") in {"1", "true", "yes"}


@dataclass(frozen=True)
class Target:
    """A URL as the guard parsed it: the only form clients may connect and send requests with.

    ``host`` is lower case, without brackets for IPv6; ``target`` is the request target (path and
    query, never empty); the fragment is dropped.
    """

    scheme: str
    host: str
    port: int
    target: str

    @property
    def netloc(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == _DEFAULT_PORTS[self.scheme] else f"{host}:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.netloc}{self.target}"


def _refuse(url: str, why: str) -> ToolInputError:
    return ToolInputError(f"url {url!r} is not accepted: {why}")


def _check_dns_name(url: str, host: str) -> None:
    name = host[:-1] if host.endswith(".") else host
    labels = name.split(".")
    if len(name) > 253:
        raise _refuse(url, f"the host name is {len(name)} characters long; DNS allows at most 253")
    for label in labels:
        if not label:
            raise _refuse(url, "the host name has an empty label (two dots in a row, or a leading dot)")
        if len(label) > 63:
            raise _refuse(url, f"the host name has a {len(label)}-character label; DNS allows at most 63")
        if not _LABEL.match(label):
            raise _refuse(
                url, f"host label {label!r} may hold only letters, digits, '-' and '_' (use punycode for IDN)"
            )
    if _NUMERIC_LABEL.match(labels[-1]):
        try:
            ipaddress.IPv4Address(name)
        except ValueError:
            raise _refuse(
                url, f"{host!r} is a legacy numeric IPv4 form; write the address as four decimals a.b.c.d"
            ) from None


def parse_url(url: str) -> Target:
    """Parse an http(s) URL strictly; refuse every form two URL parsers could read differently.

    >>> parse_url("HTTPS://Example.ORG/a/b.png?x=1#top")
    Target(scheme='https', host='example.org', port=443, target='/a/b.png?x=1')
    >>> parse_url("http://[::1]:8080").url
    'http://[::1]:8080/'
    >>> parse_url("http://127.0.0.1:80\\\\@example.com/")  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    ToolInputError: ...
    """
    if not isinstance(url, str) or not url:
        raise ToolInputError(f"url must start with http:// or https://; got {url!r}")
    scheme = url.split(":", 1)[0].lower()
    if scheme not in _DEFAULT_PORTS or not url[len(scheme) :].startswith("://"):
        raise ToolInputError(f"url must start with http:// or https://; got {url!r}")
    for char in url:
        if char == "\\":
            raise _refuse(url, "it contains a backslash, which URL parsers disagree about")
        if ord(char) <= 0x20 or ord(char) >= 0x7F:
            raise _refuse(
                url,
                f"it contains {char!r}; percent-encode spaces and non-ASCII characters "
                "and write international host names in punycode",
            )
    match = _URL.match(scheme + url[len(scheme) :])
    if match is None:  # pragma: no cover - the checks above leave only matching text
        raise _refuse(url, "it is not a valid http(s) URL")
    authority = match["authority"]
    if "@" in authority:
        raise _refuse(url, "user names and passwords in URLs are not accepted")
    if authority.startswith("["):
        end = authority.find("]")
        if end < 0:
            raise _refuse(url, "the IPv6 address has no closing ']'")
        host, rest = authority[1:end], authority[end + 1 :]
        if "%" in host:
            raise _refuse(url, "IPv6 zone ids (%...) are not accepted")
        try:
            host = str(ipaddress.IPv6Address(host))
        except ValueError:
            raise _refuse(url, f"[{host}] is not an IPv6 address") from None
        if rest and not rest.startswith(":"):
            raise _refuse(url, f"unexpected {rest!r} after the IPv6 address")
        port_text = rest[1:] if rest else None
    else:
        host, colon, port_text_or_empty = authority.partition(":")
        port_text = port_text_or_empty if colon else None
        if ":" in port_text_or_empty or "[" in authority or "]" in authority:
            raise _refuse(url, "write IPv6 addresses in brackets, like http://[2001:db8::1]:8080/")
        host = host.lower()
        if not host:
            raise _refuse(url, "it has no host name")
        _check_dns_name(url, host)
    port = _DEFAULT_PORTS[scheme]
    if port_text is not None:
        if not port_text.isascii() or not port_text.isdigit() or len(port_text) > 5:
            raise _refuse(url, f"port {port_text!r} is not a number from 1 to 65535")
        port = int(port_text)
        if not 1 <= port <= 65535:
            raise _refuse(url, f"port {port} is not a number from 1 to 65535")
    path = match["path"] or "/"
    query = match["query"]
    return Target(scheme, host, port, path + (f"?{query}" if query is not None else ""))


def _embedded_ipv4(addr: ipaddress.IPv6Address) -> tuple[ipaddress.IPv4Address | None, str]:
    """The IPv4 address an IPv6 transition form carries, and the form's name."""
    low32 = ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
    if addr in _MAPPED:
        return low32, "IPv4-mapped"
    if addr in _TRANSLATED:
        return low32, "IPv4-translated"
    if addr in _NAT64:
        return low32, "NAT64"
    if addr.sixtofour is not None:
        return addr.sixtofour, "6to4"
    return None, ""


def check_address(host: str, ip: str) -> None:
    """Refuse non-public addresses unless the opt-in variable is set.

    >>> check_address("example.org", "93.184.216.34")
    >>> check_address("metadata", "169.254.169.254")  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    ToolInputError: ...
    """
    if private_allowed():
        return
    addr = ipaddress.ip_address(ip.split("%", 1)[0])
    shown = str(addr)
    refused = not addr.is_global or addr.is_multicast
    if isinstance(addr, ipaddress.IPv6Address):
        inner, form = _embedded_ipv4(addr)
        if inner is not None:
            shown = f"{addr}, the {form} form of {inner}"
            refused = not inner.is_global or inner.is_multicast
        elif addr in _COMPATIBLE and int(addr) > 1:
            shown, refused = f"{addr}, a deprecated IPv4-compatible address", True
        elif addr in _NAT64_LOCAL:
            shown, refused = f"{addr}, a local-use NAT64 address", True
    if refused:
        raise ToolInputError(
            f"refusing to fetch from {host} ({shown}): it is a loopback, private, link-local or "
            f"reserved address; set {ALLOW_PRIVATE_ENV}=1 only if you trust that network"
        )


def resolve(host: str, port: int) -> list[tuple[socket.AddressFamily, str]]:
    """Resolve ``host`` once and check every answer; return ``(family, address)`` pairs to connect to.

    All answers must pass, not just one: a name that mixes public and private answers is refused.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as err:
        raise ToolInputError(f"cannot resolve host {host!r}: {err.strerror}; check the URL") from None
    except UnicodeError as err:
        raise ToolInputError(f"cannot resolve host {host!r}: {err}; check the URL") from None
    found: list[tuple[socket.AddressFamily, str]] = []
    for family, _type, _proto, _name, sockaddr in infos:
        ip = str(sockaddr[0])
        check_address(host, ip)
        if (family, ip) not in found:
            found.append((family, ip))
    if not found:
        raise ToolInputError(f"cannot resolve host {host!r}: no addresses; check the URL")
    return found
