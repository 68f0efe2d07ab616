"""A small OGC API Processes client (Part 1 execute/status/results, Part 2 deploy/undeploy) for ZOO-Project.

Deploy sends the ``executionUnit`` by reference to a released CWL, or the CWL inline as
``application/cwl+yaml``; execute asks ``Prefer: respond-async`` and takes the job id from the body
or the ``Location`` header; bearer token or basic auth. Errors are one line: request, answer, fix.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urljoin

import requests

from ..errors import EopackError
from . import http

__all__ = ["FINAL_STATUSES", "JOB_STATUSES", "OgcApiError", "OgcClient"]

# OGC API Processes Part 1, statusInfo.status.
JOB_STATUSES = ("accepted", "running", "successful", "failed", "dismissed")
FINAL_STATUSES = ("successful", "failed", "dismissed")


class OgcApiError(EopackError):
    """The server refused or failed a request; the message names the request, the answer and a fix."""

    def __init__(self, what: str, status: int | None, detail: str, fix: str) -> None:
        self.what, self.status, self.detail, self.fix = what, status, detail, fix
        answer = f"HTTP {status}" if status else "no answer"
        super().__init__(f"{what} failed ({answer}: {detail}). {fix}".replace(". .", "."))


@dataclass
class OgcClient:
    """A small OGC API Processes client. ``endpoint`` is the API root, e.g.
    ``https://zoo.example.org/eoepcauser/ogc-api`` (processes live at ``{endpoint}/processes``)."""

    endpoint: str
    token: str | None = None
    user: str | None = None
    password: str | None = None
    timeout: float = 60.0

    def __post_init__(self) -> None:
        self.endpoint = self.endpoint.rstrip("/") + "/"
        self.session = http.session(self.endpoint, headers={"Accept": "application/json"})
        if self.token:
            self.session.headers["Authorization"] = f"Bearer {self.token}"
        elif self.user:
            self.session.auth = (self.user, self.password or "")

    def _url(self, path: str) -> str:
        return urljoin(self.endpoint, path.lstrip("/"))

    def _request(
        self, what: str, method: str, path: str, ok: tuple[int, ...], **kwargs: Any
    ) -> requests.Response:
        url = path if path.startswith(("http://", "https://")) else self._url(path)
        try:
            resp = self.session.request(method, url, timeout=self.timeout, **kwargs)
        except requests.RequestException as err:
            raise OgcApiError(
                what,
                None,
                f"{url} did not answer ({type(err).__name__})",
                "Check --endpoint and the network.",
            ) from None
        if resp.status_code not in ok:
            raise OgcApiError(what, resp.status_code, _detail(resp), _fix(resp.status_code))
        return resp

    def processes(self) -> list[dict[str, Any]]:
        return list(
            self._request("listing processes", "GET", "processes", (200,)).json().get("processes", [])
        )

    def process(self, process_id: str) -> dict[str, Any]:
        return dict(
            self._request(f"describing {process_id}", "GET", f"processes/{quote(process_id)}", (200,)).json()
        )

    def deploy(
        self, process_id: str, href: str | None = None, cwl: Path | None = None, replace: bool = False
    ) -> str:
        """Deploy (Part 2 DRU) by reference (``href``, a released CWL URL) or inline (``cwl``).

        Returns the process URL from ``Location``. ``replace`` PUTs over an existing deployment.
        ``w`` names the Workflow to expose when the CWL holds several processes.
        """
        if bool(href) == bool(cwl):
            raise ValueError("give exactly one of href or cwl")
        path = f"processes/{quote(process_id)}" if replace else "processes"
        params = {"w": process_id}
        if href:
            kwargs: dict[str, Any] = {
                "json": {"executionUnit": {"href": href, "type": "application/cwl"}},
            }
        else:
            assert cwl is not None
            kwargs = {"data": cwl.read_bytes(), "headers": {"Content-Type": "application/cwl+yaml"}}
        resp = self._request(
            f"deploying {process_id}",
            "PUT" if replace else "POST",
            path,
            (200, 201, 204),
            params=params,
            **kwargs,
        )
        return resp.headers.get("Location") or self._url(f"processes/{quote(process_id)}")

    def execute(self, process_id: str, inputs: Mapping[str, Any], sync: bool = False) -> dict[str, Any]:
        """Start a job; returns its statusInfo (async) or the results document (sync)."""
        headers = {} if sync else {"Prefer": "respond-async"}
        resp = self._request(
            f"executing {process_id}",
            "POST",
            f"processes/{quote(process_id)}/execution",
            (200, 201),
            json={"inputs": dict(inputs)},
            headers=headers,
        )
        body = resp.json() if resp.content else {}
        if resp.status_code == 201 and "jobID" not in body:
            location = resp.headers.get("Location", "")
            body = {**body, "jobID": location.rstrip("/").rsplit("/", 1)[-1], "status": body.get("status")}
        return dict(body)

    def status(self, job_id: str) -> dict[str, Any]:
        info = dict(self._request(f"status of job {job_id}", "GET", f"jobs/{quote(job_id)}", (200,)).json())
        if info.get("status") not in JOB_STATUSES:
            raise OgcApiError(
                f"status of job {job_id}",
                200,
                f"unknown status {info.get('status')!r}",
                f"The server does not follow OGC API Processes ({', '.join(JOB_STATUSES)}).",
            )
        return info

    def results(self, job_id: str) -> dict[str, Any]:
        return dict(
            self._request(f"results of job {job_id}", "GET", f"jobs/{quote(job_id)}/results", (200,)).json()
        )

    def dismiss(self, job_id: str) -> dict[str, Any]:
        resp = self._request(f"dismissing job {job_id}", "DELETE", f"jobs/{quote(job_id)}", (200, 204))
        return dict(resp.json()) if resp.content else {}

    def undeploy(self, process_id: str) -> None:
        self._request(f"undeploying {process_id}", "DELETE", f"processes/{quote(process_id)}", (200, 204))

    def wait(self, job_id: str, interval: float = 2.0, timeout: float = 3600.0) -> dict[str, Any]:
        """Poll the job until it is successful, failed or dismissed."""
        deadline = time.monotonic() + timeout
        while True:
            info = self.status(job_id)
            if info["status"] in FINAL_STATUSES:
                return info
            if time.monotonic() > deadline:
                raise OgcApiError(
                    f"waiting for job {job_id}", 200, f"still {info['status']} after {timeout:.0f} s", ""
                )
            time.sleep(interval)


def _detail(resp: requests.Response) -> str:
    """The exception document's title/detail (RFC 7807 as OGC API uses it), else the body's first line."""
    try:
        body = resp.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        parts = [str(body[k]) for k in ("title", "detail", "description") if body.get(k)]
        if parts:
            return ": ".join(dict.fromkeys(parts))
    text = resp.text.strip().splitlines()
    return text[0][:200] if text else resp.reason or "empty answer"


def _fix(status: int) -> str:
    return {
        401: "Give a valid --token (bearer) or --user/--password.",
        403: "The account may not do this; check its rights on the server.",
        404: "Check --endpoint (the API root, before /processes) and the id.",
        409: "It exists already: undeploy it first, or deploy with --replace.",
    }.get(status, "See the server's log.")
