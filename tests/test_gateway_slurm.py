"""Issue 24 item 2: Dask workers as Slurm jobs (`eopack gateway up --backend slurm`).

A second gateway, with dask-gateway-server's SlurmBackend, on the suite's Slurm (or the one
``SLURM_CONF`` names). What ran is read from Slurm itself (``squeue`` during the run) and from the
job logs the gateway keeps; leaks are counted in Slurm's queue and the gateway's cluster list.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from gateway_checks import (
    CATALOG_APPS,
    STAGED,
    _corrupt_catalog,
    _descendants,
    _env,
    api_job,
    assert_same_rasters,
    clusters,
    geozarr_by_url_is_refused_in_its_image,
    new_record,
    records,
    run_in_image_on_gateway,
    wait_no_cluster,
)

from eopack.services import _proc, gateway, slurm
from eopack.services.gateway import Gateway
from eopack.services.stac import StacStack
from eopack_cli import Eopack

pytestmark = [pytest.mark.gateway, pytest.mark.slurm]

ROOT = Path(__file__).resolve().parents[1]
JOB_NAME = "dask-gateway"  # the name SlurmBackend gives every job
# A cluster gets at most the partition's CPUs less the scheduler's (one worker on a 2-CPU node); the
# tool waits for the workers the gateway granted. The timeout only bounds a slow start on a busy node.
WAIT = {"DASK_GATEWAY_WORKER_TIMEOUT": "60"}


def slurm_env() -> dict[str, str]:
    return {**os.environ, **({} if os.environ.get("SLURM_CONF") else slurm.client_env())}


def gateway_jobs() -> list[tuple[str, str]]:
    """(job id, state) of the gateway's jobs still pending, running or completing."""
    out = subprocess.run(
        ["squeue", "-h", "-n", JOB_NAME, "-t", "PD,R,CG,CF", "-o", "%i %T"],
        env=slurm_env(), capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return [(a, b) for a, b in (line.split() for line in out.splitlines())]


def wait_no_job(timeout: float = 30) -> list[tuple[str, str]]:
    _proc.wait_until(lambda: not gateway_jobs(), timeout, interval=0.5)
    return gateway_jobs()


@pytest.fixture(scope="module")
def slurm_gateway(request: pytest.FixtureRequest) -> Iterator[Gateway]:
    """A gateway whose schedulers and workers are Slurm jobs; no cluster or job may be left at the end."""
    if not os.environ.get("SLURM_CONF"):
        request.getfixturevalue("slurm_cluster")
    if gateway.server_command() is None:
        pytest.skip(f"dask-gateway-server is not installed: {gateway.SERVER_FIX}")
    state_dir = Path(tempfile.mkdtemp(prefix="eopack-gateway-slurm-"))
    state_dir.chmod(0o700)
    port, proxy = sorted({_proc.free_port() for _ in range(4)})[:2]
    try:
        gw = gateway.up(state_dir, port=port, proxy_port=proxy, idle_timeout=300, backend="slurm")
        assert gw.backend == "slurm"
        yield gw
        assert not gateway.status(state_dir).clusters
    finally:
        gateway.down(state_dir)
        if not os.environ.get("EOPACK_KEEP_GATEWAY_STATE"):
            shutil.rmtree(state_dir, ignore_errors=True)
    assert wait_no_job() == [], "Slurm jobs left by the gateway"


def run_watching_squeue(
    cmd: list[str], env: dict[str, str], timeout: float = 600
) -> tuple[int, str, set[str]]:
    """Run ``cmd``; (exit code, stderr, ids of the gateway's Slurm jobs seen running meanwhile)."""
    seen: set[str] = set()
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=err)
        deadline = time.monotonic() + timeout
        while proc.poll() is None and time.monotonic() < deadline:
            seen |= {job for job, state in gateway_jobs() if state == "RUNNING"}
            time.sleep(0.5)
        if proc.poll() is None:
            proc.kill()
        err.seek(0)
        return proc.wait(), err.read().decode(errors="replace"), seen


@pytest.mark.parametrize("app", CATALOG_APPS)
def test_workers_are_slurm_jobs_and_the_pixels_equal_the_local_backend(
    app: str,
    slurm_gateway: Gateway,
    built_images: object,
    stac_api: StacStack,
    dask_local_runs: dict[str, Path],
    tmp_path: Path,
) -> None:
    """Each package in its image, through the STAC API, its workers Slurm jobs: the local backend's pixels."""
    job = api_job(app, stac_api.api_url, tmp_path)
    before = set(records(slurm_gateway))
    run_dir = tmp_path / "run"
    cmd = [sys.executable, "-m", "eopack", "run", app, str(job), "--outdir", str(run_dir), "-q",
           "--dask-gateway-url", slurm_gateway.url]  # fmt: skip
    code, stderr, seen = run_watching_squeue(cmd, _env(slurm_gateway, WAIT))
    assert code == 0, stderr[-3000:]
    record = new_record(slurm_gateway, before)
    assert record["tasks_completed"] > 0 and record["tasks_erred"] == 0
    # The scheduler and every worker ran as a Slurm job: squeue saw them, and Slurm wrote their logs.
    workers = len(record["workers"])
    assert workers >= 1 and len(seen) >= 1 + workers, f"jobs seen {seen}, workers {workers}"
    kept = slurm_gateway.state_dir / "logs" / "clusters" / record["cluster"]
    assert len(list(kept.glob("dask-worker-*.log"))) >= workers
    assert list(kept.glob("dask-scheduler-*.log"))
    log = (run_dir / ".eopack" / "cwltool.log").read_text()
    assert re.search(r"\$ (docker|podman)\b", log)  # in its image
    if app == "ndvi" and gateway.slurm_max_workers() < 4:  # ndvi asks for 4: it waits for what is granted
        assert f"the gateway grants {gateway.slurm_max_workers()} of the 4 worker(s)" in log
        assert "worker(s) joined within" not in log  # it did not wait for workers that never start
    assert_same_rasters(run_dir, dask_local_runs[app])
    assert wait_no_cluster(slurm_gateway) == [] and wait_no_job() == []


def test_a_failed_computation_leaves_no_job(eopack: Eopack, slurm_gateway: Gateway, tmp_path: Path) -> None:
    job = tmp_path / "job.yml"
    text = (ROOT / "app-packages" / "ndvi" / "examples" / "default.yml").read_text()
    job.write_text(text.replace("../../../data/sample", str(_corrupt_catalog(tmp_path))))
    before = set(records(slurm_gateway))
    proc = eopack("run", "ndvi", str(job), "--outdir", str(tmp_path / "run"), "--no-container", "-q",
                  "--dask-gateway-url", slurm_gateway.url, env=_env(slurm_gateway, WAIT))  # fmt: skip
    assert proc.returncode != 0
    assert new_record(slurm_gateway, before)["max_workers"] >= 1  # it failed while the cluster was up
    assert wait_no_cluster(slurm_gateway) == [] and wait_no_job() == []


def start_ndvi(gw: Gateway, tmp_path: Path) -> subprocess.Popen[bytes]:
    """The ndvi example on the gateway, without containers, in the background (stderr piped)."""
    job = ROOT / "app-packages" / "ndvi" / "examples" / "default.yml"
    cmd = [sys.executable, "-m", "eopack", "run", "ndvi", str(job), "--outdir", str(tmp_path / "run"),
           "--no-container", "-q", "--dask-gateway-url", gw.url]  # fmt: skip
    return subprocess.Popen(cmd, env=_env(gw, WAIT), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def test_sigterm_to_the_tool_leaves_no_job(slurm_gateway: Gateway, tmp_path: Path) -> None:
    proc = start_ndvi(slurm_gateway, tmp_path)
    try:
        assert _proc.wait_until(lambda: bool(gateway_jobs()), 60, interval=0.2), "no Slurm job came up"
        assert clusters(slurm_gateway)
        tools = [p for p in _descendants(proc.pid) if any(a.endswith("/bin/ndvi") for a in p.cmdline.split())]
        assert len(tools) == 1, f"tool process not found among {_descendants(proc.pid)}"
        os.kill(tools[0].pid, signal.SIGTERM)
        assert proc.wait(timeout=120) != 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert wait_no_cluster(slurm_gateway) == [] and wait_no_job() == []


@pytest.mark.parametrize("app", CATALOG_APPS)
def test_a_staged_catalog_in_its_image_on_the_slurm_gateway_gives_the_local_pixels(
    eopack: Eopack,
    app: str,
    slurm_gateway: Gateway,
    built_images: object,
    dask_local_runs: dict[str, Path],
    tmp_path: Path,
) -> None:
    """Every Dask package that reads a catalog, in its image, its workers Slurm jobs reading the
    staged catalog's host files (the shared-filesystem mapping, docs/packages.md)."""
    job = ROOT / "app-packages" / app / "examples" / STAGED[app]
    log = run_in_image_on_gateway(
        eopack, app, job, slurm_gateway, tmp_path / "run", dask_local_runs[app], extra=WAIT
    )
    assert "handed to the Dask workers as" in log
    assert wait_no_job() == []


def test_geozarr_by_url_in_its_image_on_the_slurm_gateway_is_refused_and_submits_no_job(
    eopack: Eopack, slurm_gateway: Gateway, built_images: object, tmp_path: Path
) -> None:
    """geozarr's workers would write its store into the tool's container: one line, no Slurm job."""
    geozarr_by_url_is_refused_in_its_image(eopack, slurm_gateway, tmp_path)
    assert gateway_jobs() == []


def test_a_server_killed_with_sigkill_leaves_no_job_after_down(
    slurm_gateway: Gateway, tmp_path: Path
) -> None:
    """Last in the module (it kills the module's gateway). A server that dies cannot cancel its
    clusters' jobs; `eopack gateway down` (or the next `up`) finds them by their working folder in
    this gateway's state dir and cancels them."""
    proc = start_ndvi(slurm_gateway, tmp_path)
    try:
        assert _proc.wait_until(lambda: bool(gateway_jobs()), 60, interval=0.2), "no Slurm job came up"
        os.kill(slurm_gateway.pid, signal.SIGKILL)
        assert _proc.wait_until(lambda: not _proc.pid_alive(slurm_gateway.pid), 10)
        orphans = gateway_jobs()
        assert orphans, "the jobs ended with the server: nothing left to clean (the test proves nothing)"
    finally:
        proc.kill()
        proc.wait(timeout=30)
    said: list[str] = []
    gateway.down(slurm_gateway.state_dir, progress=said.append)
    assert wait_no_job(timeout=5) == []
    # (a job may end by itself meanwhile: its scheduler stops when the gateway API is gone)
    assert any(re.fullmatch(r"cancelled [1-9]\d* Slurm job\(s\) its clusters left \(the server had died\)", s)
               for s in said), said  # fmt: skip
