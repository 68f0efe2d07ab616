"""A real Dask Gateway on loopback (dask-gateway-server, local backend, password auth).

Why a real server: the DaskGatewayRequirement promise ("the package gets the cluster it asks for,
and never leaks it") can only be tested against the software a platform runs. The setup follows
DESIGN.md §5: ``UnsafeLocalBackend`` (clusters are local processes of this user),
``SimpleAuthenticator`` with one generated password, the HTTP API on one port and the scheduler
(TLS) proxy on another, ``dask scheduler`` / ``dask worker`` as commands, cluster options as an
``Options(...)`` form, and an idle timeout that reaps clusters whose owner died without cleaning up.

Worker environment (issue 9, item 4): with the local backend, schedulers and workers run
``<this venv>/bin/dask``, the interpreter environment of the ``eopack`` that started the gateway,
i.e. the workspace venv, where every tool's package is installed. So graphs that ship tool
functions (``client.submit(tool_fn, ...)``) unpickle on the workers. The gateway *server* itself
may live elsewhere (see ``server_command``); only the ``dask`` it launches matters.

Everything lives in one state directory (default ``<repo>/runs/services/gateway``)::

    gateway.json              ports, URL, the password (mode 600; never printed)
    dask_gateway_config.py    copied from gateway_files/config.py on every ``up``; edits are overwritten
    dask_gateway_settings.json  what that config reads: paths, the dask executable, size limits
    eopack_record.py          gateway_files/record.py, the scheduler preload: logs/clusters/<name>/record.json
    gateway.pid
    clusters/<name>/          working directories of live clusters (removed when they stop)
    logs/gateway.log          the server's log
    logs/clusters/<name>/     scheduler.log, worker-*.log and record.json of every cluster, kept
                              after it stops (what ran where: workers seen, tasks completed)
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .. import package
from ..clients import gateway as client
from ..clients import slurm as slurm_client
from ..clients.gateway import (
    ALL_CLUSTERS_ROUTE,
    DEFAULT_USER,
    SERVICE,
    STATE_DIR_ENV,
    ClusterInfo,
    answers,
    list_clusters,
)
from ..errors import ServiceUnavailableError
from . import _proc, slurm
from .base import JsonState, Progress, Rollback, owned_pid, quiet, sweep
from .gateway_files import CONFIG, RECORD

__all__ = [
    "ALL_CLUSTERS_ROUTE",
    "BACKENDS",
    "DEFAULT_IDLE_TIMEOUT",
    "DEFAULT_PORT",
    "DEFAULT_PROXY_PORT",
    "DEFAULT_USER",
    "SERVER_ENV",
    "SERVICE",
    "STATE_DIR_ENV",
    "ClusterInfo",
    "Gateway",
    "GatewayStatus",
    "answers",
    "client_settings",
    "default_state_dir",
    "down",
    "list_clusters",
    "server_command",
    "status",
    "tool_settings",
    "up",
]

DEFAULT_PORT = 8795  # HTTP API and dashboards: the gateway URL
DEFAULT_PROXY_PORT = 8796  # scheduler traffic (TLS, routed by SNI): the proxy address
DEFAULT_IDLE_TIMEOUT = 600.0
BACKENDS = ("local", "slurm")
SERVER_ENV = "EOPACK_DASK_GATEWAY_SERVER"  # path of the dask-gateway-server executable
SERVER_FIX = (
    "Install dask-gateway-server (`uv sync` installs it in the workspace venv) or point "
    f"{SERVER_ENV} at its executable."
)


# ------------------------------------------------------------------ public results


@dataclass(frozen=True)
class Gateway:
    """A running gateway: where clients talk to it. The password stays in the state dir."""

    url: str
    proxy_address: str
    pid: int
    state_dir: Path
    user: str = DEFAULT_USER
    backend: str = "local"


@dataclass(frozen=True)
class GatewayStatus:
    """Up/down, the addresses, and the active clusters of every user."""

    state_dir: Path
    up: bool
    pid: int | None
    url: str
    proxy_address: str
    clusters: tuple[ClusterInfo, ...] = ()
    backend: str = "local"

    def as_dict(self) -> dict[str, Any]:
        """The ``status --json`` document (stable keys for scripts)."""
        return {
            "state_dir": str(self.state_dir),
            "up": self.up,
            "pid": self.pid,
            "url": self.url,
            "proxy_address": self.proxy_address,
            "backend": self.backend,
            "clusters": [{**asdict(c), "cores": c.cores, "memory": c.memory} for c in self.clusters],
        }


# ------------------------------------------------------------------ state directory


class _Layout:
    """Every path of a gateway, derived from its state dir (see the module docstring)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.state_file = root / "gateway.json"
        self.config = root / "dask_gateway_config.py"
        self.settings = root / "dask_gateway_settings.json"
        self.preload = root / "eopack_record.py"
        self.pid_file = root / "gateway.pid"
        self.clusters = root / "clusters"
        self.logs = root / "logs"
        self.log = self.logs / "gateway.log"
        self.cluster_logs = self.logs / "clusters"


@dataclass
class _State(JsonState):
    """What ``gateway.json`` remembers between commands."""

    port: int = DEFAULT_PORT
    proxy_port: int = DEFAULT_PROXY_PORT
    api_port: int = 0  # the private API behind the proxy; a free port picked at `up`
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT
    backend: str = "local"  # or "slurm": schedulers and workers are Slurm jobs
    user: str = DEFAULT_USER
    password: str = field(default_factory=lambda: secrets.token_urlsafe(18))

    @property
    def url(self) -> str:
        return f"http://{_proc.LOOPBACK}:{self.port}"

    @property
    def proxy_address(self) -> str:
        return f"gateway://{_proc.LOOPBACK}:{self.proxy_port}"


def default_state_dir() -> Path:
    """``$EOPACK_GATEWAY_STATE_DIR``, else ``<repo>/runs/services/gateway`` (ignored by git)."""
    return package.service_state_dir("gateway", STATE_DIR_ENV)


def server_command() -> list[str] | None:
    """How to start dask-gateway-server: ``$EOPACK_DASK_GATEWAY_SERVER``, next to this Python, or PATH.

    The server may come from another environment than the workers (they run this venv's ``dask``).
    """
    env = os.environ.get(SERVER_ENV)
    if env:
        return [env] if Path(env).exists() or shutil.which(env) else None
    beside = Path(sys.executable).parent / "dask-gateway-server"
    if beside.exists():
        return [str(beside)]
    found = shutil.which("dask-gateway-server")
    return [found] if found else None


def cluster_max_workers(cores: int) -> int:
    """Workers one local cluster may have: 4 per core (overcommit is fine, a fork bomb is not), ≥ 8."""
    return max(4 * cores, 8)


def _dask_executable() -> Path:
    return Path(sys.executable).parent / "dask"


# ------------------------------------------------------------------ files the server reads


def _launcher() -> Path:
    return Path(sys.executable).parent / "dask-gateway-jobqueue-launcher"


def _write_files(layout: _Layout, backend: str = "local") -> None:
    """Copy the config and the preload into the state dir, with the settings the config reads."""
    cores = os.cpu_count() or 1
    try:
        memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        memory_gib = 64.0
    settings = {
        "state_file": str(layout.state_file),
        "cluster_logs": str(layout.cluster_logs),
        "dask": str(_dask_executable()),
        "route": ALL_CLUSTERS_ROUTE,
        "host": _proc.LOOPBACK,
        "clusters": str(layout.clusters),
        "preload": str(layout.preload),
        "max_cores": max(cores, 1),
        "max_memory_gib": max(round(memory_gib, 1), 1.0),
        "cluster_max_workers": slurm_max_workers() if backend == "slurm" else cluster_max_workers(cores),
        "backend": backend,
        "launcher": str(_launcher()),
        "slurm_env": _slurm_env() if backend == "slurm" else {},
    }
    layout.settings.write_text(json.dumps(settings, indent=2) + "\n")
    shutil.copyfile(RECORD, layout.preload)
    shutil.copyfile(CONFIG, layout.config)


def _slurm_env() -> dict[str, str]:
    """``SLURM_CONF`` for the Slurm clients the backend runs: the caller's, else eopack's cluster."""
    if conf := os.environ.get("SLURM_CONF"):
        return {"SLURM_CONF": conf}
    return slurm.client_env()


def slurm_max_workers() -> int:
    """Workers one cluster may have on Slurm: the partition's CPUs less the scheduler's, ≥ 1.

    More would only queue behind the cluster's own jobs (``PD``) until it stops.
    """
    env = {**os.environ, **_slurm_env()}
    found = subprocess.run(["sinfo", "-h", "-o", "%C"], env=env, capture_output=True, text=True, check=False)
    try:
        total = max(int(line.split("/")[-1]) for line in found.stdout.split())
    except ValueError:
        total = 2
    return max(total - 1, 1)


def _check_slurm() -> None:
    """The Slurm backend needs ``sbatch`` that reaches a controller, and the jobqueue launcher."""
    if not _launcher().exists():
        raise ServiceUnavailableError(
            SERVICE, f"{_launcher()} is missing", "Run `uv sync` (dask-gateway-server[jobqueue])."
        )
    if shutil.which("sbatch") is None:
        raise ServiceUnavailableError(SERVICE, "sbatch is not on PATH", slurm.INSTALL_FIX)
    if why := slurm_client.unreachable({**os.environ, **_slurm_env()}):
        raise ServiceUnavailableError(
            SERVICE,
            f"--backend slurm needs a running Slurm: {why}",
            "Start one with `eopack slurm up` (or set SLURM_CONF to your cluster's slurm.conf).",
        )


# ------------------------------------------------------------------ up / down / status


def _pid(layout: _Layout) -> int | None:
    """The server's pid when it runs from this state dir (a recycled pid is not ours)."""
    return owned_pid(layout.pid_file, layout.root)


def up(
    state_dir: Path | None = None,
    *,
    port: int | None = None,
    proxy_port: int | None = None,
    idle_timeout: float | None = None,
    backend: str | None = None,
    progress: Progress | None = None,
    timeout: float = 60.0,
) -> Gateway:
    """Start the gateway in the background (or reuse the running one); idempotent.

    ``backend``: ``local`` (schedulers and workers are processes here) or ``slurm`` (they are Slurm
    jobs, dask-gateway-server's SlurmBackend). Ports, idle timeout and backend left as None keep
    what this state dir used last time. A failed start
    stops what it started, so no half service is left behind.
    """
    say = progress or quiet
    layout = _Layout((state_dir or default_state_dir()).resolve())
    layout.root.mkdir(parents=True, exist_ok=True)
    state = _State.load(layout.state_file) or _State()
    running = _pid(layout)
    if backend is not None and backend not in BACKENDS:
        raise ServiceUnavailableError(
            SERVICE, f"unknown backend {backend!r}", f"Use one of: {', '.join(BACKENDS)}."
        )
    wanted = {"port": port, "proxy_port": proxy_port, "idle_timeout": idle_timeout, "backend": backend}
    changed = {k: v for k, v in wanted.items() if v is not None and v != getattr(state, k)}
    if running is not None:
        if changed:
            raise ServiceUnavailableError(
                SERVICE,
                f"it already runs from {layout.root} with other settings ({', '.join(changed)})",
                f"Run `eopack gateway down --state-dir {layout.root}` first.",
            )
        if client.healthy(state.url):
            return Gateway(state.url, state.proxy_address, running, layout.root, state.user, state.backend)
    for key, value in changed.items():
        setattr(state, key, value)
    command = server_command()
    if command is None:
        raise ServiceUnavailableError(SERVICE, "dask-gateway-server is not installed", SERVER_FIX)
    if not _dask_executable().exists():
        raise ServiceUnavailableError(
            SERVICE, f"{_dask_executable()} is missing", "Run `uv sync`: workers run this venv's `dask`."
        )
    if state.backend == "slurm":
        _check_slurm()
    if running is None:
        _cancel_orphan_jobs(layout, say)  # what a server that died here left in Slurm
        _proc.ensure_port_free(SERVICE, state.port, "--port")
        _proc.ensure_port_free(SERVICE, state.proxy_port, "--proxy-port")
        state.api_port = _proc.free_port()
    state.save(layout.state_file)
    _write_files(layout, state.backend)
    layout.clusters.mkdir(exist_ok=True)
    with Rollback() as started:
        if running is None:
            env = {k: v for k, v in os.environ.items() if not k.startswith("DASK_GATEWAY_")}
            env["PATH"] = os.pathsep.join([str(_dask_executable().parent), env.get("PATH", "")])
            running = _proc.spawn(
                [*command, "-f", str(layout.config)],
                log=layout.log,
                cwd=layout.root,
                env=env,
                pid_file=layout.pid_file,
            )
            started.add(running, layout.pid_file)
            say(f"dask-gateway-server started (pid {running}); log {layout.log}")
        server = running

        def ready() -> bool:
            if not _proc.pid_alive(server):
                raise ServiceUnavailableError(
                    SERVICE, f"dask-gateway-server exited:\n{_proc.tail(layout.log)}", f"See {layout.log}."
                )
            return client.healthy(state.url) and _proc.port_in_use(state.proxy_port)

        if not _proc.wait_until(ready, timeout, interval=0.2):
            raise ServiceUnavailableError(
                SERVICE, f"{state.url} did not answer within {timeout:.0f} s", f"See {layout.log}."
            )
    return Gateway(state.url, state.proxy_address, server, layout.root, state.user, state.backend)


def _leftovers(layout: _Layout) -> list[_proc.ProcInfo]:
    """Schedulers and workers still running in a cluster dir of this gateway, or the server itself."""
    return [
        p
        for p in _proc.processes_under(layout.clusters if layout.clusters.exists() else layout.root)
        if "dask" in p.cmdline or "python" in p.name
    ]


def down(state_dir: Path | None = None, progress: Progress | None = None) -> GatewayStatus:
    """Stop the server; it stops its clusters first. Idempotent; proves no scheduler/worker is left."""
    say = progress or quiet
    layout = _Layout((state_dir or default_state_dir()).resolve())
    if (pid := _pid(layout)) is not None:
        # SIGTERM: the server stops every cluster (stop_clusters_on_shutdown) and its proxy.
        _proc.stop_pid(pid, timeout=30, sig=signal.SIGTERM)
        say(f"dask-gateway-server stopped (pid {pid})")
    layout.pid_file.unlink(missing_ok=True)
    _cancel_orphan_jobs(layout, say)
    sweep(SERVICE, layout.root, lambda: _leftovers(layout))
    return status(layout.root)


def _cancel_orphan_jobs(layout: _Layout, say: Progress) -> None:
    """Slurm jobs of this gateway's clusters that outlived their server (killed with SIGKILL, or the
    machine rebooted): a server that stops cleanly cancels its own, one that died cannot. They are
    the ``dask-gateway`` jobs working in this gateway's cluster folders (the backend's ``--chdir``),
    never another gateway's or user's."""
    state = _State.load(layout.state_file)
    if state is None or state.backend != "slurm" or shutil.which("squeue") is None:
        return
    env = {**os.environ, **_slurm_env()}
    left = slurm_client.jobs_in(layout.clusters, "dask-gateway", env)
    if not left:
        return
    slurm_client.cancel(left, env)
    if not _proc.wait_until(lambda: not slurm_client.jobs_in(layout.clusters, "dask-gateway", env), 60):
        raise ServiceUnavailableError(
            SERVICE,
            f"Slurm jobs {', '.join(left)} of its clusters did not end",
            "Cancel them with `scancel`.",
        )
    say(f"cancelled {len(left)} Slurm job(s) its clusters left (the server had died)")


def status(state_dir: Path | None = None) -> GatewayStatus:
    """Up/down from the pid file and the health route; the clusters of every user when up."""
    layout = _Layout((state_dir or default_state_dir()).resolve())
    state = _State.load(layout.state_file) or _State(password="")
    pid = _pid(layout)
    up_now = pid is not None and client.healthy(state.url)
    clusters = tuple(list_clusters(state.url, state.password, state.user)) if up_now else ()
    return GatewayStatus(layout.root, up_now, pid, state.url, state.proxy_address, clusters, state.backend)


def client_settings(url: str, state_dir: Path | None = None) -> dict[str, str]:
    """Proxy address, user and password of the local gateway when ``url`` is it (else empty)."""
    return client.client_settings(url, state_dir or default_state_dir())


def tool_settings(url: str, env: dict[str, str], state_dir: Path | None = None) -> dict[str, str]:
    """Auth and proxy for ``url``: explicit ``DASK_GATEWAY_*`` variables win over the local state."""
    return client.tool_settings(url, env, state_dir or default_state_dir())
