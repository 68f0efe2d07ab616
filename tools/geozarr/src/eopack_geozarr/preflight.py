"""Step 1: preflight of URL inputs (reachable, not private unless allowed) before any work."""

from __future__ import annotations

import logging
import socket
import time
from urllib.parse import urlsplit

from eopack_eo_common.download import check_address
from eopack_eo_common.errors import ToolError, ToolInputError

from .job import PREFLIGHT_TIMEOUT

log = logging.getLogger(__name__)


def _check_host(url: str) -> None:
    """Refuse private addresses (eo-common's download rules) before anything, xarray included, connects."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as err:
        raise ToolInputError(
            f"cannot resolve host {host!r} of {url}: {err.strerror}; check the URL"
        ) from None
    for info in infos:
        check_address(host, str(info[4][0]))


def preflight(url: str, timeout: float = PREFLIGHT_TIMEOUT) -> list[tuple[str, int | None, float]]:
    """HEAD (then GET) the store's metadata documents; log status and timing of each.

    Best effort: an HTTP error status is only logged (some servers refuse HEAD, or serve only
    chunks). A host that cannot be reached at all is fatal, because opening would fail too, after
    much longer retries.

    Returns:
        ``(url, status or None, seconds)`` per request made.
    """
    import urllib3

    if urlsplit(url).scheme not in ("http", "https"):
        log.info("preflight: skipped for %s (not http)", url)
        return []
    _check_host(url)
    http = urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=min(timeout, 5.0), read=timeout), retries=False
    )
    results: list[tuple[str, int | None, float]] = []
    for doc in ("zarr.json", ".zmetadata", ".zgroup"):
        target = f"{url}/{doc}"
        for method in ("HEAD", "GET"):
            started = time.monotonic()
            try:
                resp = http.request(method, target, preload_content=False, redirect=True)
                resp.release_conn()
            except urllib3.exceptions.HTTPError as err:
                took = time.monotonic() - started
                reason = getattr(err, "reason", None) or err
                raise ToolError(
                    f"cannot reach {url} (preflight {method} {doc} failed after {took:.1f} s: {reason}); "
                    "check the URL and that the server is up"
                ) from None
            took = time.monotonic() - started
            results.append((target, resp.status, took))
            log.info("preflight: %s %s -> HTTP %d in %.3f s", method, target, resp.status, took)
            if resp.status != 405:  # Method Not Allowed: retry with GET
                break
        if results[-1][1] == 200:
            return results
    log.warning("preflight: no Zarr metadata document answered 200 at %s; trying to open it anyway", url)
    return results
