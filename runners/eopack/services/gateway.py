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
    dask_gateway_config.py    generated from this module on every ``up``; edits are overwritten
    eopack_record.py          scheduler preload: writes logs/clusters/<name>/record.json
    gateway.pid
    clusters/<name>/          working directories of live clusters (removed when they stop)
    logs/gateway.log          the server's log
    logs/clusters/<name>/     scheduler.log, worker-*.log and record.json of every cluster, kept
                              after it stops (what ran where: workers seen, tasks completed)
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import signal
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click

from .. import package
from ..console import err, notice, out
from ..errors import ServiceUnavailableError
from . import _proc

__all__ = [
    "DEFAULT_IDLE_TIMEOUT",
    "DEFAULT_PORT",
    "DEFAULT_PROXY_PORT",
    "DEFAULT_USER",
    "SERVER_ENV",
    "STATE_DIR_ENV",
    "ClusterInfo",
    "Gateway",
    "GatewayStatus",
    "answers",
    "client_settings",
    "default_state_dir",
    "down",
    "gateway_cli",
    "list_clusters",
    "server_command",
    "status",
    "tool_settings",
    "up",
]

SERVICE = "Dask Gateway"
DEFAULT_PORT = 8795  # HTTP API and dashboards: the gateway URL
DEFAULT_PROXY_PORT = 8796  # scheduler traffic (TLS, routed by SNI): the proxy address
DEFAULT_USER = "eopack"
DEFAULT_IDLE_TIMEOUT = 600.0
SERVER_ENV = "EOPACK_DASK_GATEWAY_SERVER"  # path of the dask-gateway-server executable
STATE_DIR_ENV = "EOPACK_GATEWAY_STATE_DIR"  # where `eopack run` looks for the local gateway's password
SERVER_FIX = (
    "Install dask-gateway-server (`uv sync` installs it in the workspace venv) or point "
    f"{SERVER_ENV} at its executable."
)
ALL_CLUSTERS_ROUTE = "/api/v1/eopack/clusters"  # added by our config: every user's clusters

Progress = Callable[[str], None]


# ------------------------------------------------------------------ public results


@dataclass(frozen=True)
class Gateway:
    """A running gateway: where clients talk to it. The password stays in the state dir."""

    url: str
    proxy_address: str
    pid: int
    state_dir: Path
    user: str = DEFAULT_USER


@dataclass(frozen=True)
class ClusterInfo:
    """One cluster as the gateway sees it (``status`` lists these)."""

    name: str
    owner: str
    status: str
    worker_cores: int
    worker_memory: int  # bytes
    workers: int  # workers running now
    image: str = ""
    start_time: float | None = None

    @property
    def cores(self) -> int:
        return self.worker_cores * self.workers

    @property
    def memory(self) -> int:
        return self.worker_memory * self.workers


@dataclass(frozen=True)
class GatewayStatus:
    """Up/down, the addresses, and the active clusters of every user."""

    state_dir: Path
    up: bool
    pid: int | None
    url: str
    proxy_address: str
    clusters: tuple[ClusterInfo, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """The ``status --json`` document (stable keys for scripts)."""
        return {
            "state_dir": str(self.state_dir),
            "up": self.up,
            "pid": self.pid,
            "url": self.url,
            "proxy_address": self.proxy_address,
            "clusters": [{**asdict(c), "cores": c.cores, "memory": c.memory} for c in self.clusters],
        }


# ------------------------------------------------------------------ state directory


class _Layout:
    """Every path of a gateway, derived from its state dir (see the module docstring)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.state_file = root / "gateway.json"
        self.config = root / "dask_gateway_config.py"
        self.preload = root / "eopack_record.py"
        self.pid_file = root / "gateway.pid"
        self.clusters = root / "clusters"
        self.logs = root / "logs"
        self.log = self.logs / "gateway.log"
        self.cluster_logs = self.logs / "clusters"


@dataclass
class _State:
    """What ``gateway.json`` remembers between commands."""

    port: int = DEFAULT_PORT
    proxy_port: int = DEFAULT_PROXY_PORT
    api_port: int = 0  # the private API behind the proxy; a free port picked at `up`
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT
    user: str = DEFAULT_USER
    password: str = field(default_factory=lambda: secrets.token_urlsafe(18))

    @property
    def url(self) -> str:
        return f"http://{_proc.LOOPBACK}:{self.port}"

    @property
    def proxy_address(self) -> str:
        return f"gateway://{_proc.LOOPBACK}:{self.proxy_port}"

    @classmethod
    def load(cls, path: Path) -> _State | None:
        try:
            raw = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        return cls(**{k: v for k, v in raw.items() if k in cls.__dataclass_fields__})

    def save(self, path: Path) -> None:
        path.touch(mode=0o600, exist_ok=True)
        path.chmod(0o600)
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")


def default_state_dir() -> Path:
    """``$EOPACK_GATEWAY_STATE_DIR``, else ``<repo>/runs/services/gateway`` (ignored by git)."""
    env = os.environ.get(STATE_DIR_ENV)
    return Path(env) if env else package.repo_root() / "runs" / "services" / "gateway"


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


def _dask_executable() -> Path:
    return Path(sys.executable).parent / "dask"


# ------------------------------------------------------------------ generated files

# The scheduler preload: a plugin that records what the cluster did, so a test (or an operator)
# can prove after the fact which workers a run got and that the tasks ran there.
_PRELOAD = '''\
"""Generated by eopack (runners/eopack/services/gateway.py); edits are overwritten."""

import json
import os
import time
from pathlib import Path

from distributed.diagnostics.plugin import SchedulerPlugin


class EopackRecord(SchedulerPlugin):
    name = "eopack-record"

    def __init__(self, scheduler):
        self.scheduler = scheduler
        cluster = os.environ.get("DASK_GATEWAY_CLUSTER_NAME", "unknown")
        self.path = Path(os.environ["EOPACK_GATEWAY_LOGS"]) / cluster / "record.json"
        self.data = {
            "cluster": cluster,
            "scheduler_pid": os.getpid(),
            "started": time.time(),
            "closed": None,
            "tasks_completed": 0,
            "tasks_erred": 0,
            "max_workers": 0,
            "workers": {},
        }

    def add_worker(self, scheduler=None, worker=None, **kwargs):
        ws = self.scheduler.workers.get(worker)
        if ws is not None:
            self.data["workers"][worker] = {
                "name": str(ws.name),
                "nthreads": ws.nthreads,
                "memory_limit": ws.memory_limit,
                "pid": ws.pid,
            }
        self.data["max_workers"] = max(self.data["max_workers"], len(self.scheduler.workers))
        self.write()

    def transition(self, key, start, finish, *args, **kwargs):
        if start == "processing" and finish == "memory":
            self.data["tasks_completed"] += 1
        elif finish == "erred":
            self.data["tasks_erred"] += 1

    def record(self):
        return dict(self.data)

    async def close(self):
        self.data["closed"] = time.time()
        self.write()

    def write(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=2))
        tmp.replace(self.path)


def dask_setup(scheduler):
    scheduler.add_plugin(EopackRecord(scheduler))
'''

_CONFIG = '''\
"""Generated by eopack (runners/eopack/services/gateway.py) on `eopack gateway up`; edits are overwritten."""

import json
import shutil
from pathlib import Path

from aiohttp import web
from dask_gateway_server.backends.local import UnsafeLocalBackend
from dask_gateway_server.options import Float, Integer, Options, String
from dask_gateway_server.routes import api_handler, default_routes

STATE = json.loads(Path({state_file!r}).read_text())
LOGS = Path({cluster_logs!r})
DASK = {dask!r}


class EopackLocalBackend(UnsafeLocalBackend):
    """The local backend, keeping each cluster's logs under the state dir after it stops."""

    def cleanup_working_directory(self, workdir):
        logs = Path(workdir) / "logs"
        if logs.is_dir():
            keep = LOGS / Path(workdir).name
            keep.mkdir(parents=True, exist_ok=True)
            for log in logs.iterdir():
                shutil.copy2(log, keep / log.name)
        super().cleanup_working_directory(workdir)


@default_routes.get({route!r})
@api_handler(user_authenticated=True)
async def all_clusters(request):
    """Every user's active clusters with their size (the stock API lists only the caller's)."""
    backend = request.app["backend"]
    found = []
    for cluster in backend.db.active_clusters():
        config = cluster.config
        get = config.get if isinstance(config, dict) else lambda k, d=None: getattr(config, k, d)
        found.append(
            {{
                "name": cluster.name,
                "owner": cluster.username,
                "status": cluster.model_status.name,
                "worker_cores": int(get("worker_cores", 1)),
                "worker_memory": int(get("worker_memory", 0)),
                "image": (get("environment", {{}}) or {{}}).get("DASK_GATEWAY_IMAGE", ""),
                "workers": sum(1 for w in cluster.workers.values() if w.is_active()),
                "start_time": cluster.start_time,
            }}
        )
    return web.json_response(found)


def options_handler(options):
    """Map the form to the cluster config; memory is asked in GiB (what dask-gateway clients send)."""
    return {{
        "worker_cores": options.worker_cores,
        "worker_memory": int(options.worker_memory * 2**30),
        "environment": {{"EOPACK_GATEWAY_LOGS": str(LOGS), "DASK_GATEWAY_IMAGE": options.image}},
    }}


c.DaskGateway.address = "{host}:%d" % STATE["api_port"]
c.Proxy.address = "{host}:%d" % STATE["port"]
c.Proxy.tcp_address = "{host}:%d" % STATE["proxy_port"]
c.DaskGateway.backend_class = EopackLocalBackend
c.DaskGateway.authenticator_class = "dask_gateway_server.auth.SimpleAuthenticator"
c.SimpleAuthenticator.password = STATE["password"]
c.LocalBackend.clusters_directory = {clusters!r}
c.ClusterConfig.scheduler_cmd = [DASK, "scheduler", "--preload", {preload!r}]
c.ClusterConfig.worker_cmd = [DASK, "worker"]
c.ClusterConfig.idle_timeout = float(STATE["idle_timeout"])
c.ClusterConfig.environment = {{"EOPACK_GATEWAY_LOGS": str(LOGS)}}
c.Backend.cluster_options = Options(
    Integer("worker_cores", 1, min=1, max={max_cores}, label="Worker cores"),
    Integer("worker_cores_limit", 1, min=1, max={max_cores}, label="Worker cores limit"),
    Float("worker_memory", 2, min=0.25, max={max_memory_gib}, label="Worker memory (GiB)"),
    String("image", "", label="Image (recorded; local workers run the gateway's environment)"),
    handler=options_handler,
)
'''


def _write_files(layout: _Layout) -> None:
    cores = os.cpu_count() or 1
    try:
        memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        memory_gib = 64.0
    layout.preload.write_text(_PRELOAD)
    layout.config.write_text(
        _CONFIG.format(
            state_file=str(layout.state_file),
            cluster_logs=str(layout.cluster_logs),
            dask=str(_dask_executable()),
            route=ALL_CLUSTERS_ROUTE,
            host=_proc.LOOPBACK,
            clusters=str(layout.clusters),
            preload=str(layout.preload),
            max_cores=max(cores, 1),
            max_memory_gib=max(round(memory_gib, 1), 1.0),
        )
    )


# ------------------------------------------------------------------ HTTP


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def list_clusters(
    url: str, password: str, user: str = DEFAULT_USER, timeout: float = 5.0
) -> list[ClusterInfo]:
    """Every user's active clusters on an eopack gateway (our config adds the route)."""
    if urlsplit(url).scheme not in ("http", "https"):
        raise ServiceUnavailableError(SERVICE, f"{url} is not an http(s) URL", "Give the gateway's http URL.")
    request = urllib.request.Request(  # noqa: S310 (scheme checked above)
        url.rstrip("/") + ALL_CLUSTERS_ROUTE, headers={"Authorization": _basic(user, password)}
    )
    try:
        with _NO_PROXY.open(request, timeout=timeout) as response:
            raw = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise ServiceUnavailableError(
            SERVICE, f"{url} answered HTTP {exc.code} to the cluster list", "Check the password."
        ) from exc
    except (urllib.error.URLError, OSError) as exc:
        raise ServiceUnavailableError(
            SERVICE, f"{url} does not answer ({exc})", "Start it with `eopack gateway up`."
        ) from exc
    return [ClusterInfo(**{k: v for k, v in c.items() if k in ClusterInfo.__dataclass_fields__}) for c in raw]


def _healthy(url: str) -> bool:
    return _proc.http_status(url.rstrip("/") + "/api/health") == 200


# ------------------------------------------------------------------ up / down / status


def _pid(layout: _Layout) -> int | None:
    """The server's pid when it runs from this state dir (a recycled pid is not ours)."""
    pid = _proc.read_pid(layout.pid_file)
    info = _proc.proc_info(pid) if pid else None
    return pid if info is not None and _proc.mentions(info, layout.root) else None


def up(
    state_dir: Path | None = None,
    *,
    port: int | None = None,
    proxy_port: int | None = None,
    idle_timeout: float | None = None,
    progress: Progress | None = None,
    timeout: float = 60.0,
) -> Gateway:
    """Start the gateway in the background (or reuse the running one); idempotent.

    Ports and idle timeout left as None keep what this state dir used last time. A failed start
    stops what it started, so no half service is left behind.
    """
    say = progress or (lambda _msg: None)
    layout = _Layout((state_dir or default_state_dir()).resolve())
    layout.root.mkdir(parents=True, exist_ok=True)
    state = _State.load(layout.state_file) or _State()
    running = _pid(layout)
    wanted = {"port": port, "proxy_port": proxy_port, "idle_timeout": idle_timeout}
    changed = {k: v for k, v in wanted.items() if v is not None and v != getattr(state, k)}
    if running is not None:
        if changed:
            raise ServiceUnavailableError(
                SERVICE,
                f"it already runs from {layout.root} with other settings ({', '.join(changed)})",
                f"Run `eopack gateway down --state-dir {layout.root}` first.",
            )
        if _healthy(state.url):
            return Gateway(state.url, state.proxy_address, running, layout.root, state.user)
    for key, value in changed.items():
        setattr(state, key, value)
    command = server_command()
    if command is None:
        raise ServiceUnavailableError(SERVICE, "dask-gateway-server is not installed", SERVER_FIX)
    if not _dask_executable().exists():
        raise ServiceUnavailableError(
            SERVICE, f"{_dask_executable()} is missing", "Run `uv sync`: workers run this venv's `dask`."
        )
    if running is None:
        _proc.ensure_port_free(SERVICE, state.port, "--port")
        _proc.ensure_port_free(SERVICE, state.proxy_port, "--proxy-port")
        state.api_port = _proc.free_port()
    state.save(layout.state_file)
    _write_files(layout)
    layout.clusters.mkdir(exist_ok=True)
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
        say(f"dask-gateway-server started (pid {running}); log {layout.log}")

    def ready() -> bool:
        if not _proc.pid_alive(running):
            raise ServiceUnavailableError(
                SERVICE, f"dask-gateway-server exited:\n{_proc.tail(layout.log)}", f"See {layout.log}."
            )
        return _healthy(state.url) and _proc.port_in_use(state.proxy_port)

    try:
        if not _proc.wait_until(ready, timeout, interval=0.2):
            raise ServiceUnavailableError(
                SERVICE, f"{state.url} did not answer within {timeout:.0f} s", f"See {layout.log}."
            )
    except ServiceUnavailableError:
        _proc.stop_pid(running)
        layout.pid_file.unlink(missing_ok=True)
        raise
    return Gateway(state.url, state.proxy_address, running, layout.root, state.user)


def _leftovers(layout: _Layout) -> list[_proc.ProcInfo]:
    """Schedulers and workers still running in a cluster dir of this gateway, or the server itself."""
    return [
        p
        for p in _proc.processes_under(layout.clusters if layout.clusters.exists() else layout.root)
        if "dask" in p.cmdline or "python" in p.name
    ]


def down(state_dir: Path | None = None, progress: Progress | None = None) -> GatewayStatus:
    """Stop the server; it stops its clusters first. Idempotent; proves no scheduler/worker is left."""
    say = progress or (lambda _msg: None)
    layout = _Layout((state_dir or default_state_dir()).resolve())
    if (pid := _pid(layout)) is not None:
        # SIGTERM: the server stops every cluster (stop_clusters_on_shutdown) and its proxy.
        _proc.stop_pid(pid, timeout=30, sig=signal.SIGTERM)
        say(f"dask-gateway-server stopped (pid {pid})")
    layout.pid_file.unlink(missing_ok=True)
    left = _leftovers(layout) if layout.root.exists() else []
    for proc in left:
        _proc.stop_pid(proc.pid, timeout=2, group=False, sig=signal.SIGKILL)
    still = _leftovers(layout) if left else []
    if still:
        names = ", ".join(f"{p.pid} {p.name}" for p in still)
        raise ServiceUnavailableError(SERVICE, f"processes survived the stop: {names}", "Kill them by pid.")
    return status(layout.root)


def status(state_dir: Path | None = None) -> GatewayStatus:
    """Up/down from the pid file and the health route; the clusters of every user when up."""
    layout = _Layout((state_dir or default_state_dir()).resolve())
    state = _State.load(layout.state_file) or _State(password="")
    pid = _pid(layout)
    up_now = pid is not None and _healthy(state.url)
    clusters = tuple(list_clusters(state.url, state.password, state.user)) if up_now else ()
    return GatewayStatus(layout.root, up_now, pid, state.url, state.proxy_address, clusters)


def client_settings(url: str, state_dir: Path | None = None) -> dict[str, str]:
    """What a tool needs to use the local gateway at ``url``: proxy address, user and password.

    Empty when ``url`` is not the gateway of ``state_dir`` (another gateway brings its own
    ``DASK_GATEWAY_*`` settings). The password is for the process environment only: never write
    it into a file of a run.
    """
    layout = _Layout((state_dir or default_state_dir()).resolve())
    state = _State.load(layout.state_file)
    if state is None:
        return {}
    given, ours = urlsplit(url), urlsplit(state.url)
    local = {"127.0.0.1", "localhost"}
    same_host = given.hostname == ours.hostname or {given.hostname, ours.hostname} <= local
    if not (same_host and given.port == ours.port):
        return {}
    return {
        "DASK_GATEWAY_PROXY_ADDRESS": state.proxy_address,
        "DASK_GATEWAY_USER": state.user,
        "DASK_GATEWAY_PASSWORD": state.password,
    }


def answers(url: str) -> bool:
    """True when something answers the gateway health route at ``url`` from this host.

    Only a hint for the user: the tool may run where the gateway is reachable and this host is
    not (a batch node, a WES server), so the tool's own failure is the authoritative error.
    """
    return _proc.http_status(url.rstrip("/") + "/api/health") is not None


# ------------------------------------------------------------------ CLI (registered in eopack.cli)

_state_option = click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help=f"Where config, password, pid file and logs live (default ${STATE_DIR_ENV} or "
    "<repo>/runs/services/gateway).",
)


@click.group("gateway")
def gateway_cli() -> None:
    """A local Dask Gateway (dask-gateway-server, local backend) for --dask-gateway-url."""


@gateway_cli.command("up")
@_state_option
@click.option("--port", type=int, help=f"HTTP port of the gateway URL (default {DEFAULT_PORT}).")
@click.option("--proxy-port", type=int, help=f"Scheduler proxy port (default {DEFAULT_PROXY_PORT}).")
@click.option(
    "--idle-timeout",
    type=float,
    help=f"Seconds before an idle cluster is shut down (default {DEFAULT_IDLE_TIMEOUT:.0f}).",
)
def up_cmd(
    state_dir: Path | None, port: int | None, proxy_port: int | None, idle_timeout: float | None
) -> None:
    """Start the gateway in the background (or reuse it); prints the gateway URL last."""
    gw = up(state_dir, port=port, proxy_port=proxy_port, idle_timeout=idle_timeout, progress=notice)
    notice(
        f"proxy {gw.proxy_address}; user {gw.user}, password in {gw.state_dir / 'gateway.json'}; "
        f"logs in {gw.state_dir / 'logs'}"
    )
    click.echo(gw.url)


@gateway_cli.command("down")
@_state_option
def down_cmd(state_dir: Path | None) -> None:
    """Stop the gateway and every cluster it runs."""
    down(state_dir, progress=notice)
    notice("Dask Gateway stopped")


def _gib(value: int) -> str:
    return f"{value / 2**30:.1f} GiB"


@gateway_cli.command("status")
@_state_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def status_cmd(state_dir: Path | None, as_json: bool) -> None:
    """Show the gateway and its clusters (owner, workers, cores, memory); exit 3 when it is down."""
    report = status(state_dir)
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
    else:
        colour = "green" if report.up else "red"
        out.print(
            f"gateway [{colour}]{'up' if report.up else 'down'}[/] pid {report.pid or '-'} {report.url}"
        )
        out.print(f"proxy   {report.proxy_address}")
        out.print(f"clusters: {len(report.clusters)}")
        for c in report.clusters:
            out.print(
                f"  {c.name}  owner {c.owner}  {c.status.lower()}  {c.workers} worker(s) × "
                f"{c.worker_cores} core(s), {_gib(c.worker_memory)}  = {c.cores} cores, {_gib(c.memory)}"
            )
        err.print(f"state dir: {report.state_dir}")
    if not report.up:
        sys.exit(3)


def tool_settings(url: str, env: Mapping[str, str], state_dir: Path | None = None) -> dict[str, str]:
    """Auth and proxy for ``url``: explicit ``DASK_GATEWAY_*`` variables win over the local state."""
    found = client_settings(url, state_dir)
    for name in ("DASK_GATEWAY_PROXY_ADDRESS", "DASK_GATEWAY_USER", "DASK_GATEWAY_PASSWORD"):
        if env.get(name):
            found[name] = env[name]
    return found
