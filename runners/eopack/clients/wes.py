"""A GA4GH WES 1.0 client (basic auth, one-line errors), and the local stack's endpoint and credentials.

Credentials: ``WES_USER``/``WES_PASSWORD`` (what ZOO-Project's WES runner reads), else ~/.netrc for
the endpoint's host, else the local stack's (``wes.json`` in its state dir, mode 600) when the URL
is its endpoint. They are sent as HTTP basic auth only: never printed, logged or written to a run.
"""

from __future__ import annotations

import json
import netrc
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests

from ..errors import EopackError, ServiceUnavailableError
from . import http

__all__ = [
    "API_PATH",
    "STATE_DIR_ENV",
    "STATE_FILE",
    "TERMINAL",
    "WesAuthError",
    "WesClient",
    "WesError",
    "credentials",
    "local_credentials",
    "local_url",
    "resolve_url",
]

STATE_DIR_ENV = "EOPACK_WES_STATE_DIR"
STATE_FILE = "wes.json"  # written by eopack.services.wes (mode 600): port, user, password

API_PATH = "/ga4gh/wes/v1"
TERMINAL = frozenset({"COMPLETE", "EXECUTOR_ERROR", "SYSTEM_ERROR", "CANCELED"})
CREDENTIALS_FIX = (
    "Set WES_USER and WES_PASSWORD, or add a `machine HOST login USER password PASS` line to ~/.netrc."
)


class WesError(EopackError):
    """The endpoint answered with an error; the message carries its status and its own words."""

    def __init__(self, url: str, status: int, reason: str, fix: str = "") -> None:
        self.url, self.status, self.reason = url, status, reason
        super().__init__(f"WES endpoint {url} answered HTTP {status}: {reason}.{' ' + fix if fix else ''}")


class WesAuthError(WesError):
    """401: no credentials were sent, or the endpoint refused them."""

    def __init__(self, url: str, user: str | None) -> None:
        self.user = user
        reason = (
            "no credentials were sent"
            if user is None
            else f"the credentials of user {user!r} were refused (wrong user or password)"
        )
        super().__init__(url, 401, reason, CREDENTIALS_FIX)


def resolve_url(url: str | None, state_dir: Path | None = None) -> str:
    """The endpoint to use: ``url``, else ``$WES_URL``, else the local stack's; ``/ga4gh/wes/v1`` added.

    A bare ``http://host:port`` gets the standard WES path, so both spellings users copy work.
    """
    given = url or os.environ.get("WES_URL") or local_url(state_dir)
    if not given:
        raise ServiceUnavailableError(
            "WES runner",
            "no endpoint given",
            "Pass --wes-url URL or set WES_URL, or start a local one with `eopack wes up`.",
        )
    parts = urlsplit(given)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ServiceUnavailableError(
            "WES runner", f"{given!r} is not an http(s) URL", "Give e.g. http://host:8080/ga4gh/wes/v1."
        )
    path = parts.path.rstrip("/")
    return given.rstrip("/") if path else given.rstrip("/") + API_PATH


class WesClient:
    """A small WES 1.0 client over ``requests`` with basic auth and one-line errors."""

    def __init__(self, url: str, auth: tuple[str, str] | None, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.user = auth[0] if auth else None
        # Explicit credentials only (the helper switches off ~/.netrc): "no credentials" must mean
        # none, the 401 message depends on it.
        self._session = http.session(self.url, auth)
        self.timeout = timeout

    @classmethod
    def from_environment(cls, url: str, state_dir: Path | None = None) -> WesClient:
        """Credentials from WES_USER/WES_PASSWORD, else ~/.netrc, else the local stack's (same URL)."""
        return cls(url, credentials(url, state_dir))

    # -------------------------------------------------------------- HTTP

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        target = path if path.startswith("http") else self.url + path
        try:
            response = self._session.request(method, target, timeout=self.timeout, **kwargs)
        except requests.RequestException as exc:
            raise ServiceUnavailableError(
                f"WES endpoint {self.url}",
                f"no answer ({type(exc).__name__})",
                "Check the URL; start a local endpoint with `eopack wes up`.",
            ) from exc
        if response.status_code == 401:
            raise WesAuthError(self.url, self.user)
        if response.status_code >= 400:
            try:
                body = response.json()
                reason = str(body.get("msg") or body.get("detail") or body)
            except ValueError:
                reason = response.text.strip().splitlines()[0] if response.text.strip() else response.reason
            raise WesError(self.url, response.status_code, reason[:300])
        return response

    def service_info(self) -> dict[str, Any]:
        return dict(self._request("GET", "/service-info").json())

    def submit(
        self,
        attachments: Sequence[tuple[str, bytes]],
        workflow_url: str,
        params: Mapping[str, Any],
        engine_params: Mapping[str, str | None] | None = None,
        tags: Mapping[str, str] | None = None,
        version: str = "v1.2",
    ) -> str:
        """POST /runs (multipart); returns the run id."""
        data = {
            "workflow_url": workflow_url,
            "workflow_type": "CWL",
            "workflow_type_version": version,
            "workflow_params": json.dumps(dict(params)),
            "workflow_engine_parameters": json.dumps(dict(engine_params or {})),
            "tags": json.dumps(dict(tags or {})),
        }
        files = [("workflow_attachment", (name, content)) for name, content in attachments]
        return str(self._request("POST", "/runs", data=data, files=files).json()["run_id"])

    def status(self, run_id: str) -> str:
        return str(self._request("GET", f"/runs/{run_id}/status").json()["state"])

    def run_log(self, run_id: str) -> dict[str, Any]:
        return dict(self._request("GET", f"/runs/{run_id}").json())

    def cancel(self, run_id: str) -> None:
        self._request("POST", f"/runs/{run_id}/cancel")

    def list_runs(self, page_size: int = 100) -> Iterator[dict[str, Any]]:
        token = ""
        while True:
            params: dict[str, Any] = {"page_size": page_size}
            if token:
                params["page_token"] = token
            body = self._request("GET", "/runs", params=params).json()
            # WES 1.0 says "runs"; Toil answers "workflows" (the pre-1.0 name).
            yield from body.get("runs") or body.get("workflows") or []
            token = body.get("next_page_token") or ""
            if not token:
                return

    def log_text(self, run_id: str, which: str = "stderr") -> str:
        """The run's stderr (engine log, tool errors) or stdout, following Toil's relative link."""
        link = (self.run_log(run_id).get("run_log") or {}).get(which) or ""
        if not link:
            return ""
        response = self._request("GET", urljoin(f"{self.url}/runs/{run_id}", link))
        return str(response.text)

    def wait(
        self,
        run_id: str,
        timeout: float | None = None,
        poll: float = 1.0,
        on_change: Callable[[str], None] | None = None,
    ) -> str:
        """Poll until a terminal state (or ``timeout`` seconds); returns the last state seen."""
        deadline = None if timeout is None else time.monotonic() + timeout
        last = ""
        while True:
            state = self.status(run_id)
            if state != last and on_change is not None:
                on_change(state)
            last = state
            if state in TERMINAL or (deadline is not None and time.monotonic() > deadline):
                return state
            time.sleep(poll)


def credentials(url: str, state_dir: Path | None = None) -> tuple[str, str] | None:
    """(user, password) for ``url``: environment, ~/.netrc, then the local stack's; None when none."""
    user, password = os.environ.get("WES_USER"), os.environ.get("WES_PASSWORD")
    if user and password is not None:
        return user, password
    host = urlsplit(url).hostname or ""
    try:
        found = netrc.netrc(os.environ.get("NETRC") or None).authenticators(host)
    except (OSError, netrc.NetrcParseError):
        found = None
    if found and found[0] and found[2] is not None:
        return found[0], found[2]
    return local_credentials(url, state_dir)


def _local_state(state_dir: Path | None) -> dict[str, Any] | None:
    if state_dir is None:
        return None
    try:
        raw = json.loads((state_dir / STATE_FILE).read_text())
    except (OSError, ValueError):
        return None
    return raw if isinstance(raw, dict) else None


def local_url(state_dir: Path | None) -> str | None:
    """The endpoint of the local stack configured in ``state_dir`` (None if never started there)."""
    raw = _local_state(state_dir)
    if raw is None:
        return None
    return f"http://{http.LOOPBACK}:{int(raw.get('port', 0))}{API_PATH}"


def local_credentials(url: str, state_dir: Path | None) -> tuple[str, str] | None:
    """(user, password) of the local stack when ``url`` is its endpoint, else None.

    A convenience for ``eopack run --runner wes`` on the machine that runs the stack; any other
    endpoint needs ``WES_USER``/``WES_PASSWORD`` or ~/.netrc.
    """
    raw = _local_state(state_dir)
    if raw is None or url.rstrip("/") != local_url(state_dir):
        return None
    return str(raw.get("user", "")), str(raw.get("password", ""))
