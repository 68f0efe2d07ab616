"""An S3 endpoint on loopback for stage-out: moto's server mode, with signatures enforced.

There is no object store on these machines (DESIGN.md §5), so moto (PyPI ``moto[server]``) stands
in for one: the S3 API over HTTP on 127.0.0.1, enough for boto3, pystac and GDAL to write and read
objects the way they would on a platform's bucket. It is a test double at a boundary that cannot
exist here, not storage: objects live in the server's memory and are gone after ``down``.

Authentication even on loopback (shared login nodes exist): the server is started with
``INITIAL_NO_AUTH_ACTION_COUNT`` set to the three calls that create one user and its key, so every
later request must carry that key's signature. The key is kept in mode-600 files only. moto's own
``/moto-api/`` control routes cannot be locked; that is one more reason it stays on loopback.

Everything lives in one state directory (default ``<repo>/runs/services/s3``)::

    s3.json        port, region, default bucket, the access key (mode 600)
    credentials    the same key as an AWS shared-credentials file (mode 600) for tools
    moto.pid
    logs/moto.log
"""

from __future__ import annotations

import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import package
from ..clients import s3 as client
from ..clients.s3 import SERVICE, S3Key
from ..errors import ServiceUnavailableError
from . import _proc
from .base import JsonState, Progress, Rollback, owned_pid, quiet, sweep

__all__ = [
    "DEFAULT_BUCKET",
    "DEFAULT_PORT",
    "DEFAULT_REGION",
    "SERVICE",
    "STATE_DIR_ENV",
    "S3Service",
    "S3Status",
    "default_state_dir",
    "down",
    "status",
    "up",
]

DEFAULT_PORT = 8791
DEFAULT_REGION = "us-east-1"
DEFAULT_BUCKET = "eopack-results"
STATE_DIR_ENV = "EOPACK_S3_STATE_DIR"


@dataclass(frozen=True)
class S3Service:
    """A running endpoint: its URL, region, default bucket, and where its key is (never the key)."""

    url: str
    region: str
    bucket: str
    credentials_file: Path
    pid: int
    state_dir: Path

    def key(self) -> S3Key:
        """The access key, read from the mode-600 credentials file."""
        return client.read_credentials(self.credentials_file)


@dataclass(frozen=True)
class S3Status:
    """Up/down with the addresses ``status --json`` prints."""

    state_dir: Path
    up: bool
    pid: int | None
    url: str
    region: str
    bucket: str
    credentials_file: Path

    def as_dict(self) -> dict[str, Any]:
        return {
            "state_dir": str(self.state_dir),
            "up": self.up,
            "pid": self.pid,
            "url": self.url,
            "region": self.region,
            "bucket": self.bucket,
            "credentials_file": str(self.credentials_file),
        }


class _Layout:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.state_file = root / "s3.json"
        self.credentials = root / "credentials"
        self.pid_file = root / "moto.pid"
        self.log = root / "logs" / "moto.log"


@dataclass
class _State(JsonState):
    port: int = DEFAULT_PORT
    region: str = DEFAULT_REGION
    bucket: str = DEFAULT_BUCKET
    access_key_id: str = ""
    secret_access_key: str = ""

    @property
    def url(self) -> str:
        return f"http://{_proc.LOOPBACK}:{self.port}"


def default_state_dir() -> Path:
    """``$EOPACK_S3_STATE_DIR``, else ``<repo>/runs/services/s3`` (ignored by git)."""
    return package.service_state_dir("s3", STATE_DIR_ENV)


def _server() -> Path:
    return Path(sys.executable).parent / "moto_server"


def _service(state: _State, layout: _Layout, pid: int) -> S3Service:
    return S3Service(state.url, state.region, state.bucket, layout.credentials, pid, layout.root)


def up(
    state_dir: Path | None = None,
    *,
    port: int | None = None,
    bucket: str | None = None,
    progress: Progress | None = None,
    timeout: float = 60.0,
) -> S3Service:
    """Start the endpoint (or reuse the running one), create its key and the default bucket.

    A failed start stops what it started. Reusing a running endpoint with another port fails with
    the command that frees it.
    """
    say = progress or quiet
    layout = _Layout((state_dir or default_state_dir()).resolve())
    layout.root.mkdir(parents=True, exist_ok=True)
    state = _State.load(layout.state_file) or _State()
    running = owned_pid(layout.pid_file, layout.root)
    if running is not None and port is not None and port != state.port:
        raise ServiceUnavailableError(
            SERVICE,
            f"it already runs from {layout.root} on port {state.port}",
            f"Run `eopack s3 down --state-dir {layout.root}` first.",
        )
    if bucket:
        state.bucket = bucket
    if running is not None and client.answers(state.url) and state.access_key_id:
        key = S3Key(state.access_key_id, state.secret_access_key)
        client.ensure_bucket(state.url, key, state.region, state.bucket)
        state.save(layout.state_file)
        return _service(state, layout, running)
    if running is not None:  # a server that does not answer or lost its key: start afresh
        _proc.stop_pid(running)
    if not _server().exists():
        raise ServiceUnavailableError(
            SERVICE, f"{_server()} is missing", "Run `uv sync` (moto[server] is a dev dependency)."
        )
    state.port = port or state.port
    _proc.ensure_port_free(SERVICE, state.port, "--port")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["INITIAL_NO_AUTH_ACTION_COUNT"] = str(client.PROVISIONING_CALLS)
    with Rollback() as started:
        pid = _proc.spawn(
            [str(_server()), "-H", _proc.LOOPBACK, "-p", str(state.port)],
            log=layout.log,
            cwd=layout.root,
            env=env,
            pid_file=layout.pid_file,
        )
        started.add(pid, layout.pid_file)
        say(f"moto server started (pid {pid}); log {layout.log}")

        def ready() -> bool:
            if not _proc.pid_alive(pid):
                raise ServiceUnavailableError(
                    SERVICE, f"moto_server exited:\n{_proc.tail(layout.log)}", f"See {layout.log}."
                )
            return client.answers(state.url)

        if not _proc.wait_until(ready, timeout, interval=0.2):
            raise ServiceUnavailableError(
                SERVICE, f"{state.url} did not answer within {timeout:.0f} s", f"See {layout.log}."
            )
        key = client.provision(state.url, state.region)
        state.access_key_id, state.secret_access_key = key.access_key_id, key.secret_access_key
        state.save(layout.state_file)
        client.write_credentials(layout.credentials, key, state.region)
        client.ensure_bucket(state.url, key, state.region, state.bucket)
        say(f"bucket {state.bucket!r} ready; key in {layout.credentials} (mode 600)")
    return _service(state, layout, pid)


def down(state_dir: Path | None = None, progress: Progress | None = None) -> S3Status:
    """Stop the server (its objects are gone with it) and forget its key. Idempotent."""
    say = progress or quiet
    layout = _Layout((state_dir or default_state_dir()).resolve())
    if (pid := owned_pid(layout.pid_file, layout.root)) is not None:
        _proc.stop_pid(pid, timeout=10, sig=signal.SIGTERM)
        say(f"moto server stopped (pid {pid})")
    layout.pid_file.unlink(missing_ok=True)
    layout.credentials.unlink(missing_ok=True)
    state = _State.load(layout.state_file)
    if state is not None:
        state.access_key_id = state.secret_access_key = ""
        state.save(layout.state_file)
    sweep(
        SERVICE, layout.root, lambda: [p for p in _proc.processes_under(layout.root) if "moto" in p.cmdline]
    )
    return status(layout.root)


def status(state_dir: Path | None = None) -> S3Status:
    """Up when the server runs from this state dir and answers."""
    layout = _Layout((state_dir or default_state_dir()).resolve())
    state = _State.load(layout.state_file) or _State()
    pid = owned_pid(layout.pid_file, layout.root)
    up_now = pid is not None and client.answers(state.url)
    return S3Status(layout.root, up_now, pid, state.url, state.region, state.bucket, layout.credentials)
