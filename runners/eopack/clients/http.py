"""The one HTTP helper of every client: no proxy on loopback, ``NO_PROXY`` honoured, one-line errors.

``requests`` reads proxies, ``~/.netrc`` and CA bundles from the environment when ``trust_env`` is
on; a proxy must never see a loopback request, and credentials must be the ones we were given, so
sessions made here switch it off and put back by hand what should stay: proxies (except loopback
and ``NO_PROXY`` hosts) and ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE``.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    import requests

__all__ = ["LOCAL_HOSTS", "LOOPBACK", "http_status", "is_loopback", "one_line", "proxies_for", "session"]

LOOPBACK = "127.0.0.1"
LOCAL_HOSTS = frozenset({LOOPBACK, "localhost", "::1"})


def is_loopback(url: str) -> bool:
    """True when ``url`` names this host by a loopback name or address."""
    return (urlsplit(url).hostname or "") in LOCAL_HOSTS


def proxies_for(url: str) -> dict[str, str]:
    """The environment's http/https proxies for ``url``; none for loopback or a ``NO_PROXY`` host."""
    host = urlsplit(url).hostname or ""
    if host in LOCAL_HOSTS or (host and urllib.request.proxy_bypass(host)):
        return {}
    return {k: v for k, v in urllib.request.getproxies().items() if k in ("http", "https")}


def session(
    url: str, auth: tuple[str, str] | None = None, headers: dict[str, str] | None = None
) -> requests.Session:
    """A ``requests`` session for ``url``: explicit ``auth`` only, proxies per ``proxies_for``."""
    import requests

    sess = requests.Session()
    sess.trust_env = False
    sess.proxies.update(proxies_for(url))
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if bundle:
        sess.verify = bundle
    if auth:
        sess.auth = auth
    if headers:
        sess.headers.update(headers)
    return sess


def one_line(value: object, limit: int | None = None) -> str:
    """``value`` as one line (whitespace collapsed), cut to ``limit`` characters."""
    text = " ".join(str(value).split())
    return text[:limit] if limit else text


_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_status(url: str, timeout: float = 2.0) -> int | None:
    """HTTP status of a GET on a loopback URL, bypassing any proxy settings; None if nothing answers."""
    try:
        with _NO_PROXY.open(url, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (urllib.error.URLError, OSError):
        return None
