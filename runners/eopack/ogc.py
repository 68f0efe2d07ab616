"""OGC API Processes: a package's process description, and a client for ZOO-Project (seed 001).

Why here and not in the runners: deployment is not a run. ZOO-Project (OGC API Processes Part 2,
"Deploy, Replace, Undeploy") takes the package as an ``executionUnit`` and runs it itself; eopack
only describes the process, deploys it and drives its jobs (Part 1: execute, status, results).

* ``describe(pkg)``: the Part 1 process description, with inputs and outputs converted by
  ``cwl2ogc`` (the converter ZOO-Project's stack uses), so what we print is what a server derives.
  Two corrections on top: an input with a CWL ``default`` has ``minOccurs: 0`` (a client may omit
  it; cwl2ogc only looks at nullability), and keeps that default in its schema even when it is falsy
  (cwl2ogc 0.22 drops ``default: false``).
* ``OgcClient``: deploy (an ``application/ogcapppkg+json`` body whose ``executionUnit`` refers to a
  released CWL, or the CWL inline as ``application/cwl+yaml``), execute (``Prefer: respond-async``;
  the job id from the body or the ``Location`` header), status, results, jobs (list), dismiss,
  the deployed package (Part 2 ``GET /processes/{id}/package``), undeploy; bearer or basic auth.
* ``job_inputs``: File and Directory inputs travel *by value* as URL strings, what ``describe``
  declares (``type: string, format: uri``). ZOO-Project treats ``{"href": URL}`` as a by-reference
  input and downloads it into a ``cache_file`` before the package sees it (zoo-runner-common
  ``ZooInputs.get_processing_parameters``); the eoap pattern tester sends plain values too.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urljoin

import click
import requests

from .errors import EopackError
from .package import Package, as_list, find_package, repo_root, short_id

__all__ = [
    "JOB_STATUSES",
    "OgcApiError",
    "OgcClient",
    "describe",
    "describe_cmd",
    "job_inputs",
    "ogc_cli",
    "with_defaults",
]

# OGC API Processes Part 1, statusInfo.status.
JOB_STATUSES = ("accepted", "running", "successful", "failed", "dismissed")
FINAL_STATUSES = ("successful", "failed", "dismissed")
# OGC API Processes Part 2 media types: the application package (JSON) and the CWL itself.
OGCAPPPKG = "application/ogcapppkg+json"
CWL_YAML = "application/cwl+yaml"


class OgcApiError(EopackError):
    """The server refused or failed a request; the message names the request, the answer and a fix."""

    def __init__(self, what: str, status: int | None, detail: str, fix: str) -> None:
        self.what, self.status, self.detail, self.fix = what, status, detail, fix
        answer = f"HTTP {status}" if status else "no answer"
        super().__init__(f"{what} failed ({answer}: {detail}). {fix}".replace(". .", "."))


def describe(pkg: Package) -> dict[str, Any]:
    """The OGC API Processes process description of ``pkg``'s Workflow (inputs/outputs via cwl2ogc)."""
    from cwl2ogc import BaseCWLtypes2OGCConverter
    from cwl_utils.parser import load_document_by_uri

    process = load_document_by_uri(f"{pkg.path.resolve().as_uri()}#{pkg.name}")
    converter = BaseCWLtypes2OGCConverter(process)
    inputs = json.loads(json.dumps(converter.get_inputs()))
    defaults = {
        short_id(i["id"]): i["default"] for i in as_list(pkg.workflow.get("inputs"), "id") if "default" in i
    }
    for key, spec in inputs.items():
        if key in defaults:
            spec["minOccurs"] = 0
            # cwl2ogc 0.22 drops falsy defaults (false, 0, ""); the server needs them to fill omitted inputs.
            spec.setdefault("schema", {}).setdefault("default", defaults[key])
    doc = pkg.doc
    keywords = doc.get("s:keywords") or []
    return {
        "id": pkg.name,
        "title": pkg.label,
        "description": str(pkg.workflow.get("doc", "")).strip(),
        "version": pkg.version,
        "keywords": [str(k) for k in (keywords if isinstance(keywords, list) else [keywords])],
        "jobControlOptions": ["async-execute"],
        "outputTransmission": ["value", "reference"],
        "inputs": inputs,
        "outputs": json.loads(json.dumps(converter.get_outputs())),
        "links": [
            {
                "rel": "http://www.opengis.net/def/rel/ogc/1.0/execute",
                "href": f"processes/{pkg.name}/execution",
                "title": "Execute endpoint",
            }
        ],
    }


def job_inputs(job: Mapping[str, Any]) -> dict[str, Any]:
    """A CWL job order as OGC ``inputs``: File/Directory become their URL, a string passed by value.

    Not ``{"href": URL}``: a server reads that as a reference to download (ZOO-Project fetches it
    into a cache file and hands the package the file's content), while the process description
    declares these inputs as ``type: string, format: uri``. A local path is refused: the server
    cannot read this machine's disk.
    """

    def convert(key: str, value: Any) -> Any:
        if isinstance(value, dict) and value.get("class") in {"File", "Directory"}:
            location = str(value.get("location") or value.get("path") or "")
            if not location.startswith(("http://", "https://", "s3://")):
                raise OgcApiError(
                    f"input {key!r}",
                    None,
                    f"{location or 'a local path'} is on this machine",
                    "Give an http(s) URL the server can read (e.g. a STAC item or catalog URL).",
                )
            return location
        if isinstance(value, list):
            return [convert(key, v) for v in value]
        return value

    return {k: convert(k, v) for k, v in job.items() if v is not None}


def with_defaults(pkg: Package, job: Mapping[str, Any]) -> dict[str, Any]:
    """``job`` plus the Workflow's ``default`` of every input it leaves out, sent explicitly.

    ZOO-Project's DRU turns a CWL input with a default but a non-null type (``boolean``,
    ``default: false``) into a required input (``minOccurs`` 1, no schema default) and fails the
    job with ``MissingParameterValue`` when it is omitted; sending the default works everywhere.
    """
    out = dict(job)
    for entry in as_list(pkg.workflow.get("inputs"), "id"):
        key = short_id(entry["id"])
        if key not in out and "default" in entry:
            out[key] = entry["default"]
    return out


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
        self.session = requests.Session()
        self.session.headers["Accept"] = "application/json"
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
                "data": json.dumps({"executionUnit": {"href": href, "type": "application/cwl"}}),
                "headers": {"Content-Type": OGCAPPPKG},
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

    def jobs(self, process_id: str | None = None, status: str | None = None) -> list[dict[str, Any]]:
        """Part 1 ``GET /jobs``: the statusInfo of each job the server lists (filters optional)."""
        params = {k: v for k, v in (("processID", process_id), ("status", status)) if v}
        body = self._request("listing jobs", "GET", "jobs", (200,), params=params).json()
        return [dict(j) for j in body.get("jobs", [])]

    def package(self, process_id: str, media_type: str = CWL_YAML) -> str:
        """Part 2 ``GET /processes/{id}/package``: the deployed application package, as text.

        ``media_type`` is the ``Accept`` header: ``application/cwl+yaml`` (the CWL) or
        ``application/ogcapppkg+json``.
        """
        resp = self._request(
            f"fetching the package of {process_id}",
            "GET",
            f"processes/{quote(process_id)}/package",
            (200,),
            headers={"Accept": media_type},
        )
        return resp.text

    def dismiss(self, job_id: str) -> dict[str, Any]:
        resp = self._request(f"dismissing job {job_id}", "DELETE", f"jobs/{quote(job_id)}", (200, 204))
        return dict(resp.json()) if resp.content else {}

    def undeploy(self, process_id: str) -> None:
        self._request(f"undeploying {process_id}", "DELETE", f"processes/{quote(process_id)}", (200, 204))

    def wait(self, job_id: str, interval: float = 2.0, timeout: float = 3600.0) -> dict[str, Any]:
        """Poll the job until it is successful, failed or dismissed."""
        import time

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
        406: "The server does not have it in that encoding; try --format cwl.",
        409: "It exists already: undeploy it first, or deploy with --replace.",
    }.get(status, "See the server's log.")


# ---------------------------------------------------------------------------------------------
# Commands (`eopack describe`, `eopack ogc ...`): parse, call, print.


@click.command("describe")
@click.argument("app")
def describe_cmd(app: str) -> None:
    """Print APP's OGC API Processes process description (JSON, derived with cwl2ogc)."""
    click.echo(json.dumps(describe(find_package(app)), indent=2))


_endpoint = click.option(
    "--endpoint",
    envvar="EOPACK_OGC_ENDPOINT",
    required=True,
    metavar="URL",
    help="API root, e.g. https://zoo.example.org/USER/ogc-api (env EOPACK_OGC_ENDPOINT).",
)
_token = click.option("--token", envvar="EOPACK_OGC_TOKEN", help="Bearer token (env EOPACK_OGC_TOKEN).")
_user = click.option("--user", envvar="EOPACK_OGC_USER", help="Basic auth user (env EOPACK_OGC_USER).")
_password = click.option(
    "--password", envvar="EOPACK_OGC_PASSWORD", help="Basic auth password (env EOPACK_OGC_PASSWORD)."
)


def _client(endpoint: str, token: str | None, user: str | None, password: str | None) -> OgcClient:
    return OgcClient(endpoint, token=token, user=user, password=password)


def _echo(data: Any) -> None:
    click.echo(json.dumps(data, indent=2))


@click.group("ogc")
def ogc_cli() -> None:
    """Deploy packages to an OGC API Processes server (ZOO-Project) and drive their jobs."""


@ogc_cli.command("deploy")
@_endpoint
@_token
@_user
@_password
@click.argument("app")
@click.option("--href", metavar="URL", help="Deploy by reference to this released CWL (else inline).")
@click.option(
    "--cwl",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="CWL file to send inline (default: the package, or dist/<app>.<version>.cwl when released).",
)
@click.option("--replace", is_flag=True, help="Replace an existing deployment (PUT).")
def deploy_cmd(
    endpoint: str,
    token: str | None,
    user: str | None,
    password: str | None,
    app: str,
    href: str | None,
    cwl: Path | None,
    replace: bool,
) -> None:
    """Deploy APP (OGC API Processes Part 2); prints the process URL."""
    pkg = find_package(app)
    if not href and cwl is None:
        released = repo_root() / "dist" / f"{pkg.name}.{pkg.version}.cwl"
        cwl = released if released.is_file() else pkg.path
    client = _client(endpoint, token, user, password)
    click.echo(client.deploy(pkg.name, href=href, cwl=None if href else cwl, replace=replace))


@ogc_cli.command("execute")
@_endpoint
@_token
@_user
@_password
@click.argument("app")
@click.argument("job", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--wait", "wait_", is_flag=True, help="Poll until the job ends; print its results.")
def execute_cmd(
    endpoint: str,
    token: str | None,
    user: str | None,
    password: str | None,
    app: str,
    job: Path | None,
    wait_: bool,
) -> None:
    """Start APP with the inputs of JOB (a CWL job file; default examples/default.yml); prints the job."""
    from .runners.base import load_job

    pkg = find_package(app)
    client = _client(endpoint, token, user, password)
    info = client.execute(pkg.name, job_inputs(with_defaults(pkg, load_job(job or pkg.default_job))))
    if not wait_:
        _echo(info)
        return
    final = client.wait(str(info["jobID"]))
    if final["status"] != "successful":
        raise OgcApiError(
            f"job {info['jobID']}", 200, f"ended {final['status']}: {final.get('message', '')}", ""
        )
    _echo(client.results(str(info["jobID"])))


@ogc_cli.command("status")
@_endpoint
@_token
@_user
@_password
@click.argument("job_id")
def status_cmd(endpoint: str, token: str | None, user: str | None, password: str | None, job_id: str) -> None:
    """Print the job's statusInfo (status: accepted, running, successful, failed or dismissed)."""
    _echo(_client(endpoint, token, user, password).status(job_id))


@ogc_cli.command("results")
@_endpoint
@_token
@_user
@_password
@click.argument("job_id")
def results_cmd(
    endpoint: str, token: str | None, user: str | None, password: str | None, job_id: str
) -> None:
    """Print the job's results document."""
    _echo(_client(endpoint, token, user, password).results(job_id))


@ogc_cli.command("jobs")
@_endpoint
@_token
@_user
@_password
@click.option("--process", "process_id", metavar="ID", help="Only the jobs of this process.")
@click.option("--status", type=click.Choice(JOB_STATUSES), help="Only the jobs in this status.")
def jobs_cmd(
    endpoint: str,
    token: str | None,
    user: str | None,
    password: str | None,
    process_id: str | None,
    status: str | None,
) -> None:
    """List the server's jobs (Part 1 GET /jobs): one line each, id, status, process."""
    for job in _client(endpoint, token, user, password).jobs(process_id, status):
        click.echo(f"{job.get('jobID')}\t{job.get('status')}\t{job.get('processID', '')}")


@ogc_cli.command("dismiss")
@_endpoint
@_token
@_user
@_password
@click.argument("job_id")
def dismiss_cmd(
    endpoint: str, token: str | None, user: str | None, password: str | None, job_id: str
) -> None:
    """Dismiss a job (Part 1 DELETE /jobs/{jobID}): cancel it if running, drop its results."""
    _echo(_client(endpoint, token, user, password).dismiss(job_id))


@ogc_cli.command("package")
@_endpoint
@_token
@_user
@_password
@click.argument("app")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["cwl", "ogcapppkg"]),
    default="cwl",
    show_default=True,
    help="cwl: application/cwl+yaml; ogcapppkg: application/ogcapppkg+json.",
)
def package_cmd(
    endpoint: str, token: str | None, user: str | None, password: str | None, app: str, fmt: str
) -> None:
    """Print the package the server holds for APP (Part 2 GET /processes/{id}/package)."""
    media = CWL_YAML if fmt == "cwl" else OGCAPPPKG
    click.echo(_client(endpoint, token, user, password).package(app, media).rstrip("\n"))


@ogc_cli.command("undeploy")
@_endpoint
@_token
@_user
@_password
@click.argument("app")
def undeploy_cmd(endpoint: str, token: str | None, user: str | None, password: str | None, app: str) -> None:
    """Remove APP from the server (Part 2 DELETE /processes/{id})."""
    _client(endpoint, token, user, password).undeploy(app)
    click.echo(f"undeployed {app}")
