"""The OGC API Processes client (``eopack ogc ...``) against a protocol-following double of ZOO-Project.

The double (tests/support/ogc_server.py) plays seed 001's exchanges: deploy (201 + Location),
execute with ``Prefer: respond-async`` (201 + Location /jobs/{id}), status values, results document,
job list, dismiss, package, undeploy. Real ZOO-Project cannot run in CI; what a real ZOO-Project DRU
answered once (docs/interop.md) is encoded in the double and checked by the ``test_zoo_*`` tests.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from click.testing import CliRunner

from eopack.clients.ogc import JOB_STATUSES, OgcApiError, OgcClient
from eopack.commands import cli
from eopack.ogc import job_inputs, with_defaults
from eopack.package import find_package
from tests.support.ogc_server import OgcServer

CONVERT = {
    "fn": "resize",
    "url": "https://eoepca.org/media_portal/images/logo6_med.original.png",
    "size": "50%",
}
# What `eopack ogc execute` sends for CONVERT: the Workflow's defaults explicitly (see with_defaults).
CONVERT_SENT = {**CONVERT, "dask_report": False}


@pytest.fixture
def server() -> Iterator[OgcServer]:
    with OgcServer(token="s3cret") as srv:
        yield srv


@pytest.fixture
def client(server: OgcServer) -> OgcClient:
    return OgcClient(server.url, token="s3cret")


def test_deploy_by_reference_execute_poll_results_undeploy(server: OgcServer, client: OgcClient) -> None:
    pkg = find_package("convert-url")
    location = client.deploy("convert-url", href=pkg.path.as_uri())
    assert location == f"{server.url}/processes/convert-url"
    method, _, headers, body = server.state.requests[-1]
    assert (method, headers["Content-Type"]) == ("POST", "application/ogcapppkg+json")
    assert json.loads(body) == {"executionUnit": {"href": pkg.path.as_uri(), "type": "application/cwl"}}
    assert headers["Authorization"] == "Bearer s3cret"
    assert [p["id"] for p in client.processes()] == ["convert-url"]
    assert client.process("convert-url")["title"] == pkg.label

    job = client.execute("convert-url", CONVERT_SENT)
    assert job["status"] == "running" and job["processID"] == "convert-url"
    assert server.state.requests[-1][2]["Prefer"] == "respond-async"
    with pytest.raises(OgcApiError) as not_ready:
        client.results(job["jobID"])
    assert not_ready.value.status == 404 and "result not ready" in str(not_ready.value)
    seen = [client.status(job["jobID"])["status"] for _ in range(2)]
    assert seen == ["successful", "successful"] and set(seen) <= set(JOB_STATUSES)
    results = client.results(job["jobID"])
    assert set(results) == set(client.process("convert-url")["outputs"]) != set()
    assert all(r["href"].startswith("https://") for r in results.values())

    client.undeploy("convert-url")
    assert server.state.requests[-1][0] == "DELETE"
    with pytest.raises(OgcApiError) as gone:
        client.process("convert-url")
    assert gone.value.status == 404


def test_deploy_inline_cwl_and_conflicts(server: OgcServer, client: OgcClient) -> None:
    pkg = find_package("ndvi")
    client.deploy("ndvi", cwl=pkg.path)
    _, path, headers, body = server.state.requests[-1]
    assert headers["Content-Type"] == "application/cwl+yaml" and path.endswith("/processes?w=ndvi")
    assert body == pkg.path.read_bytes()
    with pytest.raises(OgcApiError) as twice:
        client.deploy("ndvi", cwl=pkg.path)
    assert twice.value.status == 409 and "--replace" in str(twice.value)
    client.deploy("ndvi", cwl=pkg.path, replace=True)
    assert server.state.requests[-1][0] == "PUT"


def test_failed_job_and_missing_inputs(server: OgcServer, client: OgcClient) -> None:
    client.deploy("convert-url", href=find_package("convert-url").path.as_uri())
    with pytest.raises(OgcApiError) as bad:
        client.execute("convert-url", {"fn": "resize"})
    assert bad.value.status == 400 and "missing" in str(bad.value) and "url" in str(bad.value)
    job = client.execute("convert-url", {**CONVERT_SENT, "fn": "fail"})
    final = client.wait(job["jobID"], interval=0)
    assert final["status"] == "failed"
    with pytest.raises(OgcApiError):
        client.results(job["jobID"])
    assert client.dismiss(job["jobID"])["status"] == "dismissed"


def test_auth_is_sent_and_refusals_say_what_to_do(server: OgcServer) -> None:
    with pytest.raises(OgcApiError) as refused:
        OgcClient(server.url, token="wrong").processes()
    assert refused.value.status == 401 and "--token" in str(refused.value)
    with OgcServer(basic=("eoepcauser", "pw")) as basic:
        assert OgcClient(basic.url, user="eoepcauser", password="pw").processes() == []
        assert basic.state.requests[-1][2]["Authorization"].startswith("Basic ")


def test_unreachable_endpoint_is_one_line() -> None:
    with pytest.raises(OgcApiError) as err:
        OgcClient("http://127.0.0.1:9/ogc-api", timeout=2).processes()
    assert "did not answer" in str(err.value) and "\n" not in str(err.value)


def test_job_inputs_send_file_and_directory_urls_by_value() -> None:
    """What ``eopack describe`` declares (type string, format uri), not an ``href`` to download."""
    job = {
        "cat": {"class": "Directory", "location": "https://x/catalog.json"},
        "cats": [
            {"class": "Directory", "location": "https://x/a/"},
            {"class": "File", "path": "s3://b/g.json"},
        ],
        "n": 1,
    }
    assert job_inputs(job) == {
        "cat": "https://x/catalog.json",
        "cats": ["https://x/a/", "s3://b/g.json"],
        "n": 1,
    }
    with pytest.raises(OgcApiError, match="http"):
        job_inputs({"cat": {"class": "Directory", "location": "/data/sample"}})


def test_cli_round_trip(server: OgcServer, tmp_path_factory: pytest.TempPathFactory) -> None:
    job = tmp_path_factory.mktemp("ogc") / "job.yml"
    job.write_text("".join(f"{k}: '{v}'\n" for k, v in CONVERT.items()))
    env = {"EOPACK_OGC_ENDPOINT": server.url, "EOPACK_OGC_TOKEN": "s3cret"}
    run = CliRunner(env=env).invoke
    href = find_package("convert-url").path.as_uri()
    deployed = run(cli, ["ogc", "deploy", "convert-url", "--href", href])
    assert deployed.exit_code == 0, deployed.output
    assert deployed.stdout.strip() == f"{server.url}/processes/convert-url"
    started = run(cli, ["ogc", "execute", "convert-url", str(job)])
    assert started.exit_code == 0, started.output
    job_id = json.loads(started.stdout)["jobID"]
    assert started.stdout and json.loads(started.stdout)["status"] == "running"
    statuses = [json.loads(run(cli, ["ogc", "status", job_id]).stdout)["status"] for _ in range(2)]
    assert statuses == ["successful", "successful"]
    results = run(cli, ["ogc", "results", job_id])
    assert results.exit_code == 0 and json.loads(results.stdout)
    waited = run(cli, ["ogc", "execute", "convert-url", str(job), "--wait"])
    assert waited.exit_code == 0 and all("href" in v for v in json.loads(waited.stdout).values())
    assert run(cli, ["ogc", "undeploy", "convert-url"]).exit_code == 0
    assert server.state.processes == {}


# --- jobs (Part 1 list, dismiss) and the deployed package (Part 2) ----------------------------


def test_jobs_list_filter_and_dismiss(server: OgcServer, client: OgcClient) -> None:
    client.deploy("convert-url", href=find_package("convert-url").path.as_uri())
    client.deploy("ndvi", cwl=find_package("ndvi").path)
    first = client.execute("convert-url", with_defaults(find_package("convert-url"), CONVERT))
    second = client.execute(
        "convert-url", with_defaults(find_package("convert-url"), {**CONVERT, "fn": "fail"})
    )
    client.wait(second["jobID"], interval=0)
    listed = {j["jobID"]: j["status"] for j in client.jobs()}
    assert listed == {first["jobID"]: "running", second["jobID"]: "failed"}
    assert [j["jobID"] for j in client.jobs(status="failed")] == [second["jobID"]]
    assert client.jobs(process_id="ndvi") == []
    assert server.state.requests[-1][1].endswith("/jobs?processID=ndvi")
    dismissed = client.dismiss(first["jobID"])
    assert dismissed["status"] == "dismissed" and server.state.requests[-1][0] == "DELETE"
    assert client.status(first["jobID"])["status"] == "dismissed"
    with pytest.raises(OgcApiError) as unknown:
        client.dismiss("no-such-job")
    assert unknown.value.status == 404


def test_package_as_cwl_and_as_ogcapppkg(server: OgcServer, client: OgcClient) -> None:
    pkg = find_package("ndvi")
    client.deploy("ndvi", cwl=pkg.path)
    assert client.package("ndvi") == pkg.path.read_text()
    assert server.state.requests[-1][2]["Accept"] == "application/cwl+yaml"
    wrapped = json.loads(client.package("ndvi", "application/ogcapppkg+json"))
    assert wrapped["executionUnit"]["value"] == pkg.path.read_text()
    href = find_package("convert-url").path.as_uri()
    client.deploy("convert-url", href=href)
    as_deployed = json.loads(client.package("convert-url", "application/ogcapppkg+json"))
    assert as_deployed == {"executionUnit": {"href": href, "type": "application/cwl"}}
    with pytest.raises(OgcApiError) as missing:
        client.package("geozarr")
    assert missing.value.status == 404


def test_cli_jobs_dismiss_and_package(server: OgcServer, tmp_path_factory: pytest.TempPathFactory) -> None:
    run = CliRunner(env={"EOPACK_OGC_ENDPOINT": server.url, "EOPACK_OGC_TOKEN": "s3cret"}).invoke
    assert run(cli, ["ogc", "deploy", "convert-url"]).exit_code == 0
    job = tmp_path_factory.mktemp("ogc") / "job.yml"
    job.write_text("".join(f"{k}: '{v}'\n" for k, v in CONVERT.items()))
    job_id = json.loads(run(cli, ["ogc", "execute", "convert-url", str(job)]).stdout)["jobID"]
    listed = run(cli, ["ogc", "jobs", "--process", "convert-url"])
    assert listed.exit_code == 0 and listed.stdout == f"{job_id}\trunning\tconvert-url\n"
    dismissed = run(cli, ["ogc", "dismiss", job_id])
    assert dismissed.exit_code == 0 and json.loads(dismissed.stdout)["status"] == "dismissed"
    assert run(cli, ["ogc", "jobs", "--status", "running"]).stdout == ""
    bad = run(cli, ["ogc", "jobs", "--status", "done"])
    assert bad.exit_code == 2 and "'done' is not one of" in bad.output
    cwl = run(cli, ["ogc", "package", "convert-url"])
    assert cwl.exit_code == 0 and cwl.stdout == find_package("convert-url").path.read_text()
    gone = run(cli, ["ogc", "package", "ndvi"])
    assert gone.exit_code == 1 and isinstance(gone.exception, OgcApiError)
    assert "HTTP 404" in str(gone.exception) and "\n" not in str(gone.exception)


# --- what a real ZOO-Project DRU answered (docs/interop.md), kept by the double ---------------


def test_zoo_deploy_answers_summary_location_and_409(server: OgcServer, client: OgcClient) -> None:
    import requests

    cwl = find_package("geozarr").path.read_bytes()
    url = f"{server.url}/processes"
    headers = {"Content-Type": "application/cwl+yaml", "Authorization": "Bearer s3cret"}
    created = requests.post(url, params={"w": "geozarr"}, data=cwl, headers=headers, timeout=10)
    assert created.status_code == 201
    assert created.headers["Location"] == f"{server.url}/processes/geozarr"
    assert created.json()["id"] == "geozarr" and "processSummary" not in created.json()
    again = requests.post(url, params={"w": "geozarr"}, data=cwl, headers=headers, timeout=10)
    assert again.status_code == 409
    assert again.json()["type"].endswith("/ogcapi-processes-2/1.0/duplicated-process")
    replaced = requests.put(f"{url}/geozarr", params={"w": "geozarr"}, data=cwl, headers=headers, timeout=10)
    assert replaced.status_code == 204
    assert requests.delete(f"{url}/geozarr", headers=headers, timeout=10).status_code == 204
    unknown = requests.get(f"{url}/geozarr", headers=headers, timeout=10)
    assert unknown.status_code == 404 and unknown.json()["type"].endswith("no-such-process")


def test_zoo_execute_is_async_only_and_starts_running(server: OgcServer, client: OgcClient) -> None:
    client.deploy("convert-url", cwl=find_package("convert-url").path)
    inputs = with_defaults(find_package("convert-url"), CONVERT)
    with pytest.raises(OgcApiError) as sync:
        client.execute("convert-url", inputs, sync=True)
    assert sync.value.status == 500 and "synchronous mode is not allowed" in str(sync.value)
    job = client.execute("convert-url", inputs)
    _, path, headers, _ = server.state.requests[-1]
    assert headers["Prefer"] == "respond-async" and path.endswith("/processes/convert-url/execution")
    assert job["status"] == "running"
    with pytest.raises(OgcApiError) as no_job:
        client.status("nope")
    assert no_job.value.status == 404 and "no such job" in str(no_job.value)


def test_zoo_defaults_are_sent_because_a_default_does_not_make_an_input_optional(
    server: OgcServer, client: OgcClient
) -> None:
    """ZOO's DRU describes ``dask_report: boolean, default: false`` as required (minOccurs 1)."""
    pkg = find_package("convert-url")
    client.deploy("convert-url", cwl=pkg.path)
    assert client.process("convert-url")["inputs"]["dask_report"]["minOccurs"] == 1
    with pytest.raises(OgcApiError) as omitted:
        client.execute("convert-url", CONVERT)
    assert omitted.value.status == 400 and "dask_report" in str(omitted.value)
    assert with_defaults(pkg, CONVERT)["dask_report"] is False
    assert client.execute("convert-url", with_defaults(pkg, CONVERT))["status"] == "running"


def test_zoo_directory_inputs_travel_by_value(
    server: OgcServer, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """``eopack ogc execute`` sends a Directory input as the URL string its description declares."""
    catalog = "http://stac.example.org/staged/catalog.json"
    job = tmp_path_factory.mktemp("ogc") / "job.yml"
    job.write_text(
        f"input_catalog: {{class: Directory, location: '{catalog}'}}\n"
        "aoi: '11.4,46.5,11.5,46.6'\nstart_date: '2024-06-01'\nend_date: '2024-07-31'\n"
    )
    run = CliRunner(env={"EOPACK_OGC_ENDPOINT": server.url, "EOPACK_OGC_TOKEN": "s3cret"}).invoke
    assert run(cli, ["ogc", "deploy", "ndvi"]).exit_code == 0
    assert server.state.processes["ndvi"]["inputs"]["input_catalog"]["schema"] == {
        "type": "string",
        "format": "uri",
    }
    started = run(cli, ["ogc", "execute", "ndvi", str(job)])
    assert started.exit_code == 0, started.output
    sent = json.loads(server.state.requests[-1][3])["inputs"]
    assert sent["input_catalog"] == catalog
    assert sent["collection"] == "sentinel-2-l2a" and sent["dask_report"] is False  # defaults, explicit
    with pytest.raises(OgcApiError) as by_reference:
        OgcClient(server.url, token="s3cret").execute("ndvi", {**sent, "input_catalog": {"href": catalog}})
    assert by_reference.value.status == 400 and "by value" in str(by_reference.value)
