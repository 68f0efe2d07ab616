"""A minimal STAC API Transactions client: one-line errors, short timeouts, no proxy on loopback."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import requests

from ..errors import EopackError, ServiceUnavailableError, SettingInvalidError
from . import http

__all__ = [
    "HEADERS_ENV",
    "STRUCTURAL_RELS",
    "StacApi",
    "StacApiError",
    "TransactionsDisabledError",
    "declares_transactions",
    "headers_from_env",
]

STRUCTURAL_RELS = {"self", "root", "parent", "child", "item", "items", "collection"}
HEADERS_ENV = "EOPACK_STAC_HEADERS"  # a private API's headers, one 'Name: value' a line (a secret)
TIMEOUT = (5, 60)  # connect fast-fails on a dead host; reads may wait for pgstac


class StacApiError(EopackError):
    """The STAC API answered something we cannot continue from."""

    def __init__(self, api_url: str, reason: str, fix: str) -> None:
        self.api_url, self.reason, self.fix = api_url, reason, fix
        super().__init__(f"STAC API {api_url}: {reason}. {fix}")


class TransactionsDisabledError(StacApiError):
    """The API is read-only: its Transactions extension is off."""

    def __init__(self, api_url: str, reason: str) -> None:
        super().__init__(
            api_url,
            f"does not accept transactions ({reason})",
            "Enable the Transactions extension (stac-fastapi: ENABLE_TRANSACTIONS_EXTENSIONS=true; "
            "`eopack stac up` does) or publish to another API.",
        )


# ------------------------------------------------------------------ the API


class StacApi:
    """Minimal STAC API Transactions client: one-line errors, short timeouts, no proxy on loopback."""

    def __init__(self, url: str, token: str | None = None) -> None:
        self.url = url.rstrip("/")
        # proxies must not see loopback; a private API's headers as the tools send them
        self.session = http.session(self.url, headers=headers_from_env())
        if token:  # the write token (a local stack's <state>/write-token, or EOPACK_STAC_TOKEN)
            self.session.headers["Authorization"] = f"Bearer {token}"

    def request(self, method: str, path: str, body: Any = None) -> requests.Response:
        url = f"{self.url}{path}"
        try:
            return self.session.request(method, url, json=body, timeout=TIMEOUT)
        except requests.exceptions.ConnectionError as exc:
            reason = "connection refused" if "refused" in str(exc).lower() else http.one_line(exc)
            raise ServiceUnavailableError(
                f"STAC API {self.url}",
                f"{method} {path} failed: {reason}",
                "Start it (`eopack stac up`) or check the --stac-api URL.",
            ) from None
        except requests.exceptions.Timeout:
            raise ServiceUnavailableError(
                f"STAC API {self.url}", f"{method} {path} timed out", "Check the server and its logs."
            ) from None

    def fail(self, response: requests.Response, what: str) -> StacApiError:
        detail = http.one_line(response.text)[:300]
        return StacApiError(
            self.url,
            f"{what} answered {response.status_code} {response.reason}: {detail}",
            "See the server log.",
        )

    def landing(self) -> dict[str, Any]:
        response = self.request("GET", "/")
        try:
            doc = response.json()
        except ValueError:
            doc = None
        if response.status_code != 200 or not isinstance(doc, dict) or "links" not in doc:
            raise StacApiError(
                self.url,
                f"GET / answered {response.status_code} without a STAC landing page",
                "Pass the API's root URL (the one whose /collections and /search work).",
            )
        return doc


def headers_from_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The ``Name: value`` lines of ``EOPACK_STAC_HEADERS`` (or the file ``EOPACK_STAC_HEADERS_FILE``
    names), the headers a private STAC API wants on every request; the tools read the same setting."""
    env = os.environ if environ is None else environ
    text = env.get(HEADERS_ENV, "")
    if not text.strip() and env.get(f"{HEADERS_ENV}_FILE"):
        try:
            text = Path(env[f"{HEADERS_ENV}_FILE"]).read_text()
        except OSError as exc:
            raise SettingInvalidError(
                f"{HEADERS_ENV}_FILE", f"cannot be read ({exc.strerror})", "Name a readable file."
            ) from None
    headers = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        name, sep, value = line.partition(":")
        if not sep or not name.strip() or any(c.isspace() for c in name.strip()):
            # never echo the line: it holds a credential
            raise SettingInvalidError(
                HEADERS_ENV,
                "holds a line that is not 'Name: value'",
                "Give one 'Name: value' header per line.",
            )
        headers[name.strip()] = value.strip()
    return headers


def declares_transactions(landing: Mapping[str, Any]) -> bool | None:
    """True/False from ``conformsTo``; None when the landing page does not list conformance."""
    classes = landing.get("conformsTo")
    if not isinstance(classes, list):
        return None
    return any("transaction" in str(c).lower() for c in classes)
