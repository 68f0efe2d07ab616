"""Resolve the Dask cluster a tool computes on (the tool side of DESIGN.md §3).

Order, exactly:

1. ``DASK_CLUSTER`` set: connect to that existing gateway cluster. Its owner (Calrissian, or
   whoever created it) shuts it down, so we never do.
2. ``DASK_GATEWAY_URL`` set: create a cluster with the worker size the runner lowered from the
   package's DaskGatewayRequirement, scale it to
   ``min(max_cores // worker_cores_limit, max_memory // worker_memory)`` and shut it down on
   every exit path: success, exception, SIGTERM, SIGHUP and SIGQUIT.
3. Neither: a local ``distributed.LocalCluster`` sized to the cores and memory this process may
   use (cgroup limits inside a container).

A gateway that was asked for but cannot be reached is an error, never a silent local fallback.

A tool whose workers *write* its outputs (geozarr's Zarr store: every chunk is written by the task
that computes it) calls ``check_workers_write`` first. In a container (the runner sets
``EOPACK_CONTAINER_PATHS=1``) the folder is a container path that no gateway worker can write,
whatever filesystem the workers share: such a run is refused in one line before any cluster exists.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ToolError, ToolInputError

__all__ = [
    "GatewaySpec",
    "check_workers_write",
    "dask_client",
    "gateway_spec_from_env",
    "local_limits",
    "parse_memory",
    "performance_report",
    "worker_count",
]

log = logging.getLogger(__name__)

_UNITS = {
    "": 1,
    "K": 1024,
    "M": 1024**2,
    "G": 1024**3,
    "T": 1024**4,
    "KB": 1000,
    "MB": 1000**2,
    "GB": 1000**3,
    "TB": 1000**4,
}
_MEMORY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*$")


def parse_memory(value: str | int) -> int:
    """Bytes in a Calrissian memory string (the tool side's only memory parser).

    Accepted, exactly as the runner side (``eopack.package.memory_bytes``) accepts them; the shared
    table is tests/test_memory_units.py:

    * a non-negative decimal number (``2``, ``1.5``; no sign, no exponent), then
    * optionally one unit, in any case: ``K``, ``M``, ``G``, ``T`` (×1024) or ``KB``, ``MB``, ``GB``,
      ``TB`` (×1000), so ``2g`` is ``2G``; without a unit (or as an ``int``) the number is bytes;
    * spaces around the number and between number and unit are ignored (``" 2 G "``).

    Refused with the allowed units in the message: Kubernetes units (``2Gi``, ``512Mi``), any other
    unit, a unit without a number, signs and exponents.

    >>> parse_memory("2G"), parse_memory("2GB"), parse_memory("512m"), parse_memory("1.5K")
    (2147483648, 2000000000, 536870912, 1536)
    >>> parse_memory("2Gi")
    Traceback (most recent call last):
    ...
    eopack_eo_common.errors.ToolInputError: memory '2Gi' is not understood; use a number with one of the units K, M, G, T (×1024) or KB, MB, GB, TB (×1000), e.g. '2G'
    """
    if isinstance(value, int):
        return value
    match = _MEMORY.match(str(value))
    unit = match.group(2).upper() if match else None
    if match is None or unit not in _UNITS:
        raise ToolInputError(
            f"memory {value!r} is not understood; use a number with one of the units "
            "K, M, G, T (×1024) or KB, MB, GB, TB (×1000), e.g. '2G'"
        )
    return int(float(match.group(1)) * _UNITS[unit])


def worker_count(max_cores: int, worker_cores_limit: int, max_memory: int, worker_memory: int) -> int:
    """Workers that fit both cluster limits; at least one.

    >>> worker_count(4, 1, 8 * 1024**3, 2 * 1024**3)
    4
    >>> worker_count(8, 2, 4 * 1024**3, 3 * 1024**3)
    1
    """
    by_cores = max_cores // max(worker_cores_limit, 1)
    by_memory = max_memory // max(worker_memory, 1)
    return max(1, min(by_cores, by_memory))


@dataclass(frozen=True)
class GatewaySpec:
    """What the runner lowered from the DaskGatewayRequirement into ``DASK_GATEWAY_*`` variables."""

    url: str
    worker_cores: int
    worker_cores_limit: int
    worker_memory: int
    cluster_max_cores: int
    cluster_max_memory: int
    image: str | None = None
    proxy_address: str | None = None

    @property
    def workers(self) -> int:
        return worker_count(
            self.cluster_max_cores, self.worker_cores_limit, self.cluster_max_memory, self.worker_memory
        )


def _int_env(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        return int(float(raw))
    except ValueError:
        raise ToolInputError(f"{name}={raw!r} must be a whole number of cores") from None


def gateway_spec_from_env(env: Mapping[str, str]) -> GatewaySpec:
    """Read the ``DASK_GATEWAY_*`` variables (Calrissian's names) into a spec."""
    cores = _int_env(env, "DASK_GATEWAY_WORKER_CORES", 1)
    memory = parse_memory(env.get("DASK_GATEWAY_WORKER_MEMORY") or "2G")
    return GatewaySpec(
        url=env["DASK_GATEWAY_URL"],
        worker_cores=cores,
        worker_cores_limit=_int_env(env, "DASK_GATEWAY_WORKER_CORES_LIMIT", cores),
        worker_memory=memory,
        cluster_max_cores=_int_env(env, "DASK_GATEWAY_CLUSTER_MAX_CORES", cores),
        cluster_max_memory=parse_memory(env.get("DASK_GATEWAY_CLUSTER_MAX_RAM") or str(memory)),
        image=env.get("DASK_GATEWAY_IMAGE") or None,
        proxy_address=env.get("DASK_GATEWAY_PROXY_ADDRESS") or None,
    )


def local_limits() -> tuple[int, int | None]:
    """Cores and memory bytes this process may use, honouring cgroup v2/v1 limits of a container."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    cpu_max = Path("/sys/fs/cgroup/cpu.max")
    if cpu_max.exists():
        quota, _, period = cpu_max.read_text().partition(" ")
        if quota != "max":
            cores = max(1, min(cores, int(int(quota) / int(period))))
    memory: int | None = None
    for candidate in (Path("/sys/fs/cgroup/memory.max"), Path("/sys/fs/cgroup/memory/memory.limit_in_bytes")):
        if candidate.exists():
            raw = candidate.read_text().strip()
            if raw.isdigit() and int(raw) < 1 << 60:
                memory = int(raw)
            break
    return cores, memory


def _gateway(spec_url: str | None, env: Mapping[str, str]) -> Any:
    import dask.config

    # dask_gateway writes its commented default config into dask's config dir when imported. CWL
    # engines set HOME to the tool's output directory, so that file would land among the results:
    # give dask a temporary config dir instead (it reads nothing from a fresh one).
    if Path(dask.config.PATH).resolve().is_relative_to(Path.cwd().resolve()):
        dask.config.PATH = tempfile.mkdtemp(prefix="eopack-dask-config-")
    from dask_gateway import Gateway
    from dask_gateway.auth import BasicAuth

    kwargs: dict[str, Any] = {"address": spec_url}
    if env.get("DASK_GATEWAY_PROXY_ADDRESS"):
        kwargs["proxy_address"] = env["DASK_GATEWAY_PROXY_ADDRESS"]
    # Password auth of a local gateway; on Kubernetes the dask config under /etc/dask decides.
    # In a container the runner passes it by file (DASK_GATEWAY_PASSWORD_FILE): an environment
    # variable would be on the engine's `docker run` line, in its log and in `ps`.
    password = env.get("DASK_GATEWAY_PASSWORD") or _read_secret(env.get("DASK_GATEWAY_PASSWORD_FILE"))
    if password:
        kwargs["auth"] = BasicAuth(env.get("DASK_GATEWAY_USER") or "eopack", password)
    return Gateway(**kwargs)


# The signals that end a tool: SIGTERM (kill, a runner or Slurm cancelling), SIGHUP (the ssh session
# or terminal went away) and SIGQUIT (Ctrl-\\). SIGINT already raises KeyboardInterrupt. Each becomes
# SystemExit(128 + signum) while a gateway cluster is ours, so ``finally`` shuts the cluster down.
ENDING_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)


def _read_secret(path: str | None) -> str:
    """The secret in ``path`` without its trailing newline; "" when no path is given."""
    if not path:
        return ""
    try:
        return Path(path).read_text().rstrip("\n")
    except OSError as err:
        raise ToolError(f"cannot read the gateway password file {path}: {err.strerror}") from None


class _Sigterm:
    """While a cluster is being created, an ending signal is held back until its shutdown is registered.

    Otherwise a signal landing inside ``gateway.new_cluster`` (the cluster exists on the gateway,
    but we do not know its name yet) would leak it. A second signal is not held back.
    """

    holding = False
    pending: int | None = None


def _raise_sigterm(signum: int = signal.SIGTERM) -> None:
    raise SystemExit(128 + signum)


@contextmanager
def _sigterm_raises() -> Iterator[None]:
    """Turn SIGTERM, SIGHUP and SIGQUIT into SystemExit while a cluster is ours (see ENDING_SIGNALS)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: object) -> None:
        if _Sigterm.holding and _Sigterm.pending is None:
            _Sigterm.pending = signum
            log.warning(
                "Dask: %s received while the cluster starts; stopping once it can be shut down",
                signal.Signals(signum).name,
            )
            return
        _raise_sigterm(signum)

    previous = {signum: signal.signal(signum, handler) for signum in ENDING_SIGNALS}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


@contextmanager
def _sigterm_held() -> Iterator[None]:
    """Hold ending signals back for the enclosed block; act on them right after (see ``_Sigterm``)."""
    _Sigterm.holding, _Sigterm.pending = True, None
    try:
        yield
    finally:
        pending = _Sigterm.pending
        _Sigterm.holding, _Sigterm.pending = False, None
        if pending is not None:
            _raise_sigterm(pending)


_CAPPED = re.compile(r"Scaling to (\d+) instead")


def _scale(cluster: Any, wanted: int) -> int:
    """Scale to ``wanted`` workers; the number the gateway grants (its ``cluster_max_workers`` may cap it).

    A capped request comes back as dask-gateway's ``GatewayWarning`` ("... Scaling to N instead."):
    the tool then waits for those N workers, not for ones that will never start.
    """
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cluster.scale(wanted)
    for warning in caught:
        if found := _CAPPED.search(str(warning.message)):
            granted = max(int(found.group(1)), 1)
            log.warning("Dask: the gateway grants %d of the %d worker(s) asked for", granted, wanted)
            return min(granted, wanted)
    return wanted


def _wait_for_workers(client: Any, cluster_name: str, wanted: int, timeout: float) -> None:
    """Block until the cluster has the workers the requirement asked for (or at least one).

    The requirement promises a cluster size, and a graph submitted to a cluster without workers
    would wait forever; so: all workers within ``timeout``, else go on with the ones that came
    (warning), else fail.
    """
    wait = getattr(client, "wait_for_workers", None)
    if wait is None:  # a stand-in client (unit tests)
        return
    started = time.perf_counter()
    try:
        wait(wanted, timeout=timeout)
    except TimeoutError:
        have = len(client.scheduler_info().get("workers", {}))
        if have == 0:
            raise ToolError(
                f"no Dask worker joined gateway cluster {cluster_name} within {timeout:.0f} s; "
                "see the gateway's cluster logs"
            ) from None
        log.warning("Dask: only %d of %d worker(s) joined within %.0f s; going on", have, wanted, timeout)
    log.info("Dask: %d worker(s) ready after %.1f s", wanted, time.perf_counter() - started)


def _create_gateway_cluster(gateway: Any, spec: GatewaySpec) -> Any:
    options = gateway.cluster_options()
    wanted = {
        "worker_cores": spec.worker_cores,
        "worker_cores_limit": spec.worker_cores_limit,
        # dask-gateway's option is a float in GiB
        "worker_memory": spec.worker_memory / 1024**3,
        "image": spec.image,
    }
    for key, value in wanted.items():
        if value is not None and key in options:
            options[key] = value
    return gateway.new_cluster(options)


def _quiet_distributed() -> None:
    # distributed sets its loggers to INFO when imported; a tool's progress lines matter more.
    for name in (
        "distributed",
        "distributed.scheduler",
        "distributed.worker",
        "distributed.core",
        "distributed.http.proxy",
        "distributed.nanny",
    ):
        logging.getLogger(name).setLevel(logging.WARNING)


def _close_gateway(gateway: Any) -> None:
    gateway.close()
    _forget_loop(gateway)


def _forget_loop(gateway: Any) -> None:
    # dask-gateway's Gateway.__del__ calls close() a second time, which raises on the stopped
    # loop ("Exception ignored in Gateway.__del__"); __del__ skips objects without this attribute.
    if hasattr(gateway, "_loop_runner"):
        del gateway._loop_runner


def _close_own_gateway(cluster: Any) -> None:
    """Close the Gateway object a connected GatewayCluster made for itself; the cluster stays up."""
    own = getattr(cluster, "gateway", None)
    if own is not None:
        _close_gateway(own)


def _shutdown_cluster(cluster: Any) -> None:
    """Shut the cluster down; its own Gateway object (a GatewayCluster makes one) is closed with it."""
    cluster.shutdown()
    _forget_loop(getattr(cluster, "gateway", None))


CONTAINER_PATHS_ENV = "EOPACK_CONTAINER_PATHS"  # "1": this tool's paths are not its workers' paths


def check_workers_write(folder: Path, env: Mapping[str, str]) -> None:
    """Refuse (exit 2) a gateway run whose workers would write ``folder`` from outside this container;
    a tool whose workers write its outputs calls it before it reads anything or starts a cluster.

    The runner says the tool is in a container (``EOPACK_CONTAINER_PATHS=1``, eopack's runners on a
    gateway): a marker file would not do, since the machine running the tools may itself be a
    container (``/.dockerenv``) whose paths the workers share."""
    on_gateway = env.get("DASK_CLUSTER") or env.get("DASK_GATEWAY_URL")
    if not on_gateway or env.get(CONTAINER_PATHS_ENV) != "1":
        return
    raise ToolInputError(
        f"the Dask workers write the output, into {Path(folder).resolve()} in this container, and a "
        "gateway's workers cannot write into a container's folders: on a gateway, run the package without "
        "its image (eopack run --no-container, on workers that share this machine's files), or run it in "
        "its image without a gateway"
    )


@contextmanager
def dask_client(
    env: Mapping[str, str] | None = None,
    gateway_factory: Callable[[str | None, Mapping[str, str]], Any] = _gateway,
    profile: bool = True,
) -> Iterator[Any]:
    """Yield a ``distributed.Client`` on the cluster chosen by the rules in this module's doc.

    ``profile=False`` turns off the local worker's statistical profiler: a thread that samples
    every task's stack 100 times a second, holding the GIL while it walks the frames. Only a
    performance report reads what it collects, so a tool passes ``profile=<report wanted>``.
    """
    env = os.environ if env is None else env
    url = env.get("DASK_GATEWAY_URL") or None
    name = env.get("DASK_CLUSTER") or None
    _quiet_distributed()
    acquiring: tuple[str, int, float] | None = None
    # Everything opened is registered on the stack, so it is closed in reverse order on every exit.
    with ExitStack() as stack:
        if name:
            log.info("Dask: connecting to existing gateway cluster %s (its owner shuts it down)", name)
            try:
                gateway = gateway_factory(url, env)
                stack.callback(_close_gateway, gateway)
                cluster = gateway.connect(name)
            except Exception as err:
                raise ToolError(f"cannot connect to Dask cluster {name!r}: {err}") from err
            stack.callback(_close_own_gateway, cluster)
            client = cluster.get_client()
        elif url:
            spec = gateway_spec_from_env(env)
            stack.enter_context(_sigterm_raises())
            started = time.perf_counter()
            with _sigterm_held():
                try:
                    gateway = gateway_factory(url, env)
                    stack.callback(_close_gateway, gateway)
                    cluster = _create_gateway_cluster(gateway, spec)
                except Exception as err:
                    raise ToolError(
                        f"cannot create a Dask cluster on the gateway at {url}: {err}; "
                        "check the URL and credentials (no local fallback when a gateway is requested)"
                    ) from err
                stack.callback(_shutdown_cluster, cluster)
                stack.callback(log.info, "Dask: shutting down gateway cluster %s", cluster.name)
            log.info(
                "Dask: gateway cluster %s, scaling to %d worker(s) of %d core(s), %.1f GiB",
                cluster.name,
                spec.workers,
                spec.worker_cores,
                spec.worker_memory / 1024**3,
            )
            granted = _scale(cluster, spec.workers)
            client = cluster.get_client()
            acquiring = (cluster.name, granted, started)
        else:
            import dask.config
            from distributed import Client, LocalCluster

            cores, memory = local_limits()
            stack.enter_context(_sigterm_raises())
            # Read when the worker and its event loop start, so set for the cluster's creation.
            stack.enter_context(dask.config.set({"distributed.worker.profile.enabled": profile}))
            # Threads, not processes: our graphs are numpy/GDAL work that releases the GIL, and a
            # single worker process starts in a fraction of a second.
            cluster = LocalCluster(
                n_workers=1,
                threads_per_worker=cores,
                processes=False,
                memory_limit=memory or 0,
                dashboard_address=None,
            )
            stack.callback(cluster.close)
            log.info("Dask: local cluster, %d thread(s)", cores)
            client = Client(cluster)
        stack.callback(client.close)
        if acquiring is not None:
            cluster_name, workers, started = acquiring
            timeout = float(env.get("DASK_GATEWAY_WORKER_TIMEOUT") or 120)
            _wait_for_workers(client, cluster_name, workers, timeout)
            log.info("Dask: cluster %s acquired in %.1f s", cluster_name, time.perf_counter() - started)
        yield client


@contextmanager
def performance_report(path: Path | None) -> Iterator[None]:
    """Record a Dask performance report (HTML) of the enclosed computation when ``path`` is given."""
    if path is None:
        yield
        return
    from distributed import performance_report as report

    with report(filename=str(path)):
        yield
    log.info("Dask performance report: %s", path)
