"""A real Toil WES endpoint on loopback: Redis + Celery workers + ``toil server`` + nginx basic auth.

Why this shape (seed 001, DESIGN.md §5): platforms (ZOO-Project's WES runner, EOEPCA) submit CWL to
a Toil WES server protected by a reverse proxy with an htpasswd file, and the server hands runs to
Celery workers through a broker. Everything runs as processes of this user, nginx on 127.0.0.1 and
``toil server`` on a unix socket only nginx reaches (no unauthenticated TCP port), from one
state directory that survives restarts (default ``<repo>/runs/services/wes``)::

    wes.json            ports, user, worker count (mode 600: it also holds the passwords)
    password            the WES password alone (mode 600), for ``WES_PASSWORD="$(cat ...)"``
    htpasswd            SHA-512 crypt hash of it, read by nginx
    broker.url          redis://:<password>@127.0.0.1:<port>/0 (mode 600; never on a command line)
    redis/              redis.conf, the append-only file (queued runs survive a restart)
    nginx/              nginx.conf generated from wes/nginx.conf.template, temp dirs
    workflows/          Toil's --work_dir: one run-<hex>/ per run (execution/, outputs/, stdout, stderr)
    workflows/state_store/  Toil's run states (QUEUED, RUNNING, COMPLETE, ...)
    work/               Toil's --workDir for every run, so `down` finds every process by its paths
    sock/               api.sock (-> api.sock:0): toil server's unix socket; mode 700, nginx proxies to it
    bin/                toil-cwl-runner: the shim that runs wes/eopack_wes_engine.py
    logs/               redis.log worker.log server.log nginx-*.log reconcile.log

The server runs Toil 9.3.0 from its own venv (``.cache/venvs/toil-server``, made on first use
from ``wes/requirements-server.txt``) because Celery mode is broken in 9.4.0-9.6.0; the workflows
themselves run with the workspace venv's ``toil-cwl-runner`` (through ``bin/toil-cwl-runner``, first on
the workers' PATH: wes/eopack_wes_engine.py), the same engine as ``eopack run --runner toil``. The
tools get only what they need: the variables named in WORKER_ENV that are set (never the workers'
whole environment, whose PATH would hide a package image's own tools). See wes/README.md.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import package
from ..clients import wes as client
from ..clients.wes import API_PATH, STATE_DIR_ENV, WesClient
from ..errors import EopackError, ServiceUnavailableError
from ..tool_env import ASSET_ENV, SECRET_ENV, SETTINGS_ENV
from . import _proc, slurm
from .base import (
    JsonState,
    Progress,
    Rollback,
    nginx,
    nginx_command,
    owned_pid,
    quiet,
    sweep,
    write_secret,
)

__all__ = [
    "API_PATH",
    "DEFAULT_PORT",
    "DEFAULT_USER",
    "DEFAULT_WORKERS",
    "SERVER_TOIL",
    "STATE_DIR_ENV",
    "WesService",
    "WesStatus",
    "default_state_dir",
    "down",
    "ensure_server_venv",
    "local_credentials",
    "local_url",
    "status",
    "up",
]

SERVICE = "Toil WES"
TOOL_ENV = "EOPACK_WES_TOOL_ENV"  # read by wes/eopack_wes_engine.py
DEFAULT_PORT = 8092  # nginx: the endpoint users and ZOO-Project talk to
DEFAULT_USER = "eopack"
DEFAULT_WORKERS = 4  # concurrent runs; more runs wait QUEUED in Redis
SERVER_TOIL = "9.3.0"  # kept equal to wes/requirements-server.txt by a test
VENV_ENV = "EOPACK_WES_SERVER_VENV"  # use this server venv instead of .cache/venvs/toil-server
SETUP_FIX = "Run `make setup` as root: scripts/bootstrap.sh installs redis-server and nginx."
# Variables the tools may need, passed from `eopack wes up`'s environment to every run: the workers
# get them, and wes/eopack_wes_engine.py names them to the tools (secrets excepted). Nothing else of
# the workers' environment reaches a tool (a host PATH in a container hides the image's tools).
WORKER_ENV = (
    *SETTINGS_ENV,
    "DASK_GATEWAY_PROXY_ADDRESS",
    "SLURM_CONF",
    "TOIL_SLURM_ARGS",
    "TOIL_SLURM_PE",
    "EOPACK_GATEWAY_STATE_DIR",
    *ASSET_ENV,
    *SECRET_ENV,
)

# Runs' folders, job stores, logs and the state store hold users' inputs and results: the server and
# the workers create them readable by the service user only (issue 21 #17).
PRIVATE_UMASK = 0o077
# Of those, the secrets: never in the workers' environment, a mode-600 file named by <NAME>_FILE.
SECRET_WORKER_ENV = SECRET_ENV


# ------------------------------------------------------------------ public results


@dataclass(frozen=True)
class WesService:
    """A running stack: the endpoint URL and where its credentials are (never the password itself)."""

    url: str
    user: str
    password_file: Path
    state_dir: Path
    pids: dict[str, int]


@dataclass(frozen=True)
class WesStatus:
    """Each process up/down with its pid; ``up`` only when all are and the endpoint answers."""

    state_dir: Path
    url: str
    pids: dict[str, int | None]
    answers: bool

    @property
    def up(self) -> bool:
        return self.answers and all(self.pids.values())

    def as_dict(self) -> dict[str, Any]:
        return {"state_dir": str(self.state_dir), "url": self.url, "up": self.up, "pids": self.pids}


# ------------------------------------------------------------------ state directory


class _Layout:
    """Every path of a stack, derived from its state dir (see the module docstring)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.state_file = root / "wes.json"
        self.password_file = root / "password"
        self.htpasswd = root / "htpasswd"
        self.broker_file = root / "broker.url"
        self.redis = root / "redis"
        self.redis_conf = self.redis / "redis.conf"
        self.nginx = root / "nginx"
        self.nginx_conf = self.nginx / "nginx.conf"
        self.workflows = root / "workflows"
        self.state_store = self.workflows / "state_store"
        self.work = root / "work"
        self.logs = root / "logs"
        self.bin = root / "bin"
        # toil server (gunicorn) listens on a unix socket in a mode-700 folder of the service user,
        # never on TCP: only nginx (basic auth) reaches it (issue 21 #4a). gunicorn binds
        # ``<host>:<port>`` as given, so ``unix:<api.sock>`` with port 0 makes the file
        # ``api.sock:0``; nginx cannot name a path with a colon, so it connects through the link.
        self.sock_dir = root / "sock"
        self.api_socket = self.sock_dir / "api.sock"
        self.api_socket_file = self.sock_dir / "api.sock:0"
        self.pid = {name: root / f"{name}.pid" for name in ("redis", "worker", "server", "nginx")}


@dataclass
class _State(JsonState):
    """What ``wes.json`` remembers between commands."""

    port: int = DEFAULT_PORT
    api_port: int = 0  # unused since the API is on a unix socket (kept so older wes.json still load)
    redis_port: int = 0
    workers: int = DEFAULT_WORKERS
    engine_opts: list[str] = field(default_factory=list)  # extra toil-cwl-runner defaults (--opt)
    user: str = DEFAULT_USER
    password: str = field(default_factory=lambda: secrets.token_urlsafe(18))
    redis_password: str = field(default_factory=lambda: secrets.token_urlsafe(24))

    @property
    def url(self) -> str:
        return f"http://{_proc.LOOPBACK}:{self.port}{API_PATH}"


def default_state_dir() -> Path:
    """``$EOPACK_WES_STATE_DIR``, else ``<repo>/runs/services/wes`` (ignored by git)."""
    return package.service_state_dir("wes", STATE_DIR_ENV)


def wes_dir() -> Path:
    """The repository's ``wes/`` folder: templates, the Celery app, the reconcile script."""
    return package.repo_root() / "wes"


def local_url(state_dir: Path | None = None) -> str | None:
    """The endpoint of the local stack configured in ``state_dir`` (None if never started there)."""
    return client.local_url((state_dir or default_state_dir()).resolve())


def local_credentials(url: str, state_dir: Path | None = None) -> tuple[str, str] | None:
    """(user, password) of the local stack when ``url`` is its endpoint, else None."""
    return client.local_credentials(url, (state_dir or default_state_dir()).resolve())


# ------------------------------------------------------------------ the server venv


def _requirements() -> Path:
    return wes_dir() / "requirements-server.txt"


def server_venv_dir() -> Path:
    env = os.environ.get(VENV_ENV)
    return Path(env) if env else package.repo_root() / ".cache" / "venvs" / "toil-server"


def ensure_server_venv(progress: Progress | None = None) -> Path:
    """The server venv, created or refreshed from wes/requirements-server.txt when it changed.

    Why a venv of its own: the server needs a Toil version (and Celery, Redis client, gunicorn)
    that the workspace lock must not be bent to; it is made by this code from PyPI, so a fresh
    clone gets the same thing. ``$EOPACK_WES_SERVER_VENV`` points at a prepared one instead.
    """
    say = progress or quiet
    venv = server_venv_dir()
    reqs = _requirements().read_text()
    stamp = venv / ".eopack-requirements"
    if os.environ.get(VENV_ENV) or (stamp.exists() and stamp.read_text() == reqs):
        if not (venv / "bin" / "toil").exists():
            raise ServiceUnavailableError(
                SERVICE, f"{venv} has no bin/toil", f"Unset {VENV_ENV} or delete {venv} and retry."
            )
        return venv
    base = getattr(sys, "_base_executable", sys.executable)
    log = venv.parent / "toil-server-install.log"
    venv.parent.mkdir(parents=True, exist_ok=True)
    say(f"creating the Toil WES server venv {venv} (Toil {SERVER_TOIL}, ~1 min; log {log})")
    fix = f"See {log}; PyPI must be reachable (pip honours PIP_INDEX_URL/PIP_CERT)."
    _proc.run_checked(
        [base, "-m", "venv", "--clear", str(venv)], service=SERVICE, what="python -m venv", log=log, fix=fix
    )
    _proc.run_checked(
        [
            str(venv / "bin" / "pip"),
            "install",
            "--disable-pip-version-check",
            "-q",
            "-r",
            str(_requirements()),
        ],
        service=SERVICE,
        what="pip install -r wes/requirements-server.txt",
        log=log,
        fix=fix,
        timeout=900,
    )
    stamp.write_text(reqs)
    return venv


# ------------------------------------------------------------------ generated files


def _htpasswd_line(user: str, password: str, log: Path) -> str:
    """``user:$6$...`` (SHA-512 crypt, which nginx checks with the system's crypt()).

    openssl reads the password on stdin, so it never appears in a process listing.
    """
    openssl = shutil.which("openssl")
    if openssl is None:
        # {SSHA} needs no external tool; nginx supports it too.
        salt = secrets.token_bytes(8)
        digest = hashlib.sha1(password.encode() + salt).digest()  # noqa: S324 (nginx's {SSHA} format)
        return f"{user}:{{SSHA}}{base64.b64encode(digest + salt).decode()}\n"
    proc = subprocess.run(
        [openssl, "passwd", "-6", "-stdin"], input=password, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise ServiceUnavailableError(SERVICE, f"openssl passwd failed: {proc.stderr.strip()}", f"See {log}.")
    return f"{user}:{proc.stdout.strip()}\n"


def _write_files(layout: _Layout, state: _State) -> None:
    for folder in (layout.redis, layout.nginx / "tmp", layout.workflows, layout.work, layout.logs):
        folder.mkdir(parents=True, exist_ok=True)
    # Runs' inputs and results, job stores, logs and the state store: the service user's only
    # (issue 21 #17); re-applied at every `up`, so a state dir made before stays private too.
    layout.sock_dir.mkdir(mode=0o700, exist_ok=True)
    for folder in (layout.root, layout.workflows, layout.work, layout.logs, layout.sock_dir):
        folder.chmod(0o700)
    write_secret(layout.password_file, state.password + "\n")
    if not layout.htpasswd.exists() or not layout.htpasswd.read_text().startswith(state.user + ":"):
        write_secret(layout.htpasswd, _htpasswd_line(state.user, state.password, layout.logs / "setup.log"))
    write_secret(
        layout.broker_file, f"redis://:{state.redis_password}@{_proc.LOOPBACK}:{state.redis_port}/0\n"
    )
    write_secret(
        layout.redis_conf,
        "# generated by eopack wes up; edits are overwritten\n"
        f"bind {_proc.LOOPBACK}\nport {state.redis_port}\nrequirepass {state.redis_password}\n"
        f'dir {layout.redis}\nappendonly yes\nappendfsync everysec\nsave ""\n'
        "daemonize no\nprotected-mode yes\n",
    )
    user_line = (
        "user root root;  # workers read the htpasswd in a root-owned state dir\n"
        if os.geteuid() == 0
        else ""
    )
    values = {
        "user_line": user_line,
        "pid_file": layout.pid["nginx"],
        "logs": layout.logs,
        "tmp": layout.nginx / "tmp",
        "host": _proc.LOOPBACK,
        "port": state.port,
        "api_socket": layout.api_socket,
        "htpasswd": layout.htpasswd,
    }
    text = (wes_dir() / "nginx.conf.template").read_text()
    for key, value in values.items():
        text = text.replace(f"@{key}@", str(value))
    layout.nginx_conf.write_text(text)


# ------------------------------------------------------------------ processes


def _pid(layout: _Layout, name: str) -> int | None:
    """The pid of component ``name`` when it runs from this state dir (a recycled pid is not ours)."""
    return owned_pid(layout.pid[name], layout.root)


def _worker_env(layout: _Layout, venv: Path) -> dict[str, str]:
    """The clean environment of the Celery workers, and so of every toil-cwl-runner and tool.

    PATH: the engine shim (bin/toil-cwl-runner), the workspace venv (the tools' console scripts,
    which a tool run without containers finds on the engine's PATH), then the server venv, then
    the system. EOPACK_WES_TOOL_ENV names the variables the tools get (see eopack_wes_engine.py).
    """
    workspace_bin = str(Path(sys.executable).parent)
    env = {
        "PATH": os.pathsep.join(
            [
                str(layout.bin),
                workspace_bin,
                str(venv / "bin"),
                "/usr/local/sbin",
                "/usr/local/bin",
                "/usr/sbin",
                "/usr/bin",
                "/sbin",
                "/bin",
            ]
        ),
        "HOME": os.environ.get("HOME", str(layout.root)),
        "LANG": "C.UTF-8",
        "TMPDIR": str(layout.work),
        "PYTHONPATH": str(wes_dir()),
        "EOPACK_WES_BROKER_FILE": str(layout.broker_file),
    }
    # eopack's own Slurm (runs/services/slurm) unless the machine has a cluster configured;
    # set even before that cluster exists, so `--batchSystem=slurm` works once it is up.
    if slurm.machine_conf() is None:
        env["SLURM_CONF"] = str(slurm.config_path())
    env.update({name: os.environ[name] for name in WORKER_ENV if name in os.environ})
    # Secrets by file (issue 21 #2): in container mode Toil logs the tools' `docker run --env=...`
    # line into each run's stderr. The tool reads DASK_GATEWAY_PASSWORD_FILE instead (eo-common's
    # dask_cluster); TOOL_ENV names only what tools may see, never a secret.
    for name in SECRET_WORKER_ENV:
        value = env.pop(name, None)
        if value:
            path = layout.root / name.lower()
            write_secret(path, value)
            env[f"{name}_FILE"] = str(path)
    env[TOOL_ENV] = ",".join(name for name in WORKER_ENV if name in env)
    return env


def _write_engine_shim(layout: _Layout) -> Path:
    """bin/toil-cwl-runner: runs wes/eopack_wes_engine.py with this (the workspace) interpreter."""
    layout.bin.mkdir(parents=True, exist_ok=True)
    shim = layout.bin / "toil-cwl-runner"
    shim.write_text(
        "#!/bin/sh\n# eopack wes up: the workspace engine; the tools get only the variables in WORKER_ENV.\n"
        f'exec {shlex.quote(sys.executable)} {shlex.quote(str(wes_dir() / "eopack_wes_engine.py"))} "$@"\n'
    )
    shim.chmod(0o755)
    return shim


def _server_opts(layout: _Layout, extra: list[str]) -> list[str]:
    """Default toil-cwl-runner options of every run (a run's workflow_engine_parameters come after).

    ``extra`` is the site's choice (``eopack wes up --engine-opt``), for clients that cannot send
    engine parameters, like ZOO-Project's runner: ``--batchSystem=slurm``, ``--no-container``.
    """
    return [
        *(f"--opt={opt}" for opt in extra),
        f"--opt=--workDir={layout.work}",
        # Failed jobs' logs next to the run, for `eopack wes logs`.
        "--opt=--logInfo",
    ]


def _start_redis(layout: _Layout) -> int:
    redis = shutil.which("redis-server")
    if redis is None:
        raise ServiceUnavailableError(SERVICE, "redis-server is not installed", SETUP_FIX)
    return _proc.spawn(
        [redis, str(layout.redis_conf)],
        log=layout.logs / "redis.log",
        cwd=layout.redis,
        pid_file=layout.pid["redis"],
    )


def _reconcile(layout: _Layout, venv: Path) -> dict[str, Any]:
    """Run wes/reconcile.py (no worker may run): requeue reserved runs, fail interrupted ones."""
    output = _proc.run_checked(
        [
            str(venv / "bin" / "python"),
            str(wes_dir() / "reconcile.py"),
            "--work-dir",
            str(layout.workflows),
            "--state-store",
            str(layout.state_store),
            "--broker-file",
            str(layout.broker_file),
        ],
        service=SERVICE,
        what="reconcile",
        log=layout.logs / "reconcile.log",
        fix="See the log; the runs' states are unchanged.",
        timeout=120,
    )
    lines = output.strip().splitlines()
    return dict(json.loads(lines[-1])) if lines else {}


def _start_worker(layout: _Layout, venv: Path, workers: int) -> int:
    _write_engine_shim(layout)
    return _proc.spawn(
        [
            str(venv / "bin" / "celery"),
            "-A",
            "eopack_wes_celery",
            "worker",
            "--loglevel=INFO",
            f"--concurrency={workers}",
            "--prefetch-multiplier=1",
            "-O",
            "fair",
            "--without-gossip",
            "--without-mingle",
            f"--hostname=eopack-wes-{os.getpid()}@%h",
            # Revoked (canceled) task ids survive a restart, so a run canceled while QUEUED never starts.
            f"--statedb={layout.root / 'worker.state'}",
        ],
        log=layout.logs / "worker.log",
        cwd=layout.workflows,
        env=_worker_env(layout, venv),
        pid_file=layout.pid["worker"],
        umask=PRIVATE_UMASK,
    )


def _start_server(layout: _Layout, venv: Path, state: _State) -> int:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TOIL_", "WES_"))}
    env["TOIL_WES_BROKER_URL"] = layout.broker_file.read_text().strip()
    env["PATH"] = os.pathsep.join([str(venv / "bin"), env.get("PATH", "")])
    return _proc.spawn(
        [
            str(venv / "bin" / "toil"),
            "server",
            "--host",
            f"unix:{layout.api_socket}",
            "--port",
            "0",
            "--work_dir",
            str(layout.workflows),
            "--state_store",
            str(layout.state_store),
            "--workers",
            "2",
            *_server_opts(layout, state.engine_opts),
        ],
        log=layout.logs / "server.log",
        cwd=layout.workflows,
        env=env,
        pid_file=layout.pid["server"],
        umask=PRIVATE_UMASK,
    )


def _start_nginx(layout: _Layout) -> int:
    binary = nginx()
    if binary is None:
        raise ServiceUnavailableError(SERVICE, "nginx is not installed", SETUP_FIX)
    return _proc.spawn(
        nginx_command(binary, layout.nginx, layout.nginx_conf, layout.logs / "nginx-error.log"),
        log=layout.logs / "nginx.log",
        cwd=layout.nginx,
        pid_file=layout.pid["nginx"],
    )


def _wait(layout: _Layout, name: str, pid: int, ready: Callable[[], bool], timeout: float, log: str) -> None:
    def check() -> bool:
        if not _proc.pid_alive(pid):
            path = layout.logs / log
            raise ServiceUnavailableError(SERVICE, f"{name} exited:\n{_proc.tail(path)}", f"See {path}.")
        return ready()

    if not _proc.wait_until(check, timeout, interval=0.2):
        raise ServiceUnavailableError(
            SERVICE, f"{name} was not ready within {timeout:.0f} s", f"See {layout.logs / log}."
        )


def unix_http_status(path: Path, url_path: str, method: str = "GET", timeout: float = 5.0) -> int | None:
    """The HTTP status an HTTP server on the unix socket ``path`` answers, or None if none answers."""

    class _Connection(http.client.HTTPConnection):
        def connect(self) -> None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(timeout)
            try:
                sock.connect(str(path))
            except OSError:
                sock.close()
                raise
            self.sock = sock

    conn = _Connection("localhost", timeout=timeout)
    try:
        conn.request(method, url_path)
        return conn.getresponse().status
    except OSError:
        return None
    finally:
        conn.close()


def _api_ready(layout: _Layout) -> bool:
    if not layout.api_socket_file.exists():
        return False
    if not layout.api_socket.is_symlink():
        layout.api_socket.symlink_to(layout.api_socket_file.name)
    return unix_http_status(layout.api_socket, f"{API_PATH}/service-info") == 200


def _worker_ready(layout: _Layout, since: int) -> bool:
    try:
        with (layout.logs / "worker.log").open("rb") as log:
            log.seek(since)
            return b" ready." in log.read()
    except OSError:
        return False


def up(
    state_dir: Path | None = None,
    *,
    port: int | None = None,
    workers: int | None = None,
    engine_opts: list[str] | None = None,
    progress: Progress | None = None,
    timeout: float = 90.0,
) -> WesService:
    """Start (or reuse) the whole stack; idempotent. A failed start stops what it started.

    Before the workers start, runs that a previous stop interrupted are settled (wes/reconcile.py):
    queued runs are kept and run now, interrupted ones become SYSTEM_ERROR.
    """
    say = progress or quiet
    layout = _Layout((state_dir or default_state_dir()).resolve())
    layout.root.mkdir(parents=True, exist_ok=True)
    state = _State.load(layout.state_file) or _State()
    running = {name: _pid(layout, name) for name in layout.pid}
    wanted: dict[str, Any] = {"port": port, "workers": workers, "engine_opts": engine_opts}
    changed = {k: v for k, v in wanted.items() if v is not None and v != getattr(state, k)}
    if changed and any(running.values()):
        raise ServiceUnavailableError(
            SERVICE,
            f"it already runs from {layout.root} with other settings ({', '.join(changed)})",
            f"Run `eopack wes down --state-dir {layout.root}` first.",
        )
    for key, value in changed.items():
        setattr(state, key, value)
    venv = ensure_server_venv(say)
    if running["nginx"] is None:
        _proc.ensure_port_free(SERVICE, state.port, "--port")
    if running["redis"] is None or not state.redis_port:
        state.redis_port = _proc.free_port()
    if running["server"] is None:
        for stale in (layout.api_socket, layout.api_socket_file):
            stale.unlink(missing_ok=True)
    state.save(layout.state_file)
    _write_files(layout, state)
    with Rollback() as started:
        pids: dict[str, int] = {}
        if (pid := running["redis"]) is None:
            pid = _start_redis(layout)
            started.add(pid, layout.pid["redis"])
            _wait(layout, "redis-server", pid, lambda: _proc.port_in_use(state.redis_port), 20, "redis.log")
            say(f"redis-server on {_proc.LOOPBACK}:{state.redis_port} (pid {pid})")
        pids["redis"] = pid
        if (pid := running["worker"]) is None:
            report = _reconcile(layout, venv)
            if report.get("failed") or report.get("queued") or report.get("canceled"):
                say(
                    f"runs after the restart: {len(report.get('queued', []))} still queued, "
                    f"{len(report.get('failed', []))} interrupted -> SYSTEM_ERROR, "
                    f"{len(report.get('canceled', []))} CANCELING -> CANCELED"
                )
            size = (layout.logs / "worker.log").stat().st_size if (layout.logs / "worker.log").exists() else 0
            pid = _start_worker(layout, venv, state.workers)
            started.add(pid, layout.pid["worker"])
            _wait(layout, "celery worker", pid, lambda: _worker_ready(layout, size), timeout, "worker.log")
            say(f"celery worker, {state.workers} slots (pid {pid})")
        pids["worker"] = pid
        if (pid := running["server"]) is None:
            pid = _start_server(layout, venv, state)
            started.add(pid, layout.pid["server"])
            _wait(layout, "toil server", pid, lambda: _api_ready(layout), timeout, "server.log")
            say(f"toil server {SERVER_TOIL} on the unix socket {layout.api_socket} (pid {pid})")
        pids["server"] = pid
        if (pid := running["nginx"]) is None:
            pid = _start_nginx(layout)
            started.add(pid, layout.pid["nginx"])
            _wait(
                layout,
                "nginx",
                pid,
                lambda: _proc.http_status(state.url + "/service-info") == 401,
                20,
                "nginx-error.log",
            )
            say(f"nginx with basic auth on {_proc.LOOPBACK}:{state.port} (pid {pid})")
        pids["nginx"] = pid
    return WesService(state.url, state.user, layout.password_file, layout.root, pids)


def _leftovers(layout: _Layout) -> list[_proc.ProcInfo]:
    """Processes still running from this state dir: components, Toil leaders and workers, tools."""
    me = os.getpid()
    return [
        p for p in _proc.processes_under(layout.root) if p.pid != me and p.name not in ("bash", "sh", "zsh")
    ]


def down(state_dir: Path | None = None, progress: Progress | None = None) -> WesStatus:
    """Stop the stack (idempotent) and prove nothing is left.

    The workers are killed at once (SIGKILL to their process group, then every process left under
    the state dir): a run they were executing stays RUNNING in the state store and is settled as
    SYSTEM_ERROR by reconcile (here, and again at the next `up`); runs still queued wait in Redis,
    which saves its append-only file on SIGTERM.
    """
    say = progress or quiet
    layout = _Layout((state_dir or default_state_dir()).resolve())
    for name in ("nginx", "server"):
        if (pid := _pid(layout, name)) is not None:
            _proc.stop_pid(pid, timeout=15)
            say(f"{name} stopped (pid {pid})")
    worker_was_up = False
    if (pid := _pid(layout, "worker")) is not None:
        worker_was_up = True
        _proc.stop_pid(pid, timeout=0.1, sig=signal.SIGKILL)
        say(f"celery worker stopped (pid {pid})")
    for proc in _leftovers(layout) if layout.root.exists() else []:
        if proc.name != "redis-server":  # redis saves the queue on SIGTERM below
            _proc.stop_pid(proc.pid, timeout=2, group=False, sig=signal.SIGKILL)
    if worker_was_up and _pid(layout, "redis") is not None:
        venv = server_venv_dir()
        if (venv / "bin" / "python").exists():
            _reconcile(layout, venv)
    if (pid := _pid(layout, "redis")) is not None:
        _proc.stop_pid(pid, timeout=15)
        say(f"redis-server stopped (pid {pid})")
    for path in layout.pid.values():
        path.unlink(missing_ok=True)
    sweep(SERVICE, layout.root, lambda: _leftovers(layout))
    return status(layout.root)


def status(state_dir: Path | None = None) -> WesStatus:
    """Pids from the pid files, and whether the endpoint answers an authenticated service-info."""
    layout = _Layout((state_dir or default_state_dir()).resolve())
    state = _State.load(layout.state_file) or _State(password="")
    pids = {name: _pid(layout, name) for name in layout.pid}
    answers = False
    if pids["nginx"]:
        try:
            WesClient(state.url, (state.user, state.password)).service_info()
            answers = True
        except EopackError:
            answers = False
    return WesStatus(layout.root, state.url, pids, answers)
