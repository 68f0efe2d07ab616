"""What the gateway tests read from a gateway: its clusters, and the record each cluster leaves."""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import rasterio

from eopack.services import _proc, gateway
from eopack.services.gateway import Gateway
from eopack_cli import Eopack

ROOT = Path(__file__).resolve().parents[2]
CATALOG_APPS = ("ndvi", "cloudless-mosaic", "openeo-graph")  # the Dask packages that read a catalog
VIA_API = {"ndvi": "stac-api.yml", "cloudless-mosaic": "stac-api.yml", "openeo-graph": "stac-api.job.yml"}
STAGED = {
    "ndvi": "default.yml",
    "cloudless-mosaic": "default.yml",
    "openeo-graph": "ndvi.job.yml",
}  # same jobs

__all__ = [
    "CATALOG_APPS",
    "STAGED",
    "_corrupt_catalog",
    "_descendants",
    "_env",
    "api_job",
    "assert_same_rasters",
    "close",
    "clusters",
    "new_record",
    "password",
    "records",
    "run_in_image_on_gateway",
    "wait_no_cluster",
]


def _env(gw: Gateway, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DASK_")}
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        EOPACK_GATEWAY_STATE_DIR=str(gw.state_dir),
        EOPACK_ALLOW_PRIVATE_URLS="1",
    )
    return {**env, **(extra or {})}


def password(gw: Gateway) -> str:
    return str(json.loads((gw.state_dir / "gateway.json").read_text())["password"])


def clusters(gw: Gateway) -> list[gateway.ClusterInfo]:
    return gateway.list_clusters(gw.url, password(gw))


def wait_no_cluster(gw: Gateway, timeout: float = 20) -> list[gateway.ClusterInfo]:
    """Clusters still listed after ``timeout`` (shutdown is asynchronous on the gateway)."""
    _proc.wait_until(lambda: not clusters(gw), timeout, interval=0.2)
    return clusters(gw)


def records(gw: Gateway) -> dict[str, dict[str, Any]]:
    """Every cluster record so far, by cluster name; waits for the record to be closed."""
    found = {}
    for path in (gw.state_dir / "logs" / "clusters").glob("*/record.json"):
        found[path.parent.name] = json.loads(path.read_text())
    return found


def new_record(gw: Gateway, before: set[str]) -> dict[str, Any]:
    """The one cluster created since ``before``, once its scheduler closed."""

    def closed() -> bool:
        new = [r for n, r in records(gw).items() if n not in before]
        return len(new) >= 1 and all(r["closed"] for r in new)

    _proc.wait_until(closed, 20, interval=0.2)
    new = [r for n, r in records(gw).items() if n not in before]
    assert len(new) == 1, f"expected exactly one new cluster, got {[r['cluster'] for r in new]}"
    return new[0]


def close(client: Any) -> None:
    """Close a dask_gateway.Gateway without its __del__ closing it again on a stopped loop."""
    client.close()
    if hasattr(client, "_loop_runner"):
        del client._loop_runner


def _corrupt_catalog(tmp: Path) -> Path:
    """A copy of the sample catalog whose NIR COGs are garbage: reading them fails on the workers."""
    src = ROOT / "data" / "sample"
    dst = tmp / "broken-sample"
    shutil.copytree(src, dst)
    broken = 0
    for band in dst.rglob("*B08*.tif"):
        band.write_bytes(band.read_bytes()[:2048] + b"\x00" * 4096)
        broken += 1
    assert broken, "no B08 asset found to break in the sample catalog"
    return dst


def _descendants(pid: int) -> list[_proc.ProcInfo]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            children.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            todo.append(child)
            if (info := _proc.proc_info(child)) is not None:
                found.append(info)
    return found


def api_job(app: str, api_url: str, folder: Path) -> Path:
    """The package's STAC API example, pointed at the session's API (the graph file by absolute path)."""
    examples = ROOT / "app-packages" / app / "examples"
    text = (examples / VIA_API[app]).read_text().replace("http://127.0.0.1:8089", api_url)
    text = text.replace("location: ndvi.json", f"location: {examples / 'ndvi.json'}")
    folder.mkdir(parents=True, exist_ok=True)
    job = folder / "job.yml"
    job.write_text(text)
    return job


def rasters(run_dir: Path) -> dict[str, np.ndarray]:
    """Every GeoTIFF a run produced, by path inside the run dir, as arrays."""
    found = {}
    for tif in sorted(run_dir.rglob("*.tif")):
        if ".eopack" not in tif.parts:
            with rasterio.open(tif) as src:
                found[str(tif.relative_to(run_dir))] = src.read()
    return found


def assert_same_rasters(got: Path, want: Path) -> None:
    a, b = rasters(got), rasters(want)
    assert a and list(a) == list(b), f"outputs differ: {list(a)} vs {list(b)}"
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def run_in_image_on_gateway(
    eopack: Eopack,
    app: str,
    job: Path,
    gw: Gateway,
    run_dir: Path,
    reference: Path,
    extra: dict[str, str] | None = None,
) -> str:
    """``eopack run APP JOB`` in its image on ``gw``: exit 0, run in the image, the workers computed
    every task, the pixels of ``reference``, no cluster left. Returns the tool's log."""
    before = set(records(gw))
    proc = eopack("run", app, str(job), "--outdir", str(run_dir), "-q", "--dask-gateway-url", gw.url,
                  env=_env(gw, extra))  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = (run_dir / ".eopack" / "cwltool.log").read_text()
    assert re.search(r"\$ (docker|podman)\b", log)  # in its image
    record = new_record(gw, before)
    assert record["tasks_completed"] > 0 and record["tasks_erred"] == 0  # the workers read the data
    assert_same_rasters(run_dir, reference)
    assert wait_no_cluster(gw) == []
    return log


def geozarr_by_url_is_refused_in_its_image(eopack: Eopack, gw: Gateway, tmp_path: Path) -> None:
    """geozarr by URL, in its image, on ``gw``: its workers would write the output store, a folder of
    the tool's container, so the tool refuses in one line (exit 2) before it reads the product or
    creates a cluster (eo-common's check_workers_write); no record, no output left as a result."""
    from imageserver import ImageServer

    job = tmp_path / "job.yml"
    before = set(records(gw))
    with ImageServer(ROOT / "data" / "sample-eopf") as base:
        job.write_text(f"zarr_url: {base}/sample-eopf.zarr\ngroups: measurements/reflectance/r10m\n")
        proc = eopack("run", "geozarr", str(job), "--outdir", str(tmp_path / "run"), "-q",
                      "--dask-gateway-url", gw.url, env=_env(gw))  # fmt: skip
    assert proc.returncode != 0, proc.stderr[-2000:]
    said = [line for line in proc.stderr.splitlines() if "the Dask workers write the output" in line]
    assert said, proc.stderr[-3000:]
    assert "--no-container" in said[0] and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert "converting on" not in proc.stderr and "product tree" not in proc.stderr  # nothing read
    assert set(records(gw)) == before  # no cluster was ever created
    run_dir = tmp_path / "run"
    assert not run_dir.exists() or not any(run_dir.rglob("*.zarr")), sorted(run_dir.rglob("*"))
