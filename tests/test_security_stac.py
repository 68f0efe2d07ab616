"""Issue 21 #4 (b, c) and #17 on the real local STAC stack: what another local user or a web page
open in a browser on this machine can do to it.

(b) PostgreSQL: no trust, the socket private: a connection without the password is refused.
(c) STAC API: any page may read (CORS for GET), none may write: the preflight of a cross-site POST
    fails and a "simple" (text/plain) POST is refused, so nothing is created.
(17) the asset server lists no folders and takes no writes; files keep CORS for browser viewers.
(23) the tile server (titiler-pgstac) has no port: a unix socket in a private folder, reached through
     nginx's /tiles/ for reads only, without CORS *.
"""

from __future__ import annotations

import json
import os
import pwd
import stat
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest
import requests

from eopack.services.stac import StacStack, _others_can_read

EVIL = "http://evil.example"


@pytest.fixture(scope="module")
def stack(stac_api: StacStack) -> StacStack:
    return stac_api


def test_postgres_refuses_local_connections_without_the_password(stack: StacStack) -> None:
    port = urlsplit(stack.dsn).port
    sock = stack.state_dir / "pgsock"
    assert stat.S_IMODE(sock.stat().st_mode) == 0o700
    assert stat.S_IMODE((sock / f".s.PGSQL.{port}").stat().st_mode) == 0o700
    for host in (str(sock), "127.0.0.1"):
        with pytest.raises(psycopg.OperationalError, match="password"):
            psycopg.connect(host=host, port=port, user="stac", dbname="postgres", connect_timeout=5)
    assert "trust" not in (stack.state_dir / "pgdata" / "pg_hba.conf").read_text()
    password = json.loads((stack.state_dir / "stack.json").read_text())["password"]
    dsn = stack.dsn.replace("***", password)  # StacStack shows it masked
    with psycopg.connect(dsn, connect_timeout=5) as conn:  # the password still works
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_a_web_page_cannot_write_to_the_stac_api(stack: StacStack) -> None:
    api = stack.api_url
    read = requests.get(f"{api}/collections", headers={"Origin": EVIL}, timeout=10)
    assert read.status_code == 200 and read.headers.get("access-control-allow-origin") in ("*", EVIL)
    preflight = requests.options(
        f"{api}/collections",
        headers={"Origin": EVIL, "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "content-type"},
        timeout=10,
    )  # fmt: skip
    assert "POST" not in preflight.headers.get("access-control-allow-methods", "")
    assert preflight.status_code >= 400 or not preflight.headers.get("access-control-allow-origin")
    doc = {"type": "Collection", "id": "csrf-made", "description": "x", "stac_version": "1.1.0",
           "license": "proprietary", "links": [],
           "extent": {"spatial": {"bbox": [[0, 0, 1, 1]]}, "temporal": {"interval": [[None, None]]}}}  # fmt: skip
    simple = requests.post(
        f"{api}/collections",
        data=json.dumps(doc),
        headers={"Origin": EVIL, "Content-Type": "text/plain"},
        timeout=10,
    )
    assert simple.status_code >= 400
    assert requests.get(f"{api}/collections/csrf-made", timeout=10).status_code == 404


def test_the_asset_server_lists_no_folders_and_takes_no_writes(stack: StacStack) -> None:
    base = stack.assets_url.rstrip("/")
    for folder in (f"{base}/", f"{base}/published/"):
        listing = requests.get(folder, timeout=10)
        assert listing.status_code in (403, 404) and "Index of" not in listing.text
    assert requests.put(f"{base}/published/x.txt", data=b"x", timeout=10).status_code in (403, 405)
    a_file = next(p for p in stack.data_dir.rglob("*.json"))
    got = requests.get(f"{base}/{a_file.relative_to(stack.data_dir).as_posix()}", timeout=10)
    assert got.status_code == 200 and got.headers.get("access-control-allow-origin") == "*"


def test_nginx_workers_do_not_run_as_root_when_the_folders_are_public(stack: StacStack) -> None:
    """As root, the asset server's workers drop to ``nobody`` whenever it can read what it serves."""
    if os.geteuid() != 0:
        pytest.skip("only a root nginx changes user")
    master = stack.pids["assets"]
    children = [
        int(p.name) for p in Path("/proc").iterdir()
        if p.name.isdigit() and f"PPid:\t{master}\n" in _status(p)
    ]  # fmt: skip
    assert children, "nginx has no worker"
    uids = {int(_status(Path(f"/proc/{c}")).split("Uid:\t")[1].split()[0]) for c in children}
    public = _others_can_read(stack.data_dir) and _others_can_read(stack.state_dir / "published")
    expected = pwd.getpwnam("nobody").pw_uid if public else 0
    assert uids == {expected}, f"public folders: {public}"


def _status(proc: Path) -> str:
    try:
        return (proc / "status").read_text()
    except OSError:
        return ""


def _collection(cid: str) -> dict[str, object]:
    return {"type": "Collection", "id": cid, "description": "x", "stac_version": "1.1.0",
            "license": "proprietary", "links": [],
            "extent": {"spatial": {"bbox": [[0, 0, 1, 1]]}, "temporal": {"interval": [[None, None]]}}}  # fmt: skip


def test_transactions_need_the_stacks_token(stack: StacStack) -> None:
    """Issue 21 #4c: any local user could create, change or delete collections and items."""
    api = stack.api_url
    token_file = stack.state_dir / "write-token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    token = token_file.read_text().strip()
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {token}"}):
        answer = requests.post(
            f"{api}/collections", json=_collection("no-token"), headers=headers, timeout=10
        )
        assert answer.status_code == 401, headers
    assert requests.delete(f"{api}/collections/{stack.collections[0]}", timeout=10).status_code == 401
    assert requests.get(f"{api}/collections/no-token", timeout=10).status_code == 404
    assert requests.post(f"{api}/search", json={"limit": 1}, timeout=10).status_code == 200  # a read
    made = requests.post(
        f"{api}/collections",
        json=_collection("with-token"),
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert made.status_code in (200, 201), made.text
    gone = requests.delete(
        f"{api}/collections/with-token", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    assert gone.status_code in (200, 204)


def test_the_tile_server_is_reached_only_through_nginx_and_only_to_read(stack: StacStack) -> None:
    """Issue 23: titiler-pgstac listens on a unix socket in a private folder, not on a port; nginx's
    ``/tiles/`` passes GET/HEAD only (registering a search is a write) and sends no CORS *."""
    folder = stack.state_dir / "tiler"
    mode = stat.S_IMODE(folder.stat().st_mode)
    if os.geteuid() == 0 and mode == 0o710:  # workers run as nobody: its group may enter, no one else
        assert folder.stat().st_gid == pwd.getpwnam("nobody").pw_gid
    else:
        assert mode == 0o700
    assert stat.S_ISSOCK((folder / "tiler.sock").stat().st_mode)
    tiler = Path(f"/proc/{stack.pids['tiles']}")
    assert "titiler.pgstac" in (tiler / "cmdline").read_bytes().decode()
    assert "--uds" in (tiler / "cmdline").read_bytes().decode().split("\0")
    tiles = stack.tiles_url
    assert tiles
    health = requests.get(f"{tiles}/healthz", headers={"Origin": EVIL}, timeout=10)
    assert health.status_code == 200 and "access-control-allow-origin" not in health.headers
    search = {"collections": [stack.collections[0]]}
    for headers in ({"Origin": EVIL}, {}):
        post = requests.post(f"{tiles}/searches/register", json=search, headers=headers, timeout=10)
        assert post.status_code == 403, post.text
    own = stack.assets_url  # STAC Browser's origin may read with CORS (same origin anyway)
    read = requests.get(f"{tiles}/healthz", headers={"Origin": own}, timeout=10)
    assert read.headers.get("access-control-allow-origin") == own
