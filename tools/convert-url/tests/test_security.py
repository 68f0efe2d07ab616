"""convert-url against the bad inputs of issue 21 (findings 5 and 14), served by a real loopback server.

The pixel bombs run in a child process under a 4 GiB address-space limit: if a check regressed,
the child dies of MemoryError (and the test fails) instead of starving the shared machine.
"""

from __future__ import annotations

import os
import resource
import struct
import subprocess
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import rasterio
from PIL import Image

from eopack_convert_url.cli import main
from imageserver import ImageServer


def _png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG that declares ``width`` x ``height`` RGB pixels (and holds almost none)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")
    )


@pytest.fixture(scope="module")
def bombs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("bombs")
    (folder / "declares-65535.png").write_bytes(_png_header_only(65535, 65535))
    (folder / "declares-12000.png").write_bytes(_png_header_only(12000, 12000))
    ramp = np.add.outer(np.arange(1000), np.arange(1200)).astype("uint8")
    Image.fromarray(np.dstack([ramp, ramp, ramp])).save(folder / "ordinary.png")  # 1200x1000 RGB
    profile = {
        "driver": "GTiff",
        "width": 60000,
        "height": 60000,
        "count": 3,
        "dtype": "uint8",
        "crs": "EPSG:32632",
        "transform": rasterio.Affine(10.0, 0, 600000.0, 0, -10.0, 5200000.0),
        "tiled": True,
        "blockxsize": 1024,
        "blockysize": 1024,
        "compress": "deflate",
        "sparse_ok": True,
    }
    with rasterio.open(folder / "sparse.tif", "w", **profile):
        pass  # no block written: a small file that asks for 10 GiB
    with ImageServer(folder) as url:
        yield url


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (4 * 1024**3, 4 * 1024**3))


@pytest.mark.parametrize(
    ("name", "size", "expected"),
    [
        ("declares-65535.png", "50%", "the source image is too large to decode safely"),
        ("declares-12000.png", "50%", "the source image would be 12000x12000 pixels x 3 band(s)"),
        ("sparse.tif", "10%", "the source image would be 60000x60000 pixels x 3 band(s)"),
        ("ordinary.png", "1000%", "the target image would be 12000x10000 pixels x 3 band(s)"),
    ],
)
def test_pixel_bombs_are_refused_before_decoding(
    name: str, size: str, expected: str, bombs: str, tmp_path: Path
) -> None:
    child = subprocess.run(
        [
            sys.executable,
            "-m",
            "eopack_convert_url.cli",
            "--fn",
            "resize",
            "--url",
            f"{bombs}/{name}",
            *("--size", size),
            *("--outdir", str(tmp_path / "o")),
        ],
        env={**os.environ, "EOPACK_ALLOW_PRIVATE_URLS": "1"},
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=_limit_memory,
    )
    lines = child.stderr.strip().splitlines()
    assert child.returncode == 2, child.stderr
    assert lines[-1].startswith("convert-url: error: ") and expected in lines[-1]
    assert "Traceback" not in child.stderr
    assert not any((tmp_path / "o").iterdir())


def test_sparse_geotiff_is_small_on_the_wire(bombs: str, tmp_path: Path) -> None:
    """The bomb is real: a file this small on disk declares 10 GB of pixels."""
    import urllib.request

    with urllib.request.urlopen(f"{bombs}/sparse.tif") as resp:  # the loopback test server
        body = resp.read()
    assert len(body) < 200_000
    (tmp_path / "got.tif").write_bytes(body)
    with rasterio.open(tmp_path / "got.tif") as src:
        assert src.width * src.height * src.count > 10 * 10**9


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--url", "http://example.org:99999/a.png"], "port 99999 is not a number from 1 to 65535"),
        (["--url", "http://[::1/a.png"], "the IPv6 address has no closing ']'"),
        (["--url", "http://" + "a" * 70 + ".example/a.png"], "70-character label; DNS allows at most 63"),
        (["--url", "http://127.0.0.1:1\\@93.184.216.34/a.png"], "backslash"),
        (["--url", "http://example.org/a.png", "--timeout", "-1"], "timeout must be a positive number"),
        (["--url", "http://example.org/a.png", "--max-bytes", "-1"], "max_bytes must be a positive number"),
        (["--url", "http://example.org/a.png", "--max-bytes", "0"], "max_bytes must be a positive number"),
    ],
)
def test_bad_inputs_are_one_line_exit_2(
    args: list[str], expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["--fn", "resize", "--size", "50%", "--outdir", str(tmp_path / "o"), *args])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("convert-url: error: ") and expected in err[0]
    assert not (tmp_path / "o").exists()


def test_outdir_naming_a_file_is_exit_2(
    image_server: str, tmp_path: Path, allow_private: None, capsys: pytest.CaptureFixture[str]
) -> None:
    afile = tmp_path / "results.txt"
    afile.write_text("keep me")
    code = main(
        ["--fn", "resize", "--url", f"{image_server}/sample-rgb.png", "--size", "50%", "--outdir", str(afile)]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err == [
        f"convert-url: error: outdir {afile} exists and is not a folder; give a folder for the results"
    ]
    assert afile.read_text() == "keep me"
