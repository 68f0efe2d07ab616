"""The local STAC API stack, for real: pgstac search semantics, pystac-client, Range on assets, lifecycle.

One stack serves the whole session (fixture ``stac_api`` in tests/conftest.py); the test that stops
it comes last in this file. Expected search results are computed independently from the static
catalog with pystac, never from the server.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pystac
import pytest
import requests
from pystac_client import Client

from eopack.errors import ServiceUnavailableError
from eopack.services import _proc, stac
from eopack.services.stac import StacStack, down, read_catalog, status, up

EOPACK = [sys.executable, "-m", "eopack"]
stacapi = pytest.mark.stacapi


@dataclass(frozen=True)
class Query:
    """One search and the ids a correct server must return for it."""

    collection: str
    bbox: list[float]
    start: datetime
    end: datetime
    max_cloud: float
    expected: set[str]

    @property
    def interval(self) -> str:
        return f"{self.start:%Y-%m-%dT%H:%M:%SZ}/{self.end:%Y-%m-%dT%H:%M:%SZ}"

    @property
    def cql2(self) -> dict[str, Any]:
        return {"op": "<=", "args": [{"property": "eo:cloud_cover"}, self.max_cloud]}


def _static_items(data_dir: Path) -> list[pystac.Item]:
    return list(pystac.Catalog.from_file(str(data_dir / "catalog.json")).get_items(recursive=True))


def _bboxes_intersect(a: list[float], b: list[float]) -> bool:
    return a[0] <= b[2] and b[0] <= a[2] and a[1] <= b[3] and b[1] <= a[3]


@pytest.fixture(scope="module")
def query(stac_data: Path) -> Query:
    """A search that selects a proper subset: a small box at the clearest scene's centre, ±20 days, cloud
    cover <= the median. A small box far from footprint edges keeps "bbox intersects" (computed here
    from item bboxes) and pgstac's geometry intersection in agreement for rotated UTM footprints.
    """
    items = _static_items(stac_data)
    ref = min(items, key=lambda i: (i.properties["eo:cloud_cover"], i.id))
    assert ref.datetime is not None and ref.bbox is not None and ref.collection_id is not None
    lon, lat = (ref.bbox[0] + ref.bbox[2]) / 2, (ref.bbox[1] + ref.bbox[3]) / 2
    box = [lon - 0.01, lat - 0.01, lon + 0.01, lat + 0.01]
    start, end = ref.datetime - timedelta(days=20), ref.datetime + timedelta(days=20)
    max_cloud = statistics.median(i.properties["eo:cloud_cover"] for i in items)
    expected = {
        i.id
        for i in items
        if i.collection_id == ref.collection_id
        and i.bbox is not None
        and _bboxes_intersect(i.bbox, box)
        and i.datetime is not None
        and start <= i.datetime <= end
        and i.properties["eo:cloud_cover"] <= max_cloud
    }
    assert ref.id in expected and len(expected) < len(items), "the query must select a proper subset"
    return Query(ref.collection_id, box, start, end, max_cloud, expected)


@pytest.fixture
def http() -> requests.Session:
    """requests without proxy settings: every URL here is loopback."""
    session = requests.Session()
    session.trust_env = False
    return session


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*EOPACK, *args], capture_output=True, text=True, check=False, timeout=300)


def test_read_catalog_publishes_assets_and_drops_file_links(stac_data: Path) -> None:
    content = read_catalog(stac_data / "catalog.json", "http://127.0.0.1:1")
    assert content.items and content.collections
    for item in content.items:
        for asset in item["assets"].values():
            assert asset["href"].startswith("http://127.0.0.1:1/")
            local = stac_data / asset["href"].removeprefix("http://127.0.0.1:1/")
            assert local.is_file(), f"{asset['href']} does not map back to a file"
        assert all(link["href"].startswith("http") for link in item["links"])


def test_missing_binaries_name_the_apt_packages(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(stac, "_pg_bindir", lambda: None)
    monkeypatch.setattr(stac, "_nginx", lambda: None)
    with pytest.raises(ServiceUnavailableError) as caught:
        up(tmp_path / "data", tmp_path / "state")
    assert "postgresql-15" in caught.value.reason and "apt package nginx" in caught.value.reason
    assert "make setup" in caught.value.fix and not (tmp_path / "state" / "pgdata").exists()


@stacapi
def test_post_search_returns_exactly_the_expected_items(
    stac_api: StacStack, query: Query, http: requests.Session
) -> None:
    body = {
        "collections": [query.collection],
        "bbox": query.bbox,
        "datetime": query.interval,
        "filter-lang": "cql2-json",
        "filter": query.cql2,
        "limit": 100,
    }
    response = http.post(f"{stac_api.api_url}/search", json=body, timeout=30)
    assert response.status_code == 200, response.text
    page = response.json()
    assert {f["id"] for f in page["features"]} == query.expected
    assert page["numberMatched"] == len(query.expected)
    assert len(page["features"]) == len(query.expected)


@stacapi
def test_pystac_client_search_gives_the_same_ids(
    stac_api: StacStack, query: Query, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    client = Client.open(stac_api.api_url)
    search = client.search(
        collections=[query.collection],
        bbox=query.bbox,
        datetime=query.interval,
        filter=query.cql2,
        filter_lang="cql2-json",
        limit=2,  # forces paging, so "next" links must work too
    )
    assert {item.id for item in search.items()} == query.expected


@stacapi
def test_asset_from_a_search_result_answers_range_requests(
    stac_api: StacStack, query: Query, http: requests.Session
) -> None:
    found = http.post(
        f"{stac_api.api_url}/search", json={"ids": sorted(query.expected)[:1]}, timeout=30
    ).json()
    asset = next(a for a in found["features"][0]["assets"].values() if "data" in a.get("roles", []))
    assert asset["href"].startswith(stac_api.assets_url + "/")
    local = stac_api.data_dir / asset["href"].removeprefix(stac_api.assets_url + "/")
    data = local.read_bytes()
    first, last = 100, min(1123, len(data) - 1)
    response = http.get(asset["href"], headers={"Range": f"bytes={first}-{last}"}, timeout=30)
    assert response.status_code == 206
    assert response.headers["Content-Range"] == f"bytes {first}-{last}/{len(data)}"
    assert response.content == data[first : last + 1]


@stacapi
def test_status_json_shows_every_component_up(stac_api: StacStack) -> None:
    proc = _cli("stac", "status", "--json", "--state-dir", str(stac_api.state_dir))
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["up"] is True
    assert {name: c["pid"] for name, c in report["components"].items()} == stac_api.pids
    assert report["components"]["api"]["url"] == stac_api.api_url


@stacapi
def test_up_twice_reuses_the_running_stack(stac_api: StacStack) -> None:
    again = up(stac_api.data_dir, stac_api.state_dir)
    assert again.pids == stac_api.pids and again.api_url == stac_api.api_url
    proc = _cli("stac", "up", "--data", str(stac_api.data_dir), "--state-dir", str(stac_api.state_dir))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == stac_api.api_url
    assert {c.name: c.pid for c in status(stac_api.state_dir).components} == stac_api.pids


@stacapi
def test_taken_port_is_a_clear_error_and_starts_nothing(stac_api: StacStack) -> None:
    taken = int(stac_api.api_url.rsplit(":", 1)[1])
    state_dir = Path(tempfile.mkdtemp(prefix="eopack-stac-taken-"))
    free = [_proc.free_port(), _proc.free_port()]
    try:
        with pytest.raises(ServiceUnavailableError) as caught:
            up(stac_api.data_dir, state_dir, pg_port=free[0], api_port=taken, assets_port=free[1])
        assert f"port {taken}" in str(caught.value) and "already in use" in caught.value.reason
        assert "--api-port" in caught.value.fix
        assert not (state_dir / "pgdata").exists() and not _proc.processes_under(state_dir)
    finally:
        shutil.rmtree(state_dir, ignore_errors=True)


@stacapi
def test_down_leaves_no_process_and_status_says_down(stac_api: StacStack) -> None:
    """Stops the session's stack and brings it back, so later test files still have it."""
    down(stac_api.state_dir)
    names = {"postgres", "nginx"}
    left = [p for p in _proc.processes_under(stac_api.state_dir) if p.name in names or "uvicorn" in p.cmdline]
    assert left == []
    assert not any(_proc.pid_alive(pid) for pid in stac_api.pids.values())
    assert not _proc.port_in_use(int(stac_api.api_url.rsplit(":", 1)[1]))
    report = status(stac_api.state_dir)
    assert not report.up and not any(c.up for c in report.components)
    down(stac_api.state_dir)  # idempotent
    proc = _cli("stac", "status", "--json", "--state-dir", str(stac_api.state_dir))
    assert proc.returncode == 3 and json.loads(proc.stdout)["up"] is False
    assert os.path.isdir(stac_api.state_dir / "pgdata"), "down keeps the database for the next up"
    again = up(stac_api.data_dir, stac_api.state_dir)  # same ports: they are remembered in the state dir
    assert again.api_url == stac_api.api_url and status(stac_api.state_dir).up


@pytest.mark.skipif(os.geteuid() != 0, reason="only root runs PostgreSQL as another user (postgres)")
def test_a_checkout_closed_to_postgres_keeps_its_stack_in_var_lib(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A clone under /root (or any mode-700 folder): `eopack stac up` still works with no --state-dir."""
    from eopack.services.stac import default_state_dir

    closed = tmp_path / "closed"
    (closed / "x" / "app-packages").mkdir(parents=True)
    closed.chmod(0o700)
    monkeypatch.setenv("EOPACK_HOME", str(closed / "x"))
    state = default_state_dir()
    assert state.parent == Path("/var/lib/eopack") and state.name.startswith("stac-")
    monkeypatch.setenv("EOPACK_HOME", str(Path(__file__).resolve().parents[1]))
    assert default_state_dir() != state  # one per checkout
