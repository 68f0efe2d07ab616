"""`eopack publish` and `eopack run --publish` against the real local STAC API (issue 14).

The NDVI app runs once for the module, with ``--publish``, so the end-to-end path is also the
fixture; the other tests re-publish that run or corrupted copies of it. Expected ids come from the
run's files, never from the server. Failure cases that need no real API (closed port, read-only
API) use a tiny hand-written catalog and a stub server, so they run even without the stack.
"""

from __future__ import annotations

import json
import shutil
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from eopack.publish import PublishInvalidError, TemplateAssets, read_run
from eopack.services import _proc
from eopack.services.stac import StacStack, status, up
from eopack_cli import Eopack

stacapi = pytest.mark.stacapi
NDVI_COLLECTION = "ndvi"  # the NDVI run's catalog id: the default target collection


@pytest.fixture(scope="module")
def http() -> requests.Session:
    """requests without proxy settings: every URL here is loopback."""
    session = requests.Session()
    session.trust_env = False
    return session


@pytest.fixture(scope="module")
def stack(stac_api: StacStack) -> StacStack:
    """The session's stack, restarted if a test file that ran earlier stopped it (`up` is idempotent)."""
    if not status(stac_api.state_dir).up:
        return up(stac_api.data_dir, stac_api.state_dir)
    return stac_api


@pytest.fixture(scope="module")
def published_run(
    eopack: Eopack, stack: StacStack, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, str]:
    """`eopack run ndvi --publish API` once: (run dir, stdout)."""
    run_dir = tmp_path_factory.mktemp("publish") / "ndvi-run"
    proc = eopack("run", "ndvi", "-q", "--outdir", run_dir, "--publish", stack.api_url)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return run_dir, proc.stdout


def _run_items(run_dir: Path) -> dict[str, dict[str, Any]]:
    """The items the run wrote, by id (read from its files)."""
    docs = (json.loads(p.read_text()) for p in run_dir.glob("ndvi_results/*/*.json"))
    return {d["id"]: d for d in docs if d.get("type") == "Feature"}


def _search(http: requests.Session, api: str, **body: Any) -> dict[str, Any]:
    response = http.post(f"{api}/search", json={"limit": 100, **body}, timeout=30)
    assert response.status_code == 200, response.text
    return dict(response.json())


def _count(http: requests.Session, api: str, **body: Any) -> int:
    return int(_search(http, api, **body)["numberMatched"])


# ------------------------------------------------------------------ end to end on the real stack


@stacapi
def test_run_with_publish_prints_the_catalog_the_collection_then_its_browser_page(
    published_run: tuple[Path, str], stack: StacStack
) -> None:
    run_dir, stdout = published_run
    lines = stdout.strip().splitlines()
    assert stack.browser, "STAC Browser is not built: `make setup` runs scripts/stac-browser.sh"
    assert lines[-3] == str(run_dir / "ndvi_results" / "catalog.json")
    assert lines[-2] == f"{stack.api_url}/collections/{NDVI_COLLECTION}"
    assert lines[-1] == f"{stack.browser}collections/{NDVI_COLLECTION}"


@stacapi
def test_published_items_are_found_by_bbox_and_datetime_with_their_assets_served(
    published_run: tuple[Path, str], stack: StacStack, http: requests.Session
) -> None:
    run_dir, _ = published_run
    expected = _run_items(run_dir)
    assert len(expected) >= 4
    found = _search(
        http,
        stack.api_url,
        collections=[NDVI_COLLECTION],
        bbox=[11.42, 46.52, 11.48, 46.58],
        datetime="2024-06-01T00:00:00Z/2024-07-31T23:59:59Z",
    )
    assert {f["id"] for f in found["features"]} == set(expected)
    for feature in found["features"]:
        item_dir = run_dir / "ndvi_results" / feature["id"]
        for key, asset in feature["assets"].items():
            assert asset["href"].startswith(f"{stack.assets_url}/published/{NDVI_COLLECTION}/")
            local = (item_dir / expected[feature["id"]]["assets"][key]["href"]).read_bytes()
            response = http.get(asset["href"], headers={"Range": "bytes=0-99"}, timeout=30)
            assert response.status_code == 206, asset["href"]
            assert response.content == local[:100]
            assert http.head(asset["href"], timeout=30).status_code == 200
        assert not [link for link in feature["links"] if link["href"].startswith("/var/lib/cwl")], (
            "container-local links must not be published"
        )


@stacapi
def test_publishing_twice_updates_and_never_duplicates(
    eopack: Eopack, published_run: tuple[Path, str], stack: StacStack, http: requests.Session
) -> None:
    run_dir, _ = published_run
    n_items = len(_run_items(run_dir))
    before_total = _count(http, stack.api_url)
    for _ in range(2):
        proc = eopack("publish", run_dir, "--stac-api", stack.api_url)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert f"published {n_items} items (0 created, {n_items} updated)" in proc.stderr
        assert _count(http, stack.api_url, collections=[NDVI_COLLECTION]) == n_items
    assert _count(http, stack.api_url) == before_total


def _corrupt_datetime(item: Path) -> None:
    doc = json.loads(item.read_text())
    del doc["properties"]["datetime"]
    item.write_text(json.dumps(doc))


def _corrupt_json(item: Path) -> None:
    item.write_text(item.read_text()[:-40])


@stacapi
@pytest.mark.parametrize(
    ("corrupt", "rule"),
    [(_corrupt_datetime, "item_datetime"), (_corrupt_json, "json")],
    ids=["datetime", "json"],
)
def test_a_corrupted_item_publishes_nothing_and_names_file_and_rule(
    eopack: Eopack,
    published_run: tuple[Path, str],
    stack: StacStack,
    http: requests.Session,
    tmp_path: Path,
    corrupt: Any,
    rule: str,
) -> None:
    run_dir, _ = published_run
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    broken = sorted(copy.glob("ndvi_results/*/ndvi-*.json"))[-1]
    corrupt(broken)
    collection = f"corrupt-{rule.replace('_', '-')}"
    before = _count(http, stack.api_url)
    proc = eopack("publish", copy, "--stac-api", stack.api_url, "--collection", collection)
    assert proc.returncode == 2
    error = proc.stderr.strip().splitlines()[-1]
    assert str(broken) in error and f": {rule}:" in error and "Nothing was published" in error
    assert _count(http, stack.api_url) == before
    assert http.get(f"{stack.api_url}/collections/{collection}", timeout=30).status_code == 404
    published = stack.state_dir / "published" / collection
    assert not published.exists(), "no asset may be copied when validation fails"


# ------------------------------------------------------------------ a tiny catalog for the rest


def _tiny_catalog(folder: Path, n_items: int = 2) -> Path:
    """A valid STAC 1.1.0 catalog of ``n_items`` items with one small data file each."""
    folder.mkdir(parents=True)
    links = [{"rel": "root", "href": "./catalog.json", "type": "application/json"}]
    for i in range(n_items):
        item_id = f"tiny-{i}"
        (folder / item_id).mkdir()
        (folder / item_id / "data.bin").write_bytes(bytes(range(256)) * (i + 1))
        x = 10.0 + i
        item = {
            "type": "Feature",
            "stac_version": "1.1.0",
            "id": item_id,
            "geometry": {
                "type": "Polygon",
                "coordinates": [[[x, 45], [x + 0.1, 45], [x + 0.1, 45.1], [x, 45]]],
            },
            "bbox": [x, 45.0, x + 0.1, 45.1],
            "properties": {"datetime": f"2024-01-0{i + 1}T00:00:00Z"},
            "links": [
                {"rel": "root", "href": "../catalog.json", "type": "application/json"},
                {"rel": "parent", "href": "../catalog.json", "type": "application/json"},
            ],
            "assets": {
                "data": {"href": "./data.bin", "type": "application/octet-stream", "roles": ["data"]},
            },
        }
        (folder / item_id / f"{item_id}.json").write_text(json.dumps(item))
        links.append({"rel": "item", "href": f"./{item_id}/{item_id}.json", "type": "application/geo+json"})
    catalog = {
        "type": "Catalog",
        "stac_version": "1.1.0",
        "id": "tiny",
        "description": "two items for the publish tests",
        "links": links,
    }
    (folder / "catalog.json").write_text(json.dumps(catalog))
    return folder


def test_validation_runs_stac_validator_offline_and_the_house_rules(tmp_path: Path) -> None:
    folder = _tiny_catalog(tmp_path / "cat")
    content = read_run(folder)
    assert content.problems == [] and content.items == 2
    assert "core item v1.1.0" in content.checked and "core catalog v1.1.0" in content.checked
    item = folder / "tiny-1" / "tiny-1.json"
    doc = json.loads(item.read_text())
    doc["assets"]["data"]["href"] = "./gone.bin"
    doc["assets"]["data"].pop("type")
    doc["bbox"] = "not a box"
    item.write_text(json.dumps(doc))
    rules = {(Path(p.path).name, p.rule) for p in read_run(folder).problems}
    assert {
        ("tiny-1.json", "asset_href"),
        ("tiny-1.json", "asset_type"),
        ("tiny-1.json", "stac_schema"),
    } <= rules


def test_schema_map_validates_an_extension_offline_and_never_downloads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A local copy of an extension schema is used; a $ref to the web is reported, not fetched."""

    def no_network(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"validation tried the network: {args[:2]}")

    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    folder = _tiny_catalog(tmp_path / "cat")
    ext = "https://stac-extensions.github.io/example/v1.0.0/schema.json"
    for item in folder.glob("tiny-*/tiny-*.json"):
        doc = json.loads(item.read_text())
        item.write_text(json.dumps({**doc, "stac_extensions": [ext]}))
    strict = tmp_path / "strict.json"
    strict.write_text(
        json.dumps(
            {
                "$id": ext,
                "required": ["properties"],
                "properties": {"properties": {"required": ["example:x"]}},
            }
        )
    )
    content = read_run(folder, schema_map={ext: str(strict)})
    assert {p.rule for p in content.problems} == {"stac_extension_schema"} and ext in content.checked
    assert "'example:x' is a required property" in content.problems[0].message
    remote = tmp_path / "remote.json"
    remote.write_text(json.dumps({"$id": ext, "allOf": [{"$ref": "https://unreachable.invalid/s.json"}]}))
    content = read_run(folder, schema_map={ext: str(remote)})
    assert content.problems == []
    assert content.unchecked == {f"{ext} (needs https://unreachable.invalid/s.json)"}


def test_a_dangling_item_link_is_an_error(tmp_path: Path) -> None:
    folder = _tiny_catalog(tmp_path / "cat")
    shutil.rmtree(folder / "tiny-0")
    with pytest.raises(PublishInvalidError) as caught:
        from eopack.publish import publish

        publish(folder, "http://127.0.0.1:1", target=TemplateAssets("s3://b/{item}/{asset}"))
    assert caught.value.problems[0].rule == "link_href"
    assert "catalog.json" in str(caught.value) and "tiny-0.json" in str(caught.value)


def test_unreachable_api_is_one_clear_line(eopack: Eopack, tmp_path: Path) -> None:
    folder = _tiny_catalog(tmp_path / "cat")
    port = _proc.free_port()
    proc = eopack(
        "publish",
        folder,
        "--stac-api",
        f"http://127.0.0.1:{port}",
        "--assets-url-template",
        "s3://b/{item}/{asset}",
    )
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines()[-1] == (
        f"eopack: error: STAC API http://127.0.0.1:{port} is not available: GET / failed: connection refused. "
        "Start it (`eopack stac up`) or check the --stac-api URL."
    )


class _ReadOnlyApi(BaseHTTPRequestHandler):
    """A STAC API without the Transactions extension: GETs work, POST/PUT answer 405."""

    declare_conformance = False

    def _send(self, code: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path == "/":
            landing: dict[str, Any] = {"type": "Catalog", "id": "ro", "links": []}
            if self.declare_conformance:
                landing["conformsTo"] = ["https://api.stacspec.org/v1.0.0/core"]
            self._send(200, landing)
        else:
            self._send(404, {"code": "NotFoundError"})

    def do_POST(self) -> None:
        self._send(405, {"detail": "Method Not Allowed"})

    do_PUT = do_POST

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(params=[False, True], ids=["post-405", "no-conformance"])
def read_only_api(request: pytest.FixtureRequest) -> Iterator[str]:
    handler = type("Handler", (_ReadOnlyApi,), {"declare_conformance": request.param})
    server = ThreadingHTTPServer((_proc.LOOPBACK, 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{_proc.LOOPBACK}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_transactions_disabled_is_one_clear_line(eopack: Eopack, read_only_api: str, tmp_path: Path) -> None:
    folder = _tiny_catalog(tmp_path / "cat")
    proc = eopack(
        "publish",
        folder,
        "--stac-api",
        read_only_api,
        "--assets-dir",
        tmp_path / "pub",
        "--assets-url",
        "http://127.0.0.1:9/pub",
    )
    assert proc.returncode != 0
    error = proc.stderr.strip().splitlines()[-1]
    assert "does not accept transactions" in error and "ENABLE_TRANSACTIONS_EXTENSIONS=true" in error


@stacapi
def test_url_template_rewrites_hrefs_and_prints_what_to_upload(
    eopack: Eopack, stack: StacStack, http: requests.Session, tmp_path: Path
) -> None:
    folder = _tiny_catalog(tmp_path / "cat")
    template = "s3://bucket/{collection}/{item}/{asset}"
    proc = eopack(
        "publish",
        folder,
        "--stac-api",
        stack.api_url,
        "--collection",
        "tiny-s3",
        "--assets-url-template",
        template,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    uploads = [line.split() for line in proc.stdout.splitlines() if line.startswith("upload ")]
    assert sorted(u[1:] for u in uploads) == [
        [str(folder / f"tiny-{i}" / "data.bin"), f"s3://bucket/tiny-s3/tiny-{i}/data.bin"] for i in range(2)
    ]
    found = _search(http, stack.api_url, collections=["tiny-s3"])
    assert {f["id"]: f["assets"]["data"]["href"] for f in found["features"]} == {
        f"tiny-{i}": f"s3://bucket/tiny-s3/tiny-{i}/data.bin" for i in range(2)
    }
    collection = http.get(f"{stack.api_url}/collections/tiny-s3", timeout=30).json()
    assert collection["extent"]["spatial"]["bbox"][0] == [10.0, 45.0, 11.1, 45.1]
    assert collection["extent"]["temporal"]["interval"][0] == ["2024-01-01T00:00:00Z", "2024-01-02T00:00:00Z"]
