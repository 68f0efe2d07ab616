"""Download a URL the way a hosted processing service must: bounded, and never into private networks.

Only http and https. By default every address a URL resolves to, on every redirect hop, must be a
public unicast address: loopback, private, link-local (cloud metadata at 169.254.169.254),
carrier-grade NAT, multicast and reserved ranges are refused, and the socket's actual peer is
checked again after connecting, so DNS rebinding between the check and the connection is caught.
``EOPACK_ALLOW_PRIVATE_URLS=1`` lifts that for tests and trusted private deployments.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import urllib3

from .errors import ToolError, ToolInputError

__all__ = ["ALLOW_PRIVATE_ENV", "Downloaded", "check_address", "fetch"]

log = logging.getLogger(__name__)

ALLOW_PRIVATE_ENV = "EOPACK_ALLOW_PRIVATE_URLS"
_MAX_REDIRECTS = 5
_CHUNK = 1 << 16


@dataclass(frozen=True)
class Downloaded:
    """A finished download: where it was written, what the server said, how big it is."""

    path: Path
    url: str
    content_type: str | None
    size: int
    last_modified: str | None


def _private_allowed() -> bool:
    return os.environ.get(ALLOW_PRIVATE_ENV, "") in {"1", "true", "yes"}


def check_address(host: str, ip: str) -> None:
    """Refuse non-public addresses unless the opt-in variable is set.

    >>> check_address("example.org", "93.184.216.34")
    >>> check_address("metadata", "169.254.169.254")  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    ToolInputError: ...
    """
    if _private_allowed():
        return
    addr = ipaddress.ip_address(ip.split("%", 1)[0])
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped:
        addr = addr.ipv4_mapped
    if not addr.is_global or addr.is_multicast:
        raise ToolInputError(
            f"refusing to fetch from {host} ({addr}): it is a loopback, private, link-local or "
            f"reserved address; set {ALLOW_PRIVATE_ENV}=1 only if you trust that network"
        )


def _resolve_and_check(host: str, port: int) -> None:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as err:
        raise ToolInputError(f"cannot resolve host {host!r}: {err.strerror}; check the URL") from None
    for info in infos:
        check_address(host, str(info[4][0]))


def _check_url(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"}:
        raise ToolInputError(f"url must start with http:// or https://; got {url!r}")
    if not parts.hostname:
        raise ToolInputError(f"url has no host name: {url!r}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.hostname, port


def fetch(
    url: str,
    dest: Path,
    *,
    max_bytes: int = 100 * 1024**2,
    timeout: float = 30.0,
    deadline: float = 600.0,
) -> Downloaded:
    """Stream ``url`` into ``dest`` within ``max_bytes``.

    ``timeout`` bounds connecting and each read; ``deadline`` bounds the whole download, so a
    server trickling bytes cannot hold a job forever.

    The file is only left at ``dest`` when the whole body arrived; otherwise it is removed.
    """
    http = urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=min(timeout, 10.0), read=timeout),
        retries=False,
        headers={"User-Agent": "eopack (+https://github.com/eopack/eopack)"},
    )
    current = url
    started = time.monotonic()
    for _hop in range(_MAX_REDIRECTS + 1):
        host, port = _check_url(current)
        _resolve_and_check(host, port)
        try:
            resp = http.request("GET", current, preload_content=False, redirect=False)
        except urllib3.exceptions.HTTPError as err:
            reason = getattr(err, "reason", None) or err
            raise ToolError(f"cannot download {current}: {reason}") from None
        try:
            sock = getattr(resp.connection, "sock", None)
            peer = sock.getpeername()[0] if sock is not None else None
            if peer:
                check_address(host, peer)
            if resp.status in (301, 302, 303, 307, 308):
                location = resp.headers.get("Location")
                if not location:
                    raise ToolError(f"{current} answered {resp.status} without a Location header")
                current = urljoin(current, location)
                log.info("redirected to %s", current)
                continue
            if resp.status != 200:
                raise ToolError(f"cannot download {current}: HTTP {resp.status} {resp.reason}")
            declared = resp.headers.get("Content-Length")
            if declared and declared.isdigit() and int(declared) > max_bytes:
                raise ToolInputError(
                    f"{current} is {int(declared)} bytes, over the limit of {max_bytes} bytes; "
                    "raise max_bytes if this is expected"
                )
            size = _stream_to(resp, dest, max_bytes, current, started + deadline)
        finally:
            resp.release_conn()
        log.info("downloaded %s (%d bytes) in %.2f s", current, size, time.monotonic() - started)
        return Downloaded(
            dest, current, resp.headers.get("Content-Type"), size, resp.headers.get("Last-Modified")
        )
    raise ToolError(f"too many redirects (more than {_MAX_REDIRECTS}) starting at {url}")


def _stream_to(resp: urllib3.BaseHTTPResponse, dest: Path, max_bytes: int, url: str, until: float) -> int:
    size = 0
    try:
        with dest.open("wb") as out:
            for chunk in resp.stream(_CHUNK):
                if time.monotonic() > until:
                    raise ToolError(f"download of {url} did not finish before the deadline; try again later")
                size += len(chunk)
                if size > max_bytes:
                    raise ToolInputError(
                        f"{url} sent more than the limit of {max_bytes} bytes; "
                        "raise max_bytes if this is expected"
                    )
                out.write(chunk)
    except (urllib3.exceptions.HTTPError, OSError) as err:
        dest.unlink(missing_ok=True)
        raise ToolError(f"download of {url} failed: {err}") from None
    except BaseException:
        dest.unlink(missing_ok=True)
        raise
    return size
