"""Open remote stores (fsspec's HTTP filesystem, on aiohttp) through the URL guard.

xarray and zarr read an http(s) store with fsspec's ``HTTPFileSystem``, which follows redirects
with aiohttp wherever they point. :func:`http_storage_options` gives that filesystem a session
whose connector checks every address it is about to connect to (on every request and every
redirect hop, DNS names and IP literals alike) with :func:`.urlguard.check_address`, and connects
to exactly those checked addresses. Proxies from the environment are not used.

    >>> opts = http_storage_options("https://example.org/product.zarr")
    >>> sorted(opts)
    ['get_client']
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import urlguard
from .errors import ToolInputError

if TYPE_CHECKING:
    import aiohttp

__all__ = ["guarded_client", "http_storage_options"]


def _connector() -> aiohttp.TCPConnector:
    import aiohttp

    class GuardedConnector(aiohttp.TCPConnector):
        """A TCP connector that refuses to connect to addresses the URL guard refuses."""

        async def _resolve_host(self, host: str, port: int, traces: Any = None) -> Any:
            # Every connection (first request, redirects, retries) resolves here, IP literals
            # included, and connects to the addresses returned: checking them here pins it.
            results = await super()._resolve_host(host, port, traces=traces)
            for result in results:
                urlguard.check_address(host, str(result["host"]))
            return results

    return GuardedConnector()


async def guarded_client(**kwargs: Any) -> aiohttp.ClientSession:
    """fsspec's ``get_client`` hook: an aiohttp session whose connections pass the URL guard."""
    import aiohttp

    kwargs.pop("trust_env", None)
    return aiohttp.ClientSession(connector=_connector(), trust_env=False, **kwargs)


def http_storage_options(url: str) -> dict[str, Any]:
    """fsspec storage options for opening the http(s) ``url`` through the URL guard.

    The URL itself must pass the guard's parser (exit 2 otherwise).
    """
    target = urlguard.parse_url(url)
    if target.scheme not in ("http", "https"):  # pragma: no cover - parse_url allows only these
        raise ToolInputError(f"url must start with http:// or https://; got {url!r}")
    return {"get_client": guarded_client}
