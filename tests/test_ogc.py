"""The OGC API Processes client (``eopack ogc ...``) against a protocol-following double of ZOO-Project.

The double (tests/support/ogc_server.py) plays seed 001's exchanges: deploy (201 + Location),
execute with ``Prefer: respond-async`` (201 + Location /jobs/{id}), status values, results document,
undeploy. Real ZOO-Project cannot run here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from click.testing import CliRunner

from eopack.clients.ogc import JOB_STATUSES, OgcApiError, OgcClient
from eopack.commands import cli
from eopack.ogc import job_inputs
from eopack.package import find_package
from tests.support.ogc_server import OgcServer

CONVERT = {
    "fn": "resize",
    "url": "https://eoepca.org/media_portal/images/logo6_med.original.png",
    "size": "50%",
}


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
    assert (method, headers["Content-Type"]) == ("POST", "application/json")
    assert json.loads(body) == {"executionUnit": {"href": pkg.path.as_uri(), "type": "application/cwl"}}
    assert headers["Authorization"] == "Bearer s3cret"
    assert [p["id"] for p in client.processes()] == ["convert-url"]
    assert client.process("convert-url")["title"] == pkg.label

    job = client.execute("convert-url", CONVERT)
    assert job["status"] == "accepted" and job["processID"] == "convert-url"
    assert server.state.requests[-1][2]["Prefer"] == "respond-async"
    with pytest.raises(OgcApiError) as not_ready:
        client.results(job["jobID"])
    assert not_ready.value.status == 404 and "result not ready" in str(not_ready.value)
    seen = [client.status(job["jobID"])["status"] for _ in range(3)]
    assert seen == ["running", "successful", "successful"] and set(seen) <= set(JOB_STATUSES)
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
    job = client.execute("convert-url", {**CONVERT, "fn": "fail"})
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


def test_job_inputs_need_urls_for_files() -> None:
    assert job_inputs({"cat": {"class": "Directory", "location": "https://x/catalog.json"}, "n": 1}) == {
        "cat": {"href": "https://x/catalog.json"},
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
    statuses = [json.loads(run(cli, ["ogc", "status", job_id]).stdout)["status"] for _ in range(2)]
    assert statuses == ["running", "successful"]
    results = run(cli, ["ogc", "results", job_id])
    assert results.exit_code == 0 and json.loads(results.stdout)
    waited = run(cli, ["ogc", "execute", "convert-url", str(job), "--wait"])
    assert waited.exit_code == 0 and all("href" in v for v in json.loads(waited.stdout).values())
    assert run(cli, ["ogc", "undeploy", "convert-url"]).exit_code == 0
    assert server.state.processes == {}
