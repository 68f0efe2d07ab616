"""Fixtures of the cross-package tests: the real CLI, package images and the local services.

Every service fixture is a session fixture built on ``service_state``: a fresh state dir, the
service's own ``up``, its ``down`` at the end, and the state dir kept for a post-mortem when
``EOPACK_KEEP_<NAME>_STATE=1``. A service that cannot run here skips with the reason and the fix.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from jobs import job_for

from eopack import images
from eopack.errors import ServiceUnavailableError
from eopack.package import list_packages
from eopack.services import _proc, docker, gateway, slurm, wes
from eopack.services import s3 as s3_service
from eopack.services.gateway import Gateway
from eopack.services.stac import StacStack
from eopack.services.stac import down as stac_down
from eopack.services.stac import preflight as stac_preflight
from eopack.services.stac import up as stac_up
from eopack_cli import Eopack

__all__ = [
    "Eopack",
    "built_images",
    "cwltool_reference",
    "dask_gateway",
    "eopack",
    "root",
    "s3_endpoint",
    "service_state",
    "slurm_cluster",
    "stac_api",
    "stac_data",
    "start_wes_stack",
    "wes_service",
]

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent


# ------------------------------------------------------------------ the repository and the CLI


@pytest.fixture(scope="session")
def root() -> Path:
    """The repository root (the tests' one ROOT)."""
    return ROOT


@pytest.fixture(scope="session")
def eopack() -> Eopack:
    """Run ``eopack ARGS...``; returns the CompletedProcess (exit code, stdout, stderr)."""
    return Eopack(ROOT)


@pytest.fixture(scope="session")
def cwltool_reference(
    eopack: Eopack, image_server: str, tmp_path_factory: pytest.TempPathFactory
) -> Callable[[str], Path]:
    """``reference(app)``: the outdir of one cwltool ``--no-container`` run of the package's test job
    (tests/support/jobs.py), made on first use and shared by every suite that compares a runner's
    outputs with cwltool's (the contract, Slurm and WES suites): one reference run per package."""
    folder = tmp_path_factory.mktemp("cwltool-reference")
    made: dict[str, Path] = {}
    locks: dict[str, threading.Lock] = {p.name: threading.Lock() for p in list_packages()}

    def reference(app: str) -> Path:
        with locks[app]:
            if app not in made:
                job = job_for(
                    next(p for p in list_packages() if p.name == app), folder / "jobs", image_server
                )
                outdir = folder / app
                proc = eopack("run", app, str(job), "--no-container", "--outdir", str(outdir), "-q")
                assert proc.returncode == 0, f"cwltool reference run of {app} failed:\n{proc.stderr[-2000:]}"
                made[app] = outdir
            return made[app]

    return reference


# ------------------------------------------------------------------ package images


def _install_docker() -> None:
    """What `make setup` does as root, for a test session started without it."""
    if os.geteuid() == 0 and shutil.which("apt-get") and shutil.which("dockerd") is None:
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "docker.io", "debootstrap"],
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
            capture_output=True,
            check=False,
        )


@pytest.fixture(scope="session")
def built_images() -> dict[str, images.BuildResult]:
    """Daemon up, base image present, every package's image built (layer cache makes reruns quick)."""
    _install_docker()
    try:
        docker.ensure_daemon(ROOT)
    except ServiceUnavailableError as exc:
        pytest.skip(f"Docker cannot be used here: {exc} (`make images` builds the package images)")
    results = images.build_images(list_packages(ROOT), ROOT, progress=lambda m: print(m, file=sys.stderr))
    for result in results:
        print(f"\n{result.describe()}", file=sys.stderr)
    return {r.tag: r for r in results}


def _bridge_gateway() -> str:
    """The host's address on Docker's default bridge (IPAM's Gateway, else the bridge interface's)."""
    import fcntl
    import socket
    import struct

    fmt = '{{json .IPAM.Config}} {{index .Options "com.docker.network.bridge.name"}}'
    proc = subprocess.run(
        ["docker", "network", "inspect", "bridge", "--format", fmt],
        capture_output=True,
        text=True,
        check=True,
    )
    config, _, interface = proc.stdout.strip().rpartition(" ")
    gateways = [c.get("Gateway") for c in json.loads(config) or [] if c.get("Gateway")]
    if gateways:
        return str(gateways[0])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:  # SIOCGIFADDR of e.g. docker0
        packed = fcntl.ioctl(sock.fileno(), 0x8915, struct.pack("256s", interface.encode()[:15]))
    return socket.inet_ntoa(packed[20:24])


@pytest.fixture(scope="session")
def bridge_url(built_images: object, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The test image server on Docker's bridge gateway: reachable from the host and from containers."""
    from imageserver import ImageServer, make_images

    folder = tmp_path_factory.mktemp("bridge-images")
    make_images(folder)
    with ImageServer(folder, host=_bridge_gateway()) as url:
        yield url


# ------------------------------------------------------------------ services


@contextmanager
def service_state(name: str, down: Callable[[Path], object], mode: int = 0o700) -> Iterator[Path]:
    """A fresh state dir for service ``name``; ``down(state_dir)`` and removal at the end.

    ``EOPACK_KEEP_<NAME>_STATE=1`` keeps the dir (logs, records) for a post-mortem.
    """
    state_dir = Path(tempfile.mkdtemp(prefix=f"eopack-{name}-"))
    state_dir.chmod(mode)
    try:
        yield state_dir
    finally:
        down(state_dir)
        if not os.environ.get(f"EOPACK_KEEP_{name.upper()}_STATE"):
            shutil.rmtree(state_dir, ignore_errors=True)


def free_ports(n: int) -> list[int]:
    ports: set[int] = set()
    while len(ports) < n:
        ports.add(_proc.free_port())
    return sorted(ports)


@pytest.fixture(scope="session")
def stac_data(sample_catalog: Path) -> Path:
    """The catalog the stack serves: the generated sample data (see the root conftest)."""
    return sample_catalog.parent


@pytest.fixture(scope="session")
def stac_api(stac_data: Path) -> Iterator[StacStack]:
    """A real STAC API on free loopback ports (pgstac + stac-fastapi + asset server).

    The state dir is mode 755: the postgres user has to walk down to its data dir.
    """
    with service_state("stac", stac_down, mode=0o755) as state_dir:
        problems = stac_preflight(state_dir)
        if problems:
            pytest.skip(
                f"STAC API stack cannot run here: {'; '.join(problems)} (`make setup` as root installs it)"
            )
        pg, api, assets = free_ports(3)
        yield stac_up(stac_data, state_dir, pg_port=pg, api_port=api, assets_port=assets)


@pytest.fixture(scope="session")
def dask_local_runs(
    eopack: Eopack, stac_api: StacStack, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """Each Dask package's STAC API job run locally (no container, no gateway): the reference outputs."""
    from gateway_checks import CATALOG_APPS, api_job

    runs = {}
    for app in CATALOG_APPS:
        folder = tmp_path_factory.mktemp(f"local-{app}")
        job = api_job(app, stac_api.api_url, folder)
        proc = eopack("run", app, str(job), "--outdir", str(folder / "run"), "--no-container", "-q",
                      env={"EOPACK_ALLOW_PRIVATE_URLS": "1"})  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-3000:]
        runs[app] = folder / "run"
    return runs


@pytest.fixture(scope="session")
def dask_gateway() -> Iterator[Gateway]:
    """A real dask-gateway-server on free loopback ports.

    Teardown is also the session-end leak check: no test may leave a cluster behind.
    """
    if gateway.server_command() is None:
        pytest.skip(f"dask-gateway-server is not installed: {gateway.SERVER_FIX}")
    with service_state("gateway", gateway.down) as state_dir:
        port, proxy = free_ports(2)
        yield gateway.up(state_dir, port=port, proxy_port=proxy, idle_timeout=300)
        left = gateway.status(state_dir).clusters
        assert not left, f"clusters left behind by the test session: {[c.name for c in left]}"


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[slurm.SlurmCluster]:
    """The single-node Slurm of runs/services/slurm, started (and installed, as root) when needed.

    A cluster that was already up (`make slurm-up`) is used and left running; one this fixture
    started is stopped after the session.
    """
    before = slurm.status()
    if not before.up and os.geteuid() != 0:
        missing = [c for c in ("munged", "slurmctld", "slurmd") if shutil.which(c) is None]
        pytest.skip(
            "Slurm needs root to start slurmd"
            + (f" and {', '.join(missing)} installed" if missing else "")
            + ": start it with `make slurm-up` as root to include these tests"
        )
    cluster = slurm.up()
    try:
        yield cluster
    finally:
        if not before.up:
            slurm.down()


@contextmanager
def start_wes_stack(
    name: str, workers: int, engine_opts: list[str] | None = None
) -> Iterator[tuple[Path, wes.WesService]]:
    """A WES stack on a free port; its workers may fetch from loopback (the tests' image server)."""
    missing = [
        c
        for c in ("redis-server", "nginx")
        if shutil.which(c) is None and not Path(f"/usr/sbin/{c}").exists()
    ]
    if missing:
        pytest.skip(f"the WES stack needs {', '.join(missing)}: {wes.SETUP_FIX}")
    with service_state(name, wes.down) as state_dir:
        old = os.environ.get("EOPACK_ALLOW_PRIVATE_URLS")
        os.environ["EOPACK_ALLOW_PRIVATE_URLS"] = "1"
        try:
            service = wes.up(state_dir, port=_proc.free_port(), workers=workers, engine_opts=engine_opts)
        finally:
            if old is None:
                os.environ.pop("EOPACK_ALLOW_PRIVATE_URLS", None)
            else:
                os.environ["EOPACK_ALLOW_PRIVATE_URLS"] = old
        yield state_dir, service


@pytest.fixture(scope="session")
def wes_service() -> Iterator[wes.WesService]:
    """The real stack (Redis, Celery workers, toil server, nginx basic auth) for the session.

    ``--no-container`` is a site default (as on an HPC without a container runtime): ZOO-Project's
    runner cannot send engine parameters and the package images are in no registry Toil could pull
    from. The contract suite starts its own stack without it for the runs in the package images.
    """
    with start_wes_stack("wes", workers=8, engine_opts=["--no-container"]) as (_, service):
        yield service


@pytest.fixture(scope="session")
def wes_service_containers() -> Iterator[wes.WesService]:
    """A second stack without the ``--no-container`` default, for runs in the package images."""
    with start_wes_stack("wes-img", workers=2) as (_, service):
        yield service


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[s3_service.S3Service]:
    """moto's S3 server on a free loopback port (a stand-in for a platform's object store).

    Signatures are enforced; the key is only in the state dir's mode-600 files.
    """
    with service_state("s3", s3_service.down) as state_dir:
        yield s3_service.up(state_dir, port=_proc.free_port())
