"""Issue 21 #3 and #16: `eopack publish` stays inside its folders, and says how far it got.

#3: item/collection/catalog ids become folder and URL parts, and asset hrefs name files to copy into
the served folder; ids outside a safe character set and assets outside their item's folder (absolute
hrefs, ``..``, symlinks) are refused before anything is copied or sent.
#16: a STAC API that fails part-way leaves "N of M items published; re-run to finish".
The API is a small stub server (the failures cannot be provoked on the real stack on demand).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from eopack.publish import LocalAssets, PublishUsageError, read_run
from eopack.services import _proc

ROOT = Path(__file__).resolve().parents[1]


def _catalog(folder: Path, n_items: int = 2) -> Path:
    """A valid STAC 1.1.0 catalog of ``n_items`` items with one small data file each."""
    folder.mkdir(parents=True)
    links = [{"rel": "root", "href": "./catalog.json", "type": "application/json"}]
    for i in range(n_items):
        item_id = f"tiny-{i}"
        (folder / item_id).mkdir()
        (folder / item_id / "data.bin").write_bytes(bytes(range(256)))
        x = 10.0 + i / 10
        item = {
            "type": "Feature", "stac_version": "1.1.0", "id": item_id,
            "geometry": {"type": "Polygon", "coordinates": [[[x, 45], [x + 0.1, 45], [x + 0.1, 45.1], [x, 45]]]},
            "bbox": [x, 45.0, x + 0.1, 45.1],
            "properties": {"datetime": "2024-01-01T00:00:00Z"},
            "links": [
                {"rel": "root", "href": "../catalog.json", "type": "application/json"},
                {"rel": "parent", "href": "../catalog.json", "type": "application/json"},
            ],
            "assets": {"data": {"href": "./data.bin", "type": "application/octet-stream", "roles": ["data"]}},
        }  # fmt: skip
        (folder / item_id / f"{item_id}.json").write_text(json.dumps(item))
        links.append({"rel": "item", "href": f"./{item_id}/{item_id}.json", "type": "application/geo+json"})
    catalog = {"type": "Catalog", "stac_version": "1.1.0", "id": "tiny", "description": "t", "links": links}
    (folder / "catalog.json").write_text(json.dumps(catalog))
    return folder


def _edit(path: Path, **changes: Any) -> None:
    doc = json.loads(path.read_text())
    doc.update(changes)
    path.write_text(json.dumps(doc))


def _set_href(item: Path, href: str) -> None:
    doc = json.loads(item.read_text())
    doc["assets"]["data"]["href"] = href
    item.write_text(json.dumps(doc))


def _publish(folder: Path, api: str, pub: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "eopack", "publish", str(folder), "--stac-api", api,
         "--assets-dir", str(pub), "--assets-url", "http://127.0.0.1:9/pub", *extra],
        capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip


class _Api(BaseHTTPRequestHandler):
    """A STAC API with transactions that accepts ``accept`` items, then answers 500."""

    accept = 10**6
    posts: list[str]

    def _send(self, code: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path == "/":
            self._send(200, {"type": "Catalog", "id": "stub", "links": []})
        else:
            self._send(404, {"code": "NotFoundError"})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        if self.path == "/collections":
            self._send(201, body)
            return
        if len(self.posts) >= self.accept:
            self._send(500, {"detail": "database is gone"})
            return
        self.posts.append(str(body.get("id")))
        self._send(201, body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def api(request: pytest.FixtureRequest) -> Iterator[tuple[str, list[str]]]:
    posts: list[str] = []
    accept = getattr(request, "param", 10**6)
    handler = type("Handler", (_Api,), {"accept": accept, "posts": posts})
    server = ThreadingHTTPServer((_proc.LOOPBACK, 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://{_proc.LOOPBACK}:{server.server_address[1]}", posts
    finally:
        server.shutdown()
        server.server_close()


def _victim(tmp_path: Path) -> Path:
    victim = tmp_path / "private" / "id_secret"
    victim.parent.mkdir()
    victim.write_bytes(b"PRIVATE-KEY")
    os.chmod(victim, 0o600)
    return victim


def _files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


@pytest.mark.parametrize("how", ["absolute", "dotdot", "file-url", "symlink"])
def test_an_asset_outside_its_item_folder_is_refused_before_any_copy(
    tmp_path: Path, api: tuple[str, list[str]], how: str
) -> None:
    folder = _catalog(tmp_path / "cat")
    victim = _victim(tmp_path)
    item = folder / "tiny-1" / "tiny-1.json"
    if how == "absolute":
        _set_href(item, str(victim))
    elif how == "dotdot":
        _set_href(item, "../../private/id_secret")
    elif how == "file-url":
        _set_href(item, victim.as_uri())
    else:
        (folder / "tiny-1" / "data.bin").unlink()
        (folder / "tiny-1" / "data.bin").symlink_to(victim)
    pub = tmp_path / "pub"
    proc = _publish(folder, api[0], pub)
    assert proc.returncode != 0
    assert "asset_outside_item" in proc.stderr, proc.stderr
    assert _files(pub) == [], "nothing may be copied"
    assert api[1] == [], "nothing may be sent"


@pytest.mark.parametrize("bad", ["../../x", "/abs/x", "a/b", "..", ".hidden", "a b"])
def test_unsafe_item_ids_are_refused_before_any_copy(
    tmp_path: Path, api: tuple[str, list[str]], bad: str
) -> None:
    folder = _catalog(tmp_path / "cat")
    _edit(folder / "tiny-0" / "tiny-0.json", id=bad)
    pub = tmp_path / "pub"
    proc = _publish(folder, api[0], pub)
    assert proc.returncode != 0 and "id_charset" in proc.stderr, proc.stderr
    assert _files(pub) == [] and api[1] == []
    assert not (tmp_path / "x").exists() and not Path("/abs/x").exists()


def test_unsafe_catalog_and_collection_ids_are_refused(tmp_path: Path, api: tuple[str, list[str]]) -> None:
    folder = _catalog(tmp_path / "cat")
    _edit(folder / "catalog.json", id="../../escape")
    assert any(p.rule == "id_charset" for p in read_run(folder).problems)
    _edit(folder / "catalog.json", id="tiny")
    pub = tmp_path / "pub"
    proc = _publish(folder, api[0], pub, "--collection", "../../escape")
    assert proc.returncode != 0 and "id_charset" in proc.stderr, proc.stderr
    assert _files(pub) == [] and not (tmp_path / "escape").exists()


def test_local_assets_never_place_outside_their_folder(tmp_path: Path) -> None:
    target = LocalAssets(tmp_path / "pub", "http://h/pub")
    with pytest.raises(PublishUsageError, match="outside"):
        target.place("c", "../../x", "data", tmp_path / "f", "f")
    with pytest.raises(PublishUsageError, match="outside"):
        target.place("c", "i", "data", tmp_path / "f", "../../f")


def test_a_safe_catalog_publishes(tmp_path: Path, api: tuple[str, list[str]]) -> None:
    """The same checks let an ordinary run through (the tests above cannot pass by refusing all)."""
    folder = _catalog(tmp_path / "cat", 3)
    proc = _publish(folder, api[0], tmp_path / "pub")
    assert proc.returncode == 0, proc.stderr
    assert sorted(api[1]) == ["tiny-0", "tiny-1", "tiny-2"]
    assert len(_files(tmp_path / "pub")) == 3


@pytest.mark.parametrize("api", [3], indirect=True)
def test_a_failure_part_way_says_how_many_were_published(tmp_path: Path, api: tuple[str, list[str]]) -> None:
    folder = _catalog(tmp_path / "cat", 10)
    proc = _publish(folder, api[0], tmp_path / "pub")
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert "3 of 10 items published; re-run the same command to finish" in last, proc.stderr
    assert "500" in last or "database is gone" in last
    assert "Traceback" not in proc.stderr
