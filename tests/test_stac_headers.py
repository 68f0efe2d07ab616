"""A private STAC API: the runner's own client (publish, stage) sends ``EOPACK_STAC_HEADERS`` as the
tools do, from the variable or the 0600 file ``EOPACK_STAC_HEADERS_FILE`` names, and a malformed
setting is the user's mistake in one line that never shows the credential."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from eopack.clients.stac import HEADERS_ENV, StacApi, StacApiError
from eopack.errors import SettingInvalidError
from eopack_cli import Eopack

CANARY = "canary-7f3a9c"
LANDING = {"type": "Catalog", "id": "private", "description": "x", "links": [], "conformsTo": []}


@pytest.fixture(scope="module")
def private_api() -> Iterator[str]:
    """A loopback API whose landing page answers only with ``X-Api-Key: CANARY``."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            ok = self.headers.get("X-Api-Key") == CANARY
            body = json.dumps(LANDING if ok else {"detail": "unauthorized"}).encode()
            self.send_response(200 if ok else 401)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_without_the_headers_the_private_api_refuses(
    private_api: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(HEADERS_ENV, raising=False)
    monkeypatch.delenv(f"{HEADERS_ENV}_FILE", raising=False)
    with pytest.raises(StacApiError, match="401"):
        StacApi(private_api).landing()


def test_the_headers_from_the_variable_or_the_file_are_sent(
    private_api: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(HEADERS_ENV, f"X-Api-Key: {CANARY}\n")
    assert StacApi(private_api).landing()["id"] == "private"
    monkeypatch.delenv(HEADERS_ENV)
    secret = tmp_path / "stac-headers"
    secret.write_text(f"X-Api-Key: {CANARY}\n")
    secret.chmod(0o600)
    monkeypatch.setenv(f"{HEADERS_ENV}_FILE", str(secret))
    assert StacApi(private_api).landing()["id"] == "private"


def test_a_malformed_setting_is_one_line_without_the_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(HEADERS_ENV, f"X-Api-Key {CANARY}")
    with pytest.raises(SettingInvalidError) as info:
        StacApi("http://127.0.0.1:9")
    assert info.value.exit_code == 2 and CANARY not in str(info.value)


def test_publish_says_so_in_one_line_and_exits_2(eopack: Eopack, sample_catalog: Path) -> None:
    proc = eopack(
        "publish",
        str(sample_catalog),
        "--stac-api",
        "http://127.0.0.1:9",
        env={HEADERS_ENV: f"Bad line {CANARY}"},
    )
    assert proc.returncode == 2, proc.stderr
    assert f"{HEADERS_ENV} holds a line that is not 'Name: value'" in proc.stderr
    assert CANARY not in proc.stdout + proc.stderr and "Traceback" not in proc.stderr
