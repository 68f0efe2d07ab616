"""``eopack gateway|stac|slurm|wes|docker|registry|s3 up|down|status``: one builder for all seven services.

Every service gets the same three commands with the same exit codes:

* ``up`` prints progress on stderr and one line on stdout last (the URL or path a script needs);
  0 when the service runs, 1 (one error line) when it cannot be started;
* ``down`` stops what eopack started; 0, or 1 when something survived;
* ``status [--json]`` prints the state (``--json``: a document with stable keys); 0 when up, 3 when not.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from ..clients import wes as wes_client
from ..console import Progress, err, notice, out
from ..errors import EopackError
from ..package import repo_root
from ..services import docker, gateway, registry, s3, slurm, stac, wes

__all__ = [
    "ServiceSpec",
    "docker_cli",
    "gateway_cli",
    "registry_cli",
    "s3_cli",
    "service_group",
    "slurm_cli",
    "stac_cli",
    "wes_cli",
]

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]
EXIT_DOWN = 3


@dataclass(frozen=True)
class ServiceSpec:
    """What the builder needs from one service; the callables take the parsed options as keywords."""

    name: str
    help: str
    up: Callable[..., Any]  # (**options) -> what started; its line is printed by ``announce``
    announce: Callable[[Any], str]  # the stdout line of ``up`` (URL, config path)
    down: Callable[..., Any]
    stopped: str  # the notice after ``down``
    status: Callable[..., Any]  # (**options) -> a report with ``up`` (and ``as_dict()`` or dataclass fields)
    show: Callable[[Any], None]  # the human ``status`` text
    up_help: str
    down_help: str
    status_help: str
    common: Sequence[Decorator] = ()  # options of all three commands (``--state-dir``)
    up_options: Sequence[Decorator] = ()
    status_options: Sequence[Decorator] = ()
    notes: Callable[[Any], Sequence[str]] = lambda _found: ()  # notices after ``up``
    status_hook: Callable[..., bool] | None = None  # handles ``status`` itself when it returns True
    extra: Sequence[click.Command] = field(default_factory=tuple)


def _as_dict(report: Any) -> dict[str, Any]:
    if hasattr(report, "as_dict"):
        return dict(report.as_dict())
    raw = (
        dataclasses.asdict(report)
        if dataclasses.is_dataclass(report) and not isinstance(report, type)
        else {}
    )
    doc = {k: str(v) if isinstance(v, Path) else v for k, v in raw.items()}
    doc["up"] = bool(report.up)
    return doc


def _apply(func: Callable[..., Any], decorators: Sequence[Decorator]) -> Callable[..., Any]:
    for decorate in reversed(decorators):
        func = decorate(func)
    return func


def service_group(spec: ServiceSpec) -> click.Group:
    """The ``up``/``down``/``status [--json]`` group of one service (see the module docstring)."""

    @click.group(spec.name, help=spec.help)
    def group() -> None:
        pass

    def up_cmd(**options: Any) -> None:
        found = spec.up(**options, progress=notice)
        for line in spec.notes(found):
            notice(line)
        click.echo(spec.announce(found))

    def down_cmd(**options: Any) -> None:
        spec.down(**options, progress=notice)
        notice(spec.stopped)

    def status_cmd(as_json: bool, **options: Any) -> None:
        if spec.status_hook is not None and spec.status_hook(as_json=as_json, **options):
            return
        report = spec.status(**options)
        if as_json:
            click.echo(json.dumps(_as_dict(report), indent=2))
        else:
            spec.show(report)
        if not report.up:
            sys.exit(EXIT_DOWN)

    json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
    group.command("up", help=spec.up_help)(_apply(up_cmd, [*spec.common, *spec.up_options]))
    group.command("down", help=spec.down_help)(_apply(down_cmd, list(spec.common)))
    group.command("status", help=spec.status_help)(
        _apply(status_cmd, [*spec.common, *spec.status_options, json_option])
    )
    for command in spec.extra:
        group.add_command(command)
    return group


def _state_option(default: str, what: str = "Where config, state and logs live") -> Decorator:
    return click.option(
        "--state-dir",
        type=click.Path(file_okay=False, path_type=Path),
        help=f"{what} (default {default}).",
    )


def _gib(value: int) -> str:
    return f"{value / 2**30:.1f} GiB"


# ------------------------------------------------------------------ Dask Gateway


def _show_gateway(report: gateway.GatewayStatus) -> None:
    colour = "green" if report.up else "red"
    out.print(f"gateway [{colour}]{'up' if report.up else 'down'}[/] pid {report.pid or '-'} {report.url}")
    out.print(f"proxy   {report.proxy_address}  backend {report.backend}")
    out.print(f"clusters: {len(report.clusters)}")
    for c in report.clusters:
        out.print(
            f"  {c.name}  owner {c.owner}  {c.status.lower()}  {c.workers} worker(s) × "
            f"{c.worker_cores} core(s), {_gib(c.worker_memory)}  = {c.cores} cores, {_gib(c.memory)}"
        )
    err.print(f"state dir: {report.state_dir}")


gateway_cli = service_group(
    ServiceSpec(
        name="gateway",
        help="A local Dask Gateway (dask-gateway-server, local backend) for --dask-gateway-url.",
        up=lambda state_dir, **kw: gateway.up(state_dir, **kw),
        announce=lambda gw: str(gw.url),
        notes=lambda gw: [
            f"proxy {gw.proxy_address}; user {gw.user}, password in {gw.state_dir / 'gateway.json'}; "
            f"logs in {gw.state_dir / 'logs'}"
        ],
        down=lambda state_dir, progress: gateway.down(state_dir, progress=progress),
        stopped="Dask Gateway stopped",
        status=lambda state_dir, **_: gateway.status(state_dir),
        show=_show_gateway,
        up_help="Start the gateway in the background (or reuse it); prints the gateway URL last.",
        down_help="Stop the gateway and every cluster it runs.",
        status_help="Show the gateway and its clusters (owner, workers, cores, memory); exit 3 when it is down.",
        common=[
            _state_option(
                f"${gateway.STATE_DIR_ENV} or <repo>/runs/services/gateway",
                "Where config, password, pid file and logs live",
            )
        ],
        up_options=[
            click.option(
                "--port", type=int, help=f"HTTP port of the gateway URL (default {gateway.DEFAULT_PORT})."
            ),
            click.option(
                "--proxy-port", type=int, help=f"Scheduler proxy port (default {gateway.DEFAULT_PROXY_PORT})."
            ),
            click.option(
                "--idle-timeout",
                type=float,
                help=f"Seconds before an idle cluster is shut down (default {gateway.DEFAULT_IDLE_TIMEOUT:.0f}).",
            ),
            click.option(
                "--backend",
                type=click.Choice(gateway.BACKENDS),
                help="local: schedulers and workers are processes here (default); slurm: they are Slurm "
                "jobs (needs `eopack slurm up` or SLURM_CONF).",
            ),
        ],
    )
)


# ------------------------------------------------------------------ STAC API


def _show_stac(report: stac.StackStatus) -> None:
    for c in report.components:
        colour = "green" if c.up else "red"
        out.print(f"{c.name:9} [{colour}]{'up' if c.up else 'down':5}[/] pid {c.pid or '-':<8} {c.url or ''}")
    err.print(f"state dir: {report.state_dir}")


stac_cli = service_group(
    ServiceSpec(
        name="stac",
        help="A local STAC API (pgstac + stac-fastapi), asset server, tile server and STAC Browser.",
        up=lambda data_dir, state_dir, **kw: stac.up(data_dir, state_dir, **kw),
        announce=lambda stack: str(stack.api_url),
        notes=lambda stack: [
            f"assets on {stack.assets_url}; logs in {stack.state_dir / 'logs'}",
            f"tiles (titiler-pgstac) on {stack.tiles_url}",
            f"STAC Browser on {stack.browser}"
            if stack.browser
            else "STAC Browser is not built: run `make setup` (scripts/stac-browser.sh; needs npm)",
        ],
        down=lambda state_dir, progress: stac.down(state_dir, progress=progress),
        stopped="STAC stack stopped",
        status=lambda state_dir, **_: stac.status(state_dir),
        show=_show_stac,
        up_help="Start the stack (or reuse it) and load the catalog; prints the API URL last.",
        down_help="Stop every process of the stack (the database stays on disk for the next `up`).",
        status_help="Show each component up/down with pid and URL; exit 3 unless all are up.",
        common=[_state_option("<repo>/runs/services/stac", "Where data, pid files and logs live")],
        up_options=[
            click.option(
                "--data",
                "data_dir",
                type=click.Path(path_type=Path),
                help="Static STAC catalog folder (default <repo>/data/sample, generated when missing).",
            ),
            click.option("--pg-port", type=int, help=f"PostgreSQL port (default {stac.DEFAULT_PG_PORT})."),
            click.option("--api-port", type=int, help=f"STAC API port (default {stac.DEFAULT_API_PORT})."),
            click.option(
                "--assets-port", type=int, help=f"Asset server port (default {stac.DEFAULT_ASSETS_PORT})."
            ),
        ],
    )
)


# ------------------------------------------------------------------ Slurm


def _show_slurm(cluster: slurm.SlurmCluster) -> None:
    colour = "green" if cluster.up else "red"
    out.print(f"[{colour}]{cluster.describe()}[/]")
    err.print(f"jobs finished so far: {cluster.jobcomp}")


slurm_cli = service_group(
    ServiceSpec(
        name="slurm",
        help="A Slurm cluster on this machine (one node on loopback, or --nodes N in network namespaces), "
        "for `eopack run --runner toil-slurm`.",
        up=lambda state_dir, progress, nodes: slurm.up(state_dir, progress=progress, nodes=nodes),
        announce=lambda cluster: str(cluster.conf),
        notes=lambda cluster: [
            (
                f"nodes {', '.join(f'{n} {s}' for n, s in sorted(cluster.node_states.items()))}"
                if cluster.nodes > 1
                else f"node {slurm.NODE} {cluster.node_state}"
            )
            + f"; logs in {cluster.state_dir / 'logs'}"
        ],
        down=lambda state_dir, progress: slurm.down(state_dir, progress=progress),
        stopped="Slurm stopped",
        status=lambda state_dir, **_: slurm.status(state_dir),
        show=_show_slurm,
        up_help="Install (as root) and start munged, slurmctld and slurmd; prints the SLURM_CONF path last.",
        down_help="Stop every daemon of the cluster (its state dir stays for the next `up`).",
        status_help="Show the daemons and the node state; exit 3 unless the cluster is up.",
        common=[_state_option("<repo>/runs/services/slurm")],
        up_options=[
            click.option(
                "--nodes",
                type=click.IntRange(min=1),
                default=1,
                show_default=True,
                help="Compute nodes; more than 1 puts slurmctld and each slurmd in a network namespace "
                "of its own (root; nothing on the machine's network).",
            )
        ],
    )
)


# ------------------------------------------------------------------ Toil WES (and a WES client)

_url_option = click.option(
    "--wes-url",
    envvar="WES_URL",
    metavar="URL",
    help="WES endpoint (default $WES_URL, else the local stack's). Credentials: WES_USER/WES_PASSWORD or ~/.netrc.",
)
_wes_state = _state_option(
    f"${wes_client.STATE_DIR_ENV} or <repo>/runs/services/wes", "Where config, passwords, runs and logs live"
)


def _wes(wes_url: str | None, state_dir: Path | None) -> wes_client.WesClient:
    local = state_dir or wes.default_state_dir()
    return wes_client.WesClient.from_environment(wes_client.resolve_url(wes_url, local), local)


def _show_wes(report: wes.WesStatus) -> None:
    for name, pid in report.pids.items():
        colour = "green" if pid else "red"
        out.print(f"{name:7} [{colour}]{'up' if pid else 'down':5}[/] pid {pid or '-'}")
    out.print(f"endpoint {report.url} {'answers' if report.answers else 'does not answer'}")
    err.print(f"state dir: {report.state_dir}")


def _wes_run_status(as_json: bool, state_dir: Path | None, run_id: str | None, wes_url: str | None) -> bool:
    """``eopack wes status RUN_ID``: that run's state (without RUN_ID the stack's, as for every service)."""
    if not run_id:
        return False
    state = _wes(wes_url, state_dir).status(run_id)
    click.echo(json.dumps({"run_id": run_id, "state": state}) if as_json else state)
    return True


@click.command("list")
@_url_option
@_wes_state
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def wes_list_cmd(wes_url: str | None, state_dir: Path | None, as_json: bool) -> None:
    """Every run the endpoint knows, with its state."""
    runs = list(_wes(wes_url, state_dir).list_runs())
    if as_json:
        click.echo(json.dumps(runs, indent=2))
        return
    for run in runs:
        click.echo(f"{run['run_id']}\t{run['state']}")


@click.command("logs")
@click.argument("run_id")
@_url_option
@_wes_state
@click.option("--stdout", "which", flag_value="stdout", help="The engine's stdout (the CWL output object).")
@click.option("--stderr", "which", flag_value="stderr", default=True, help="The engine's log (default).")
def wes_logs_cmd(run_id: str, wes_url: str | None, state_dir: Path | None, which: str) -> None:
    """The run's state, command and exit code on stderr, then its log on stdout."""
    client = _wes(wes_url, state_dir)
    log = client.run_log(run_id)
    run_log = log.get("run_log") or {}
    notice(f"{run_id}: {log.get('state')} (exit {run_log.get('exit_code')})")
    click.echo(client.log_text(run_id, which), nl=False)


@click.command("cancel")
@click.argument("run_id")
@_url_option
@_wes_state
@click.option("--wait/--no-wait", default=True, show_default=True, help="Wait until the run is CANCELED.")
def wes_cancel_cmd(run_id: str, wes_url: str | None, state_dir: Path | None, wait: bool) -> None:
    """Cancel a run; prints its final state."""
    client = _wes(wes_url, state_dir)
    client.cancel(run_id)
    click.echo(client.wait(run_id, timeout=120) if wait else client.status(run_id))


wes_cli = service_group(
    ServiceSpec(
        name="wes",
        help="A local Toil WES endpoint (Redis + Celery + toil server + nginx basic auth), and a WES client.",
        up=lambda state_dir, engine_opts, **kw: wes.up(
            state_dir, engine_opts=list(engine_opts) or None, **kw
        ),
        announce=lambda service: str(service.url),
        notes=lambda service: [
            f"credentials: user {service.user!r}, password in {service.password_file} (mode 600); "
            f'export WES_USER={service.user} WES_PASSWORD="$(cat {service.password_file})"',
            f"runs and logs in {service.state_dir}",
        ],
        down=lambda state_dir, progress: wes.down(state_dir, progress=progress),
        stopped="WES stack stopped",
        status=lambda state_dir, **_: wes.status(state_dir),
        show=_show_wes,
        up_help="Start the stack (or reuse it); prints the endpoint URL last.",
        down_help="Stop every process of the stack; queued runs wait in Redis for the next `up`.",
        status_help="Without RUN_ID: the local stack (exit 3 unless up). With RUN_ID: that run's state.",
        common=[_wes_state],
        up_options=[
            click.option("--port", type=int, help=f"Port of the endpoint (default {wes.DEFAULT_PORT})."),
            click.option(
                "--workers", type=int, help=f"Runs executed at once (default {wes.DEFAULT_WORKERS})."
            ),
            click.option(
                "--engine-opt",
                "engine_opts",
                multiple=True,
                metavar="OPT",
                help="A toil-cwl-runner option for every run, as --name=value (repeat), e.g. --engine-opt=--batchSystem=slurm.",
            ),
        ],
        status_options=[click.argument("run_id", required=False), _url_option],
        status_hook=_wes_run_status,
        extra=(wes_list_cmd, wes_logs_cmd, wes_cancel_cmd),
    )
)


# ------------------------------------------------------------------ Docker daemon and image registry


def _docker_down(progress: Progress) -> None:
    if not docker.down(repo_root()):
        raise EopackError(
            f"{docker.SERVICE}: dockerd did not stop; see {docker.state_dir(repo_root()) / 'dockerd.log'}"
        )


docker_cli = service_group(
    ServiceSpec(
        name="docker",
        help="The Docker daemon the package images run on (started as root when none answers).",
        up=lambda progress: docker.ensure_daemon(repo_root()),
        announce=lambda found: str(found.describe()),
        down=_docker_down,
        stopped=f"{docker.SERVICE}: stopped the daemon eopack started (if any)",
        status=lambda **_: docker.status(repo_root()),
        show=lambda report: out.print(report.describe()),
        up_help="Start dockerd (as root) unless a Docker daemon already answers.",
        down_help="Stop the dockerd that eopack started (never someone else's).",
        status_help="Whether a daemon answers and whether eopack started it; exit 3 when none answers.",
    )
)


def _registry_up(port: int, progress: Progress) -> registry.Registry:
    found = registry.up(repo_root(), port)
    owner = f"pid {found.pid}, state {found.state}" if found.pid else "not started by eopack"
    progress(f"{registry.SERVICE}: {found.address} ({owner})")
    return found


def _registry_down(progress: Progress) -> None:
    if not registry.down(repo_root()):
        raise EopackError(f"{registry.SERVICE}: did not stop")


_port = click.option(
    "--port", type=int, default=registry.DEFAULT_PORT, show_default=True, help="Port on 127.0.0.1."
)

registry_cli = service_group(
    ServiceSpec(
        name="registry",
        help="A local image registry (docker-registry) for `eopack release`.",
        up=_registry_up,
        announce=lambda found: str(found.address),
        down=_registry_down,
        stopped=f"{registry.SERVICE}: stopped (data kept in runs/services/registry/data)",
        status=lambda port, **_: registry.report(repo_root(), port),
        show=lambda report: out.print(report.describe()),
        up_help="Start a registry on 127.0.0.1:PORT unless one answers there; prints its address last.",
        down_help="Stop the registry eopack started (its data stays).",
        status_help="Whether a registry answers on the port; exit 3 when none does.",
        up_options=[_port],
        status_options=[_port],
    )
)


# ------------------------------------------------------------------ S3 (moto, loopback)


def _show_s3(report: s3.S3Status) -> None:
    colour = "green" if report.up else "red"
    out.print(f"moto [{colour}]{'up' if report.up else 'down'}[/] pid {report.pid or '-'} {report.url}")
    out.print(f"bucket {report.bucket}; region {report.region}")
    err.print(f"credentials file: {report.credentials_file}; state dir: {report.state_dir}")


s3_cli = service_group(
    ServiceSpec(
        name="s3",
        help="A loopback S3 endpoint for stage-out (moto's server mode: a stand-in, not an object store).",
        up=lambda state_dir, **kw: s3.up(state_dir, **kw),
        announce=lambda service: str(service.url),
        notes=lambda service: [
            f"bucket {service.bucket!r}, region {service.region}; key in {service.credentials_file} (mode 600): "
            f"give it to stage-out as s3_credentials; objects live in memory until `eopack s3 down`"
        ],
        down=lambda state_dir, progress: s3.down(state_dir, progress=progress),
        stopped="S3 endpoint stopped (its objects are gone)",
        status=lambda state_dir, **_: s3.status(state_dir),
        show=_show_s3,
        up_help="Start the endpoint (or reuse it), create its key and the bucket; prints the endpoint URL last.",
        down_help="Stop the endpoint; its objects and key are gone.",
        status_help="Whether the endpoint runs and answers; exit 3 when it does not.",
        common=[
            _state_option(
                f"${s3.STATE_DIR_ENV} or <repo>/runs/services/s3", "Where the key, pid file and log live"
            )
        ],
        up_options=[
            click.option("--port", type=int, help=f"Port on 127.0.0.1 (default {s3.DEFAULT_PORT})."),
            click.option("--bucket", help=f"Bucket to create (default {s3.DEFAULT_BUCKET})."),
        ],
    )
)
