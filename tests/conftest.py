"""Fixtures for the cross-package tests: the local STAC API stack (one per session)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from eopack.services import _proc
from eopack.services.stac import StacStack, down, preflight, up

__all__ = ["stac_api", "stac_data"]


@pytest.fixture(scope="session")
def stac_data(sample_catalog: Path) -> Path:
    """The catalog the stack serves: the generated sample data (see the root conftest)."""
    return sample_catalog.parent


@pytest.fixture(scope="session")
def stac_api(stac_data: Path) -> Iterator[StacStack]:
    """A real STAC API on free loopback ports, in a fresh state dir; torn down after the session.

    The state dir is made under /tmp by hand (mode 755), not with tmp_path_factory: pytest's base
    temp dir is mode 700 and the postgres user has to walk down to its data dir.
    """
    state_dir = Path(tempfile.mkdtemp(prefix="eopack-stac-"))
    state_dir.chmod(0o755)
    problems = preflight(state_dir)
    if problems:
        shutil.rmtree(state_dir, ignore_errors=True)
        pytest.skip(
            f"STAC API stack cannot run here: {'; '.join(problems)} (`make setup` as root installs it)"
        )
    ports = sorted({_proc.free_port() for _ in range(6)})[:3]
    try:
        yield up(stac_data, state_dir, pg_port=ports[0], api_port=ports[1], assets_port=ports[2])
    finally:
        down(state_dir)
        if not os.environ.get("EOPACK_KEEP_STAC_STATE"):
            shutil.rmtree(state_dir, ignore_errors=True)


# ------------------------------------------------------------------ Dask Gateway (issue 9)

from eopack.services import gateway  # noqa: E402  (appended section)
from eopack.services.gateway import Gateway  # noqa: E402


@pytest.fixture(scope="session")
def dask_gateway() -> Iterator[Gateway]:
    """A real dask-gateway-server on free loopback ports, in a fresh state dir (one per session).

    Teardown is also the session-end leak check: no test may leave a cluster behind, so it asserts
    that the gateway lists 0 clusters before stopping it. Set EOPACK_KEEP_GATEWAY_STATE=1 to keep
    the state dir (cluster logs and records) for a post-mortem.
    """
    if gateway.server_command() is None:
        pytest.skip(f"dask-gateway-server is not installed: {gateway.SERVER_FIX}")
    state_dir = Path(tempfile.mkdtemp(prefix="eopack-gateway-"))
    ports = sorted({_proc.free_port() for _ in range(4)})[:2]
    try:
        gw = gateway.up(state_dir, port=ports[0], proxy_port=ports[1], idle_timeout=300)
        yield gw
        left = gateway.status(state_dir).clusters
        assert not left, f"clusters left behind by the test session: {[c.name for c in left]}"
    finally:
        gateway.down(state_dir)
        if not os.environ.get("EOPACK_KEEP_GATEWAY_STATE"):
            shutil.rmtree(state_dir, ignore_errors=True)


# ------------------------------------------------------------------ Slurm (issue 10)

from eopack.services import slurm  # noqa: E402  (appended section)


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[slurm.SlurmCluster]:
    """The single-node Slurm of runs/services/slurm, started (and installed, as root) when needed.

    A cluster that was already up (`make slurm-up`) is used and left running; one this fixture
    started is stopped after the session. It skips only when Slurm cannot run on this machine.
    """
    before = slurm.status()
    if not before.up:
        missing = [c for c in ("munged", "slurmctld", "slurmd") if shutil.which(c) is None]
        if os.geteuid() != 0:
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


# ------------------------------------------------------------------ Toil WES (issue 11)

from eopack.services import wes  # noqa: E402  (appended section)


def start_wes_stack(
    prefix: str, workers: int, engine_opts: list[str] | None = None
) -> tuple[Path, wes.WesService]:
    """A WES stack on a free port in a fresh state dir; skips with the reason when it cannot run."""
    missing = [
        c
        for c in ("redis-server", "nginx")
        if shutil.which(c) is None and not Path(f"/usr/sbin/{c}").exists()
    ]
    if missing:
        pytest.skip(f"the WES stack needs {', '.join(missing)}: {wes.SETUP_FIX}")
    state_dir = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        return state_dir, wes.up(state_dir, port=_proc.free_port(), workers=workers, engine_opts=engine_opts)
    except BaseException:
        wes.down(state_dir)
        shutil.rmtree(state_dir, ignore_errors=True)
        raise


@pytest.fixture(scope="session")
def wes_service() -> Iterator[wes.WesService]:
    """The real stack (Redis, Celery workers, toil server, nginx basic auth) for the session.

    The tools may fetch from loopback servers (convert-url's image server), so the workers get
    EOPACK_ALLOW_PRIVATE_URLS=1, and `--no-container` is a site default (as on an HPC without a
    container runtime): ZOO-Project's runner cannot send engine parameters and the package images
    are not in any registry Toil could pull from. Set EOPACK_KEEP_WES_STATE=1 to keep the state dir.
    """
    old = os.environ.get("EOPACK_ALLOW_PRIVATE_URLS")
    os.environ["EOPACK_ALLOW_PRIVATE_URLS"] = "1"
    try:
        state_dir, service = start_wes_stack("eopack-wes-", workers=8, engine_opts=["--no-container"])
    finally:
        if old is None:
            os.environ.pop("EOPACK_ALLOW_PRIVATE_URLS", None)
        else:
            os.environ["EOPACK_ALLOW_PRIVATE_URLS"] = old
    try:
        yield service
    finally:
        wes.down(state_dir)
        if not os.environ.get("EOPACK_KEEP_WES_STATE"):
            shutil.rmtree(state_dir, ignore_errors=True)


# ------------------------------------------------------------------ loopback S3 (issue 19)

from eopack.services import s3 as s3_service  # noqa: E402  (appended section)


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[s3_service.S3Service]:
    """moto's S3 server on a free loopback port, in a fresh state dir; stopped after the session.

    A stand-in for a platform's object store (none can run here): signatures are enforced, the
    key is only in the state dir's mode-600 files.
    """
    state_dir = Path(tempfile.mkdtemp(prefix="eopack-s3-"))
    try:
        yield s3_service.up(state_dir, port=_proc.free_port())
    finally:
        s3_service.down(state_dir)
        shutil.rmtree(state_dir, ignore_errors=True)
