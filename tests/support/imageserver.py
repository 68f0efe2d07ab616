"""Generated test images and a loopback HTTP server for them (tests and `make demo`).

Routes besides the files in the folder, for the bad-input cases of convert-url:
``/missing`` answers 404, ``/redirect?to=URL`` answers 302, ``/huge.png`` announces a body far
over any limit, ``/endless.png`` streams bytes without a Content-Length, ``/slow.png`` stalls.

Run standalone: ``python tests/support/imageserver.py DIR`` prints its base URL and serves until
killed.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import numpy as np

__all__ = ["ImageServer", "make_images"]

BLOCK = 2  # the PNG is made of BLOCK×BLOCK squares, so a 50 % average resize is exact


def make_images(folder: Path) -> dict[str, Path]:
    """Write the sample images; return them by name."""
    import rasterio
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rows, cols = 48, 64
    small = (np.arange((rows // BLOCK) * (cols // BLOCK) * 3) * 7 % 256).astype("uint8")
    small = small.reshape(rows // BLOCK, cols // BLOCK, 3)
    rgb = small.repeat(BLOCK, axis=0).repeat(BLOCK, axis=1)
    Image.fromarray(rgb).save(folder / "sample-rgb.png")
    np.save(folder / "sample-rgb-half.npy", small)

    profile = {
        "driver": "GTiff",
        "width": 64,
        "height": 32,
        "count": 2,
        "dtype": "uint16",
        "crs": "EPSG:32632",
        "transform": rasterio.Affine(10.0, 0, 680000.0, 0, -10.0, 5160000.0),
    }
    pixels = (np.arange(2 * 32 * 64, dtype="uint16") % 4000 + 100).reshape(2, 32, 64)
    with rasterio.open(folder / "sample-s2.tif", "w", **profile) as dst:
        dst.write(pixels)
    (folder / "page.html").write_text("<!doctype html><title>not an image</title><p>hello</p>\n")
    return {p.stem: p for p in folder.iterdir()}


class _Handler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path == "/missing":
            self.send_error(404, "Not Found")
        elif url.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", parse_qs(url.query)["to"][0])
            self.end_headers()
        elif url.path == "/huge.png":
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(10**12))
            self.end_headers()
        elif url.path == "/endless.png":
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.end_headers()
            try:
                for _ in range(4096):
                    self.wfile.write(b"\x89PNG" * 4096)
            except OSError:
                pass
            self.close_connection = True
        elif url.path == "/slow.png":
            time.sleep(float(parse_qs(url.query).get("s", ["5"])[0]))
            self.send_error(504)
        else:
            super().do_GET()


class ImageServer:
    """``with ImageServer(folder) as base_url: ...`` serves ``folder`` on 127.0.0.1."""

    def __init__(self, folder: Path, port: int = 0, host: str = "127.0.0.1") -> None:
        handler = lambda *a, **k: _Handler(*a, directory=str(folder), **k)  # noqa: E731
        self.httpd = ThreadingHTTPServer((host, port), handler)
        self.httpd.daemon_threads = True
        self.url = f"http://{host}:{self.httpd.server_address[1]}"

    def __enter__(self) -> str:
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self.url

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    make_images(args.folder)
    server = ImageServer(args.folder, args.port)
    print(server.url, flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.httpd.serve_forever()
    return None


if __name__ == "__main__":
    sys.exit(main())
