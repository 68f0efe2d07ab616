"""``eopack describe`` and ``eopack ogc deploy|execute|status|results|undeploy``: parse, call, print."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from ..clients.ogc import OgcApiError, OgcClient
from ..job import load_job
from ..ogc import describe, job_inputs
from ..package import find_package, repo_root

__all__ = ["describe_cmd", "ogc_cli"]


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
    pkg = find_package(app)
    client = _client(endpoint, token, user, password)
    info = client.execute(pkg.name, job_inputs(load_job(job or pkg.default_job)))
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
