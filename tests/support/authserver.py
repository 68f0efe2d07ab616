"""A loopback file server that wants a credential, with HTTP Range reads (what GDAL's /vsicurl uses).

A request is served when it carries ``Authorization: Bearer <secret>`` or ``?token=<secret>`` (the
way signed URLs carry theirs); anything else gets 401. ``/api/sas/v1/token/<account>/<container>``
answers like Planetary Computer's SAS token service, with ``token=<secret>``. Every request line
and its headers are recorded, so tests can check what the client sent.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

__all__ = ["AuthServer"]


class AuthServer:
    """``with AuthServer(folder, secret) as url: ...`` serves ``folder`` on 127.0.0.1."""

    def __init__(self, folder: Path, secret: str) -> None:
        self.folder, self.secret = folder.resolve(), secret
        self.requests: list[tuple[str, int]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_HEAD(self) -> None:
                self._serve(body=False)

            def do_GET(self) -> None:
                self._serve(body=True)

            def _serve(self, body: bool) -> None:
                url = urlsplit(self.path)
                if url.path.startswith("/api/sas/v1/token/"):
                    expiry = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
                    doc = {"token": f"token={server.secret}", "msft:expiry": expiry.isoformat()}
                    return self._reply(200, json.dumps(doc).encode(), "application/json", body)
                bearer = self.headers.get("Authorization") == f"Bearer {server.secret}"
                query = parse_qs(url.query).get("token") == [server.secret]
                if not (bearer or query):
                    server.requests.append((url.path, 401))
                    return self._reply(401, b"unauthorized", "text/plain", body)
                path = (server.folder / url.path.lstrip("/")).resolve()
                if not path.is_file() or server.folder not in path.parents:
                    server.requests.append((url.path, 404))
                    return self._reply(404, b"not found", "text/plain", body)
                data = path.read_bytes()
                match = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
                if match:
                    start = int(match[1])
                    end = min(int(match[2]) if match[2] else len(data) - 1, len(data) - 1)
                    server.requests.append((url.path, 206))
                    return self._reply(
                        206, data[start : end + 1], "image/tiff", body, (start, end, len(data))
                    )
                server.requests.append((url.path, 200))
                return self._reply(200, data, "image/tiff", body)

            def _reply(
                self,
                code: int,
                data: bytes,
                media: str,
                body: bool,
                span: tuple[int, int, int] | None = None,
            ) -> None:
                self.send_response(code)
                self.send_header("Content-Type", media)
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Accept-Ranges", "bytes")
                if span:
                    self.send_header("Content-Range", f"bytes {span[0]}-{span[1]}/{span[2]}")
                self.end_headers()
                if body:
                    self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> str:
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self.url

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
