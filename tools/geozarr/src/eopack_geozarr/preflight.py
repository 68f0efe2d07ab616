"""Step 1: preflight of URL inputs (reachable, not private unless allowed) before any work."""

from __future__ import annotations

import logging
import time
from urllib.parse import urlsplit

from eopack_eo_common.download import open_url
from eopack_eo_common.errors import ToolError, ToolInputError

from .job import PREFLIGHT_TIMEOUT

log = logging.getLogger(__name__)


def preflight(url: str, timeout: float = PREFLIGHT_TIMEOUT) -> list[tuple[str, int | None, float]]:
    """HEAD (then GET) the store's metadata documents; log status and timing of each.

    Best effort: an HTTP error status is only logged (some servers refuse HEAD, or serve only
    chunks). A host that cannot be reached at all is fatal, because opening would fail too, after
    much longer retries.

    Returns:
        ``(url, status or None, seconds)`` per request made.
    """
    if urlsplit(url).scheme not in ("http", "https"):
        log.info("preflight: skipped for %s (not http)", url)
        return []
    results: list[tuple[str, int | None, float]] = []
    for doc in ("zarr.json", ".zmetadata", ".zgroup"):
        target = f"{url}/{doc}"
        for method in ("HEAD", "GET"):
            started = time.monotonic()
            try:  # through the URL guard: every hop checked, connections pinned to checked addresses
                with open_url(target, method=method, timeout=timeout, deadline=3 * timeout) as opened:
                    status = opened.response.status
            except ToolInputError:
                raise
            except ToolError as err:
                took = time.monotonic() - started
                raise ToolError(
                    f"cannot reach {url} (preflight {method} {doc} failed after {took:.1f} s: {err}); "
                    "check the URL and that the server is up"
                ) from None
            took = time.monotonic() - started
            results.append((target, status, took))
            log.info("preflight: %s %s -> HTTP %d in %.3f s", method, target, status, took)
            if status != 405:  # Method Not Allowed: retry with GET
                break
        if results[-1][1] == 200:
            return results
    log.warning("preflight: no Zarr metadata document answered 200 at %s; trying to open it anyway", url)
    return results
