"""Secrets the runners hand over by file (``<NAME>_FILE``), and STAC API headers from the environment."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from eopack_eo_common import access
from eopack_eo_common.cli import run_main
from eopack_eo_common.errors import ToolError
from eopack_eo_common.search import collection_ids

CANARY = "canary-5b1f0e-stac-token"


def test_a_secret_file_becomes_the_variable_the_tool_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = tmp_path / "aws_secret_access_key"
    secret.write_text(CANARY)
    secret.chmod(0o600)
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY", raising=False)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY_FILE", str(secret))
    seen: list[str | None] = []
    assert (
        run_main("t", lambda _: seen.append(__import__("os").environ.get("AWS_SECRET_ACCESS_KEY")), []) == 0
    )
    assert seen == [CANARY]
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY_FILE", str(tmp_path / "missing"))
    assert run_main("t", lambda _: None, []) == 2
    assert (
        capsys.readouterr().err.strip()
        == "t: error: cannot read AWS_SECRET_ACCESS_KEY_FILE (No such file or directory)"
    )


class _Api(BaseHTTPRequestHandler):
    """A STAC API landing page and one collection, only for requests with the bearer token."""

    def do_GET(self) -> None:
        if self.headers.get("Authorization") != f"Bearer {CANARY}":
            self.send_response(401)
            self.end_headers()
            return
        base = f"http://{self.headers['Host']}"
        if self.path.rstrip("/") == "":
            body = {
                "type": "Catalog", "id": "api", "description": "d", "stac_version": "1.0.0",
                "conformsTo": ["https://api.stacspec.org/v1.0.0/core",
                               "https://api.stacspec.org/v1.0.0/collections"],
                "links": [{"rel": "self", "href": base + "/"}, {"rel": "root", "href": base + "/"},
                          {"rel": "data", "href": base + "/collections"}],
            }  # fmt: skip
        else:
            body = {
                "collections": [{
                    "type": "Collection", "id": "sentinel-2-l2a", "description": "d", "stac_version": "1.0.0",
                    "license": "proprietary", "links": [],
                    "extent": {"spatial": {"bbox": [[-180, -90, 180, 90]]},
                               "temporal": {"interval": [[None, None]]}},
                }],
                "links": [],
            }  # fmt: skip
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def api() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Api)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_stac_api_requests_carry_the_headers_of_the_environment(
    api: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(access.STAC_HEADERS_ENV, raising=False)
    with pytest.raises(ToolError) as refused:
        collection_ids(stac_api=api)
    assert CANARY not in str(refused.value)
    monkeypatch.setenv(access.STAC_HEADERS_ENV, f"Authorization: Bearer {CANARY}")
    assert collection_ids(stac_api=api) == ["sentinel-2-l2a"]
    assert CANARY not in access.redact(f"token {CANARY}")
