"""Download a URL the way a hosted processing service must: bounded, and never into private networks.

Every hop (the URL and each redirect) goes through the URL guard (:mod:`.urlguard`): parsed once,
strictly; resolved once, every answer checked; and the connection is made to the checked address
itself, with the Host header and TLS server name (SNI, certificate check) of the URL. The socket's
peer is checked again right after connecting, before a byte is sent. ``deadline`` is a real bound
on the whole download: connecting waits at most the time left, and a watchdog shuts the sockets
down when it is over, so a server trickling bytes cannot hold a job past it.

Only http and https; environment proxies are not used. ``EOPACK_ALLOW_PRIVATE_URLS=1`` lifts the
address policy for tests and trusted private deployments.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

from . import urlguard
from .errors import ToolError, ToolInputError
from .urlguard import ALLOW_PRIVATE_ENV, check_address

__all__ = ["ALLOW_PRIVATE_ENV", "Downloaded", "Opened", "check_address", "fetch", "open_url"]

log = logging.getLogger(__name__)

_MAX_REDIRECTS = 5
_CHUNK = 1 << 16
_USER_AGENT = "eopack (+https://github.com/eopack/eopack)"


@dataclass(frozen=True)
class Downloaded:
    """A finished download: where it was written, what the server said, how big it is."""

    path: Path
    url: str
    content_type: str | None
    size: int
    last_modified: str | None


class _Deadline:
    """The overall time limit: the time left for each connect, and a watchdog that ends reads at the limit."""

    def __init__(self, seconds: float) -> None:
        self.until = time.monotonic() + seconds
        self.expired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def remaining(self) -> float:
        return self.until - time.monotonic()

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)
            if not self.expired:
                return
        self._shutdown(sock)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            sockets = list(self._sockets)
        for sock in sockets:
            self._shutdown(sock)

    @staticmethod
    def _shutdown(sock: socket.socket) -> None:
        # socket.socket.shutdown, not SSLSocket.shutdown: the reading thread keeps its TLS state,
        # its blocked recv returns at once.
        with suppress(OSError):
            socket.socket.shutdown(sock, socket.SHUT_RDWR)

    def cancel(self) -> None:
        self._timer.cancel()


@dataclass(frozen=True)
class _Pin:
    """What a connection may connect to: the guard's checked addresses for the URL's host, in order."""

    addresses: list[tuple[socket.AddressFamily, str]]
    host: str
    deadline: _Deadline


class _PinnedMixin:
    """Connect to the checked address, verify the peer, and only then let urllib3 speak."""

    host: str
    port: int
    timeout: Any
    socket_options: Any
    sock: socket.socket | None

    def __init__(self, *args: Any, eopack_pin: _Pin, **kwargs: Any) -> None:
        self._pin = eopack_pin
        super().__init__(*args, **kwargs)

    def _new_conn(self) -> socket.socket:
        pin = self._pin
        failures: list[str] = []
        for family, ip in pin.addresses:  # the checked answers only, in the resolver's order
            left = pin.deadline.remaining()
            if left <= 0:
                raise ConnectTimeoutError(self, f"no time left to connect to {pin.host}")
            wait = left if self.timeout is None else min(float(self.timeout), left)
            sock = socket.socket(family, socket.SOCK_STREAM)
            try:
                for option in self.socket_options or ():
                    sock.setsockopt(*option)
                sock.settimeout(wait)
                sock.connect((ip, self.port))
                urlguard.check_address(pin.host, str(sock.getpeername()[0]))  # before a byte is sent
            except OSError as err:  # TimeoutError included: try the next checked address
                sock.close()
                failures.append(f"{ip}: {'timed out' if isinstance(err, TimeoutError) else err}")
                continue
            except BaseException:
                sock.close()
                raise
            pin.deadline.watch(sock)
            return sock
        raise NewConnectionError(
            self,  # type: ignore[arg-type]
            f"cannot connect to {pin.host} ({'; '.join(failures)})",
        )

    def connect(self) -> None:
        super().connect()  # type: ignore[misc]
        if self.sock is not None:  # the TLS socket wraps (and detaches) the one _new_conn made
            self._pin.deadline.watch(self.sock)


class _PinnedHTTPConnection(_PinnedMixin, HTTPConnection):
    pass


class _PinnedHTTPSConnection(_PinnedMixin, HTTPSConnection):
    pass


class _PinnedHTTPPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _PinnedHTTPConnection


class _PinnedHTTPSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _PinnedHTTPSConnection


def _validate_limits(timeout: float, deadline: float, max_bytes: int | None = None) -> None:
    if not timeout > 0:
        raise ToolInputError(f"timeout must be a positive number of seconds; got {timeout}")
    if not deadline > 0:
        raise ToolInputError(f"deadline must be a positive number of seconds; got {deadline}")
    if max_bytes is not None and max_bytes < 1:
        raise ToolInputError(f"max_bytes must be a positive number of bytes; got {max_bytes}")


@dataclass(frozen=True)
class Opened:
    """A response whose headers arrived, after redirects: the final URL and urllib3's response."""

    url: str
    response: urllib3.BaseHTTPResponse
    deadline: _Deadline


def _request(
    target: urlguard.Target, method: str, timeout: float, deadline: _Deadline
) -> tuple[urllib3.HTTPConnectionPool, urllib3.BaseHTTPResponse]:
    pin = _Pin(urlguard.resolve(target.host, target.port), target.host, deadline)
    pool_cls = _PinnedHTTPSPool if target.scheme == "https" else _PinnedHTTPPool
    pool = pool_cls(
        target.host,
        target.port,
        timeout=urllib3.Timeout(connect=min(timeout, 10.0), read=timeout),
        retries=False,
        maxsize=1,
        headers={"User-Agent": _USER_AGENT},
        eopack_pin=pin,
    )
    try:
        resp = pool.urlopen(
            method, target.target, redirect=False, preload_content=False, assert_same_host=False
        )
    except urllib3.exceptions.HTTPError as err:
        pool.close()
        if deadline.expired:
            raise ToolError(f"{target.url} did not answer before the deadline; try again later") from None
        reason = getattr(err, "reason", None) or err
        raise ToolError(f"cannot download {target.url}: {reason}") from None
    except BaseException:
        pool.close()
        raise
    return pool, resp


@contextmanager
def open_url(
    url: str,
    *,
    method: str = "GET",
    timeout: float = 30.0,
    deadline: float = 600.0,
    max_redirects: int = _MAX_REDIRECTS,
) -> Iterator[Opened]:
    """Send ``method`` to ``url`` through the guard, following redirects (each hop checked again).

    Yields once the final response's headers arrived; any status is returned, not raised.
    """
    _validate_limits(timeout, deadline)
    current = urlguard.parse_url(url)
    limit = _Deadline(deadline)
    try:
        for _hop in range(max_redirects + 1):
            pool, resp = _request(current, method, timeout, limit)
            try:
                if resp.status in (301, 302, 303, 307, 308):
                    location = resp.headers.get("Location")
                    if not location:
                        raise ToolError(f"{current.url} answered {resp.status} without a Location header")
                    try:
                        joined = urljoin(current.url, location)
                    except ValueError:
                        raise ToolError(
                            f"{current.url} redirected to {location!r}, which is not a valid URL"
                        ) from None
                    current = urlguard.parse_url(joined)
                    log.info("redirected to %s", current.url)
                    continue
                yield Opened(current.url, resp, limit)
                return
            finally:
                resp.release_conn()
                pool.close()
        raise ToolError(f"too many redirects (more than {max_redirects}) starting at {url}")
    finally:
        limit.cancel()


def fetch(
    url: str,
    dest: Path,
    *,
    max_bytes: int = 100 * 1024**2,
    timeout: float = 30.0,
    deadline: float = 600.0,
) -> Downloaded:
    """Stream ``url`` into ``dest`` within ``max_bytes``.

    ``timeout`` bounds connecting and each wait for data; ``deadline`` bounds the whole download
    (headers and body), so a server trickling bytes cannot hold a job longer.

    The file is only left at ``dest`` when the whole body arrived; otherwise it is removed.
    """
    _validate_limits(timeout, deadline, max_bytes)
    started = time.monotonic()
    with open_url(url, timeout=timeout, deadline=deadline) as opened:
        resp, current = opened.response, opened.url
        if resp.status != 200:
            raise ToolError(f"cannot download {current}: HTTP {resp.status} {resp.reason}")
        declared = resp.headers.get("Content-Length")
        if declared and declared.isdigit() and int(declared) > max_bytes:
            raise ToolInputError(
                f"{current} is {int(declared)} bytes, over the limit of {max_bytes} bytes; "
                "raise max_bytes if this is expected"
            )
        size = _stream_to(resp, dest, max_bytes, current, opened.deadline)
    log.info("downloaded %s (%d bytes) in %.2f s", current, size, time.monotonic() - started)
    return Downloaded(
        dest, current, resp.headers.get("Content-Type"), size, resp.headers.get("Last-Modified")
    )


def _stream_to(
    resp: urllib3.BaseHTTPResponse, dest: Path, max_bytes: int, url: str, deadline: _Deadline
) -> int:
    late = ToolError(f"download of {url} did not finish before the deadline; try again later")
    size = 0
    try:
        with dest.open("wb") as out:
            for chunk in resp.stream(_CHUNK):
                if deadline.expired:
                    raise late
                size += len(chunk)
                if size > max_bytes:
                    raise ToolInputError(
                        f"{url} sent more than the limit of {max_bytes} bytes; "
                        "raise max_bytes if this is expected"
                    )
                out.write(chunk)
        if deadline.expired:  # the watchdog's shutdown can look like a clean end of the body
            raise late
    except (urllib3.exceptions.HTTPError, OSError) as err:
        dest.unlink(missing_ok=True)
        if deadline.expired:
            raise late from None
        raise ToolError(f"download of {url} failed: {err}") from None
    except BaseException:
        dest.unlink(missing_ok=True)
        raise
    return size
