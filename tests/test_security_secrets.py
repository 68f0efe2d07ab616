"""Issue 21 #2: a canary gateway password never reaches a file the run leaves, a log or ``ps``.

On every runner that can run here, with and without containers. In container mode the password
travels by file (runners/secret_files.py): cwltool logs its ``docker run`` line with every
``--env=NAME=value``, so an environment variable would land in ``.eopack/cwltool.log`` and ``ps``.
The test package proves the tool still receives the password (its SHA-256 in the result), without
writing the password itself anywhere.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from eopack.clients import docker
from eopack.services import wes
from eopack.services.wes import _Layout, _worker_env

ROOT = Path(__file__).resolve().parents[1]
ECHO = ROOT / "tests/data/packages/dask-echo/dask-echo.cwl"
IMAGE = "eopack/ndvi:1.0.0"  # any built image with a shell; the tool only runs sh
# No "$(" or "${" in it: CWL would read them as expressions.
COMMAND = (
    "env | grep ^DASK_GATEWAY_ | grep -v PASSWORD= | sort > env.txt; "
    'if [ -n "$DASK_GATEWAY_PASSWORD_FILE" ]; then cat "$DASK_GATEWAY_PASSWORD_FILE"; '
    'else printf %s "$DASK_GATEWAY_PASSWORD"; fi | sha256sum > secret.sha256'
)


def _package(folder: Path) -> Path:
    text = ECHO.read_text().replace("eopack/does-not-exist:0.1.0", IMAGE)
    text = text.replace('"env | grep ^DASK_GATEWAY_ | sort > env.txt"', json.dumps(COMMAND))
    cwl = folder / "dask-echo.cwl"
    cwl.write_text(text)
    assert json.dumps(COMMAND) in text
    return cwl


class PsWatch:
    """``ps -eo args`` every 0.1 s while the run lasts: every command line of the machine."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            out = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=False)
            self.seen.append(out.stdout)
            self._stop.wait(0.1)

    def __enter__(self) -> PsWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _leaks(canary: str, *folders: Path) -> list[str]:
    found = []
    for folder in folders:
        for path in folder.rglob("*"):
            if path.is_file() and not path.is_symlink() and canary.encode() in path.read_bytes():
                found.append(str(path))
    return found


def _run(tmp_path: Path, canary: str, *args: str) -> tuple[subprocess.CompletedProcess[str], PsWatch]:
    cwl = _package(tmp_path)
    job = tmp_path / "job.yml"
    job.write_text("workers: 1\nmemory: 1G\n")
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {**os.environ, "DASK_GATEWAY_PASSWORD": canary, "TMPDIR": str(tmp)}
    with PsWatch() as ps:
        proc = subprocess.run(
            [sys.executable, "-m", "eopack", "run", str(cwl), str(job), "--outdir", str(tmp_path / "run"),
             "--dask-gateway-url", "http://127.0.0.1:9", *args],
            capture_output=True, text=True, env=env, check=False, timeout=600,
        )  # fmt: skip
    return proc, ps


def _assert_no_leak(tmp_path: Path, canary: str, proc: subprocess.CompletedProcess[str], ps: PsWatch) -> None:
    assert _leaks(canary, tmp_path) == []
    assert canary not in proc.stdout and canary not in proc.stderr
    assert len(ps.seen) > 3 and not any(canary in snapshot for snapshot in ps.seen)


def _canary() -> str:
    return f"canary-{secrets.token_hex(12)}"


@pytest.mark.parametrize("mode", ["container", "no-container"])
def test_cwltool_never_shows_the_password(tmp_path: Path, mode: str) -> None:
    if mode == "container" and not (docker.daemon_answers() and docker.image_exists(IMAGE)):
        pytest.skip(f"needs a Docker daemon and {IMAGE} (make images)")
    canary = _canary()
    args = ["--no-container"] if mode == "no-container" else []
    proc, ps = _run(tmp_path, canary, *args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = tmp_path / "run" / "result"
    digest = (result / "secret.sha256").read_text().split()[0]
    assert digest == hashlib.sha256(canary.encode()).hexdigest(), "the tool did not receive the password"
    env = (result / "env.txt").read_text()
    if mode == "container":
        assert "DASK_GATEWAY_PASSWORD_FILE=" in env
        assert "running without containers" not in proc.stderr
    assert not (tmp_path / "run" / ".eopack" / "secrets").exists()
    _assert_no_leak(tmp_path, canary, proc, ps)


@pytest.mark.parametrize("mode", ["container", "no-container"])
def test_toil_leaves_the_password_out_and_leaks_nothing(tmp_path: Path, mode: str) -> None:
    """Toil cannot pass a secret without writing it into the copy or its job store: it is left out."""
    if mode == "container" and not (docker.daemon_answers() and docker.image_exists(IMAGE)):
        pytest.skip(f"needs a Docker daemon and {IMAGE} (make images)")
    canary = _canary()
    args = ["--no-container"] if mode == "no-container" else []
    proc, ps = _run(tmp_path, canary, "--runner", "toil", *args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Toil does not pass DASK_GATEWAY_PASSWORD" in proc.stderr
    digest = (tmp_path / "run" / "result" / "secret.sha256").read_text().split()[0]
    assert digest == hashlib.sha256(b"").hexdigest()
    _assert_no_leak(tmp_path, canary, proc, ps)


def test_wes_workers_get_the_password_by_file_not_in_their_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The workers pass their entire environment to every tool (and to `docker run --env`)."""
    canary = _canary()
    monkeypatch.setenv("DASK_GATEWAY_PASSWORD", canary)
    layout = _Layout(tmp_path / "wes")
    layout.root.mkdir()
    env = _worker_env(layout, tmp_path / "venv")
    assert not any(canary in value for value in env.values())
    secret = Path(env["DASK_GATEWAY_PASSWORD_FILE"])
    assert secret.read_text() == canary and secret.stat().st_mode & 0o777 == 0o600
    assert "DASK_GATEWAY_PASSWORD" in wes.SECRET_WORKER_ENV
