"""Issue 21 findings 10: Dask requirement values are range-checked; the local gateway caps clusters."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from traitlets.config import Config

from eopack.dask import MAX_WORKERS, DaskRangeError, DaskRequirement, evaluate
from eopack.package import find_package
from eopack.services.gateway import cluster_max_workers
from eopack.services.gateway_files import config as gateway_config

ROOT = Path(__file__).resolve().parents[1]
ECHO = ROOT / "tests/data/packages/dask-echo/dask-echo.cwl"


def _tool(pkg):  # type: ignore[no-untyped-def]
    return next(t for t in pkg.copy_doc()["$graph"] if t["class"] == "CommandLineTool")


@pytest.mark.parametrize(
    ("job", "says"),
    [
        ({"workers": 0, "memory": "1G"}, "workerCores = 0: must be at least 1"),
        ({"workers": -3, "memory": "1G"}, "workerCores = -3: must be at least 1"),
        ({"workers": 1, "memory": "0K"}, "workerMemory = '0K': must be at least 64M"),
        ({"workers": 1, "memory": "100G"}, "clusterMaxMemory = '12G': below workerMemory = '100G'"),
        ({"workers": 1.5, "memory": "1G"}, "workerCores = 1.5 is not a whole number"),
        ({"workers": True, "memory": "1G"}, "workerCores = True is not a whole number"),
    ],
)
def test_out_of_range_values_from_the_job_are_refused(job: dict[str, object], says: str) -> None:
    pkg = find_package(str(ECHO))
    with pytest.raises(DaskRangeError) as err:
        evaluate(pkg, _tool(pkg), job)
    assert says in str(err.value)
    assert err.value.exit_code == 2


@pytest.mark.parametrize(
    ("req", "says"),
    [
        (DaskRequirement(1, 1, 100000, "1G", "100000G"), f"100000 workers asked for: at most {MAX_WORKERS}"),
        (DaskRequirement(1, 1, -4, "1G", "8G"), "clusterMaxCores = -4: must be at least 1"),
        (DaskRequirement(1, 4, 2, "1G", "8G"), "clusterMaxCores = 2: not even one worker"),
    ],
)
def test_requirement_ranges(req: DaskRequirement, says: str) -> None:
    assert any(says in p for p in req.problems())


def test_the_shipped_requirements_are_in_range() -> None:
    for cwl in sorted((ROOT / "app-packages").glob("*/*.cwl")):
        pkg = find_package(str(cwl))
        for tool in pkg.copy_doc().get("$graph", []):
            if tool.get("class") == "CommandLineTool":
                evaluate(pkg, tool, {})  # raises when out of range


def test_eopack_run_refuses_an_input_driven_zero_in_one_line(tmp_path: Path) -> None:
    job = tmp_path / "job.yml"
    job.write_text("workers: 0\nmemory: 1G\n")
    proc = subprocess.run(
        [sys.executable, "-m", "eopack", "run", str(ECHO), str(job), "--outdir", str(tmp_path / "run"),
         "--no-container", "--dask-gateway-url", "http://127.0.0.1:9"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if "error" in ln]
    assert len(errors) == 1 and "workerCores = 0: must be at least 1" in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr


def test_the_local_gateway_caps_every_cluster(tmp_path: Path) -> None:
    """The real configuration file, applied to a traitlets Config and read by dask-gateway's ClusterConfig."""
    from dask_gateway_server.backends.base import ClusterConfig

    state = {"api_port": 1, "port": 2, "proxy_port": 3, "password": "x", "idle_timeout": 60}
    (tmp_path / "state.json").write_text(json.dumps(state))
    settings = {
        "state_file": str(tmp_path / "state.json"), "cluster_logs": str(tmp_path / "logs"), "dask": "dask",
        "route": "/api/eopack/clusters-test", "host": "127.0.0.1", "clusters": str(tmp_path / "c"),
        "preload": "p.py", "max_cores": 2, "max_memory_gib": 4.0, "cluster_max_workers": cluster_max_workers(2),
    }  # fmt: skip
    (tmp_path / gateway_config.SETTINGS_FILE).write_text(json.dumps(settings))
    c = Config()
    gateway_config.configure(c, tmp_path)
    cluster = ClusterConfig(config=c, worker_cores=1)
    assert cluster.cluster_max_workers == 8
    assert cluster._worker_limit_from_resources() == 8  # cores: (9 - 1 scheduler) // 1
    # A client asking for 100000 workers gets at most this many (the server takes the minimum).
    assert min(100000, cluster.cluster_max_workers, cluster._worker_limit_from_resources()) == 8


def test_the_slurm_backend_runs_the_jobqueue_launcher_without_sudo(tmp_path: Path) -> None:
    """Upstream runs `sudo -nHu <user> dask-gateway-jobqueue-launcher`; ours runs the real launcher itself,
    with SLURM_CONF in the environment of the command it launches (sbatch/scancel)."""
    import asyncio

    from dask_gateway_server.backends.jobqueue.slurm import SlurmBackend

    state = {"api_port": 1, "port": 2, "proxy_port": 3, "password": "x", "idle_timeout": 60}
    (tmp_path / "state.json").write_text(json.dumps(state))
    launcher = Path(sys.executable).parent / "dask-gateway-jobqueue-launcher"
    settings = {
        "state_file": str(tmp_path / "state.json"), "cluster_logs": str(tmp_path / "logs"), "dask": "dask",
        "route": "/api/eopack/clusters-test2", "host": "127.0.0.1", "clusters": str(tmp_path / "c"),
        "preload": "p.py", "max_cores": 2, "max_memory_gib": 4.0, "cluster_max_workers": 1,
        "backend": "slurm", "launcher": str(launcher), "slurm_env": {"SLURM_CONF": "/x/slurm.conf"},
    }  # fmt: skip
    (tmp_path / gateway_config.SETTINGS_FILE).write_text(json.dumps(settings))
    c = Config()
    gateway_config.configure(c, tmp_path)
    backend = c.DaskGateway.backend_class
    assert issubclass(backend, SlurmBackend)
    code, out, _ = asyncio.run(
        backend.do_as_user(None, "eopack", "start", cmd=["sh", "-c", "echo $SLURM_CONF"], env={}, stdin=None)
    )
    assert (code, out) == (0, "/x/slurm.conf\n")
    assert backend.get_staging_directory(None, type("C", (), {"name": "abc"})()) == str(
        tmp_path / "c" / "abc"
    )
