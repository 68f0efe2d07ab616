"""Dask Gateway for real (issue 9): every Dask package run with `eopack run --dask-gateway-url`.

The gateway is a real dask-gateway-server (``dask_gateway`` fixture). What a cluster did is read
from the record our scheduler preload writes (``logs/clusters/<name>/record.json`` in the state
dir: workers with their threads, memory and pid, tasks completed/erred), so these tests check the
cluster a run *got*, not only what the tool says it asked for.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from gateway_checks import (
    _corrupt_catalog,
    _descendants,
    _env,
    close,
    clusters,
    new_record,
    password,
    records,
    wait_no_cluster,
)

from eopack.dask import evaluate, find_hint, memory_bytes
from eopack.job import load_job
from eopack.package import Package, find_package, list_packages
from eopack.services import _proc, gateway
from eopack.services.gateway import Gateway
from eopack_cli import Eopack

pytestmark = pytest.mark.gateway

ROOT = Path(__file__).resolve().parents[1]
DASK_APPS = sorted(p.name for p in list_packages(ROOT) if any(find_hint(t) for t in p.tools))


# ------------------------------------------------------------------ helpers


def run_dir_has_no_secret(run_dir: Path, secret: str, *texts: str) -> None:
    for path in (run_dir / ".eopack").rglob("*"):
        if path.is_file():
            assert secret not in path.read_text(errors="replace"), f"password written to {path}"
    for text in texts:
        assert secret not in text, "password printed by eopack"


# ------------------------------------------------------------------ jobs per Dask package


def _corrupt_geotiff(folder: Path) -> str:
    """A georeferenced, tiled GeoTIFF whose header opens but whose pixels cannot be decoded."""
    path = folder / "corrupt-s2.tif"
    profile = {
        "driver": "GTiff",
        "width": 512,
        "height": 512,
        "count": 1,
        "dtype": "uint16",
        "crs": "EPSG:32632",
        "transform": rasterio.Affine(10.0, 0, 680000.0, 0, -10.0, 5160000.0),
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
        "compress": "deflate",
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.arange(512 * 512, dtype="uint16").reshape(1, 512, 512))
    data = bytearray(path.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 4096] = b"\xff" * 4096  # inside the compressed tiles
    path.write_bytes(bytes(data))
    return path.name


JobMaker = Callable[[Path, str, Path], Path]


def _convert_ok(tmp: Path, images_url: str, images: Path) -> Path:
    job = tmp / "job.yml"
    job.write_text(f"fn: resize\nurl: {images_url}/sample-s2.tif\nsize: 50%\n")
    return job


def _convert_fail(tmp: Path, images_url: str, images: Path) -> Path:
    job = tmp / "job.yml"
    job.write_text(f"fn: resize\nurl: {images_url}/{_corrupt_geotiff(images)}\nsize: 50%\n")
    return job


def _ndvi_ok(tmp: Path, images_url: str, images: Path) -> Path:
    return ROOT / "app-packages" / "ndvi" / "examples" / "default.yml"


def _ndvi_fail(tmp: Path, images_url: str, images: Path) -> Path:
    job = tmp / "job.yml"
    text = (ROOT / "app-packages" / "ndvi" / "examples" / "default.yml").read_text()
    job.write_text(text.replace("../../../data/sample", str(_corrupt_catalog(tmp))))
    return job


# A new Dask package joins these tests by adding its jobs here: one that succeeds, one that fails
# while its cluster is up.
def _mosaic_ok(tmp: Path, images_url: str, images: Path) -> Path:
    return ROOT / "app-packages" / "cloudless-mosaic" / "examples" / "default.yml"


def _mosaic_fail(tmp: Path, images_url: str, images: Path) -> Path:
    job = tmp / "job.yml"
    text = (ROOT / "app-packages" / "cloudless-mosaic" / "examples" / "default.yml").read_text()
    job.write_text(text.replace("../../../data/sample", str(_corrupt_catalog(tmp))))
    return job


def _openeo_ok(tmp: Path, images_url: str, images: Path) -> Path:
    return ROOT / "app-packages" / "openeo-graph" / "examples" / "ndvi.job.yml"


def _openeo_fail(tmp: Path, images_url: str, images: Path) -> Path:
    job = tmp / "job.yml"
    text = (ROOT / "app-packages" / "openeo-graph" / "examples" / "ndvi.job.yml").read_text()
    graph = ROOT / "app-packages" / "openeo-graph" / "examples" / "ndvi.json"
    job.write_text(
        text.replace("../../../data/sample", str(_corrupt_catalog(tmp))).replace("ndvi.json", str(graph))
    )
    return job


def _geozarr_ok(tmp: Path, images_url: str, images: Path) -> Path:
    return ROOT / "app-packages" / "geozarr" / "examples" / "default.yml"


def _geozarr_fail(tmp: Path, images_url: str, images: Path) -> Path:
    """A copy of the sample product whose r10m chunks are garbage: decoding fails on the workers."""
    src = ROOT / "data" / "sample-eopf" / "sample-eopf.zarr"
    dst = tmp / "broken" / "sample-eopf.zarr"
    shutil.copytree(src, dst)
    broken = 0
    for chunk in (dst / "measurements" / "reflectance" / "r10m").glob("b0*/c/*/*"):  # bands, not x/y
        if chunk.is_file():
            chunk.write_bytes(b"\x00garbage" * 64)
            broken += 1
    assert broken, "no r10m chunk found to break in the sample product"
    job = tmp / "job.yml"
    text = (ROOT / "app-packages" / "geozarr" / "examples" / "default.yml").read_text()
    job.write_text(text.replace("../../../data/sample-eopf/sample-eopf.zarr", str(dst)))
    return job


JOBS: dict[str, tuple[JobMaker, JobMaker]] = {
    "convert-url": (_convert_ok, _convert_fail),
    "ndvi": (_ndvi_ok, _ndvi_fail),
    "cloudless-mosaic": (_mosaic_ok, _mosaic_fail),
    "openeo-graph": (_openeo_ok, _openeo_fail),
    "geozarr": (_geozarr_ok, _geozarr_fail),
}


def jobs_for(app: str) -> tuple[JobMaker, JobMaker]:
    if app not in JOBS:
        # Failing, not skipping: an app made with `eopack new --dask` must not escape the leak tests.
        pytest.fail(f"{app} has a DaskGatewayRequirement but no jobs in tests/test_gateway.py JOBS; add them")
    return JOBS[app]


def test_every_dask_app_has_leak_test_jobs() -> None:
    """Checked without a gateway too, so a new `eopack new --dask` app fails here even where the
    gateway suite is skipped."""
    missing = sorted(set(DASK_APPS) - set(JOBS))
    assert not missing, f"apps with a DaskGatewayRequirement but no jobs in JOBS: {missing}"


def requirement(pkg: Package, job: Path) -> tuple[int, int, int]:
    """(workers, worker cores, worker memory bytes) the package's requirement gives for ``job``."""
    (tool,) = [t for t in pkg.tools if find_hint(t)]
    req = evaluate(pkg, tool, load_job(job))
    assert req is not None
    return req.workers, req.worker_cores, memory_bytes(req.worker_memory)


# ------------------------------------------------------------------ the service itself


def test_up_is_idempotent_and_status_lists_no_cluster(dask_gateway: Gateway) -> None:
    env = _env(dask_gateway)
    up = subprocess.run(
        [sys.executable, "-m", "eopack", "gateway", "up", "--state-dir", str(dask_gateway.state_dir)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    assert up.stdout.strip().splitlines()[-1] == dask_gateway.url
    assert password(dask_gateway) not in up.stdout + up.stderr
    assert (dask_gateway.state_dir / "gateway.json").stat().st_mode & 0o777 == 0o600
    st = subprocess.run(
        [sys.executable, "-m", "eopack", "gateway", "status", "--json"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    report = json.loads(st.stdout)
    assert report["up"] and report["url"] == dask_gateway.url
    assert report["proxy_address"] == dask_gateway.proxy_address


def test_down_stops_clusters_and_leaves_no_process(tmp_path: Path) -> None:
    """A second gateway: a cluster left running is stopped by `down`, with its processes."""
    from dask_gateway import Gateway as Client
    from dask_gateway.auth import BasicAuth

    ports = sorted({_proc.free_port() for _ in range(4)})[:2]
    gw = gateway.up(tmp_path / "gw", port=ports[0], proxy_port=ports[1])
    try:
        client = Client(gw.url, proxy_address=gw.proxy_address, auth=BasicAuth(gw.user, password(gw)))
        cluster = client.new_cluster()
        cluster.scale(1)
        assert _proc.wait_until(lambda: clusters(gw) and clusters(gw)[0].workers == 1, 30)
        [info] = gateway.status(gw.state_dir).clusters
        assert (info.owner, info.worker_cores, info.worker_memory) == (gw.user, 1, 2 * 2**30)
        cluster.close(shutdown=False)
        close(cluster.gateway)
        close(client)
    finally:
        report = gateway.down(gw.state_dir)
    assert not report.up and not report.clusters
    assert not _proc.processes_under(gw.state_dir / "clusters")


# ------------------------------------------------------------------ runs per Dask package


@pytest.mark.parametrize("app", DASK_APPS)
def test_run_gets_the_required_cluster_and_leaves_none(
    eopack: Eopack, app: str, dask_gateway: Gateway, tmp_path: Path, image_server: str, images: Path
) -> None:
    ok, _ = jobs_for(app)
    pkg = find_package(app, ROOT)
    job = ok(tmp_path, image_server, images)
    workers, cores, memory = requirement(pkg, job)
    before = set(records(dask_gateway))
    run_dir = tmp_path / "run"
    started = time.perf_counter()
    proc = eopack(
        "run", app, str(job), "--outdir", str(run_dir), "--no-container",
        "--dask-gateway-url", dask_gateway.url, env=_env(dask_gateway),
    )  # fmt: skip
    elapsed = time.perf_counter() - started
    assert proc.returncode == 0, proc.stderr[-3000:]
    # (a) exactly one cluster, sized by the requirement and scaled by the formula
    record = new_record(dask_gateway, before)
    assert record["max_workers"] == workers
    assert {(w["nthreads"], w["memory_limit"]) for w in record["workers"].values()} == {(cores, memory)}
    # (b) the graph ran there: the scheduler completed tasks on worker processes, none failed
    assert record["tasks_completed"] > 0 and record["tasks_erred"] == 0
    log = (run_dir / ".eopack" / "cwltool.log").read_text()
    assert f"gateway cluster {record['cluster']}" in log
    assert "Traceback" not in log
    acquired = [line for line in log.splitlines() if "acquired in" in line]
    print(f"\n{app}: {acquired[0].split('Dask: ')[-1] if acquired else '?'}; run {elapsed:.1f} s")
    # (c) nothing left; the password reached the tool but no file of the run and no output
    assert wait_no_cluster(dask_gateway) == []
    run_dir_has_no_secret(run_dir, password(dask_gateway), proc.stdout, proc.stderr)


@pytest.mark.parametrize("app", DASK_APPS)
def test_failed_computation_leaves_no_cluster(
    eopack: Eopack, app: str, dask_gateway: Gateway, tmp_path: Path, image_server: str, images: Path
) -> None:
    _, fail = jobs_for(app)
    job = fail(tmp_path, image_server, images)
    before = set(records(dask_gateway))
    run_dir = tmp_path / "run"
    proc = eopack(
        "run", app, str(job), "--outdir", str(run_dir), "--no-container", "-q",
        "--dask-gateway-url", dask_gateway.url, env=_env(dask_gateway),
    )  # fmt: skip
    assert proc.returncode != 0
    record = new_record(dask_gateway, before)  # the failure happened while the cluster was up
    assert record["max_workers"] >= 1
    assert wait_no_cluster(dask_gateway) == []
    assert sorted(p.name for p in run_dir.iterdir()) == [".eopack"]  # no partial result


@pytest.mark.parametrize("app", DASK_APPS)
def test_sigterm_to_the_tool_leaves_no_cluster(
    app: str, dask_gateway: Gateway, tmp_path: Path, image_server: str, images: Path
) -> None:
    """SIGTERM as soon as the cluster exists: even while it is being created, it is shut down."""
    ok, _ = jobs_for(app)
    pkg = find_package(app, ROOT)
    command = f"/bin/{pkg.tools[0]['baseCommand']}"
    job = ok(tmp_path, image_server, images)
    before = set(records(dask_gateway))
    cmd = [sys.executable, "-m", "eopack", "run", app, str(job), "--outdir", str(tmp_path / "run")]
    cmd += ["--no-container", "-q", "--dask-gateway-url", dask_gateway.url]
    proc = subprocess.Popen(cmd, env=_env(dask_gateway), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert _proc.wait_until(lambda: bool(clusters(dask_gateway)), 60, interval=0.05), "no cluster came up"
        tools = [p for p in _descendants(proc.pid) if any(a.endswith(command) for a in p.cmdline.split())]
        assert len(tools) == 1, f"tool process not found among {_descendants(proc.pid)}"
        os.kill(tools[0].pid, signal.SIGTERM)
        assert proc.wait(timeout=120) != 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert wait_no_cluster(dask_gateway) == []
    assert new_record(dask_gateway, before)["closed"]
    assert "Exception ignored" not in (tmp_path / "run" / ".eopack" / "cwltool.log").read_text()


# ------------------------------------------------------------------ lowering, errors, DASK_CLUSTER


def test_expressions_are_evaluated_and_auth_reaches_the_tool(
    eopack: Eopack, dask_gateway: Gateway, tmp_path: Path
) -> None:
    job = tmp_path / "job.yml"
    job.write_text("workers: 2\nmemory: 1G\n")
    run_dir = tmp_path / "run"
    proc = eopack(
        "run", str(ROOT / "tests/data/packages/dask-echo/dask-echo.cwl"), str(job), "--outdir", str(run_dir),
        "--no-container", "--dask-gateway-url", dask_gateway.url, env=_env(dask_gateway),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    env = dict(line.split("=", 1) for line in (run_dir / "result" / "env.txt").read_text().splitlines())
    assert env == {
        "DASK_GATEWAY_URL": dask_gateway.url,
        "DASK_GATEWAY_PROXY_ADDRESS": dask_gateway.proxy_address,
        "DASK_GATEWAY_USER": dask_gateway.user,
        "DASK_GATEWAY_PASSWORD": password(dask_gateway),
        "DASK_GATEWAY_WORKER_CORES": "2",  # $(inputs.workers)
        "DASK_GATEWAY_WORKER_CORES_LIMIT": "1",
        "DASK_GATEWAY_CLUSTER_MAX_CORES": "4",  # $(inputs.workers * 2)
        "DASK_GATEWAY_WORKER_MEMORY": "1G",  # $(inputs.memory)
        "DASK_GATEWAY_CLUSTER_MAX_RAM": "12G",
    }
    run_dir_has_no_secret(run_dir, password(dask_gateway), proc.stdout, proc.stderr)


def test_unreachable_gateway_fails_clearly_without_local_fallback(
    eopack: Eopack, dask_gateway: Gateway, tmp_path: Path, image_server: str, images: Path
) -> None:
    url = f"http://127.0.0.1:{_proc.free_port()}"
    job = _convert_ok(tmp_path, image_server, images)
    run_dir = tmp_path / "run"
    proc = eopack("run", "convert-url", str(job), "--outdir", str(run_dir), "--no-container", "-q",
                  "--dask-gateway-url", url, env=_env(dask_gateway))  # fmt: skip
    assert proc.returncode != 0
    assert f"{url} does not answer from here" in proc.stderr  # the runner's early hint
    # the tool's one-line error, and no local cluster computed a result instead
    assert f"convert-url: error: cannot create a Dask cluster on the gateway at {url}" in proc.stderr
    assert "no local fallback" in proc.stderr
    assert sorted(p.name for p in run_dir.iterdir()) == [".eopack"]
    assert "Dask: local cluster" not in (run_dir / ".eopack" / "cwltool.log").read_text()


def test_existing_cluster_is_used_and_not_shut_down(
    eopack: Eopack, dask_gateway: Gateway, tmp_path: Path, image_server: str, images: Path
) -> None:
    """Calrissian style: DASK_CLUSTER given, the tool connects and leaves the cluster to its owner.

    Also checks issue 9 item 4 on the same cluster: every tool's package imports on the workers.
    """
    from dask_gateway import Gateway as Client
    from dask_gateway.auth import BasicAuth

    client = Client(
        dask_gateway.url,
        proxy_address=dask_gateway.proxy_address,
        auth=BasicAuth(dask_gateway.user, password(dask_gateway)),
    )
    cluster = client.new_cluster()
    try:
        cluster.scale(1)
        dask = cluster.get_client()
        dask.wait_for_workers(1, timeout=60)

        def tasks(dask_scheduler: Any) -> int:
            return int(dask_scheduler.plugins["eopack-record"].record()["tasks_completed"])

        before = dask.run_on_scheduler(tasks)
        job = _convert_ok(tmp_path, image_server, images)
        proc = eopack(
            "run", "convert-url", str(job), "--outdir", str(tmp_path / "run"), "--no-container",
            "--dask-gateway-url", dask_gateway.url, env=_env(dask_gateway, {"DASK_CLUSTER": cluster.name}),
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert f"connecting to existing gateway cluster {cluster.name}" in proc.stderr
        assert [c.name for c in clusters(dask_gateway)] == [cluster.name]  # still there
        assert dask.run_on_scheduler(tasks) > before  # and it did the work

        def importable(names: list[str]) -> dict[str, bool]:
            import importlib.util

            return {n: importlib.util.find_spec(n) is not None for n in names}

        packages = [f"eopack_{app.replace('-', '_')}" for app in DASK_APPS]
        for found in dask.run(importable, packages).values():
            assert found == dict.fromkeys(packages, True)
        dask.close()
    finally:
        cluster.shutdown()
        close(cluster.gateway)
        close(client)
    assert wait_no_cluster(dask_gateway) == []
