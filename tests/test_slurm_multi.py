"""A 3-node Slurm in network namespaces (`eopack slurm up --nodes 3`) running a package on toil-slurm.

One cluster for the module, in a state dir of its own: its namespaces, cluster name and loopback
forward are derived from that path, and slurmctld/slurmd listen inside their namespaces, so it
coexists with the single-node Slurm other suites use. Everything is asserted from Slurm's own
records: the job completion log (``jobcomp/filetxt``: one line per job end, with its node list).

Kept lean: one light package (openeo-graph, ~25 s of work), the session's shared cwltool reference (conftest cwltool_reference).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from outputs import assert_same_outputs

from eopack.services import _proc, slurm, slurm_net
from eopack_cli import Eopack
from eopack_eo_common.stac import validate_tree

pytestmark = [
    pytest.mark.slurm,
    pytest.mark.skipif(
        os.geteuid() != 0 or shutil.which("ip") is None or shutil.which("nsenter") is None,
        reason="a multi-node Slurm needs root, `ip` and `nsenter` (network namespaces): "
        "run as root with iproute2 and util-linux to include these tests",
    ),
]

APP = "openeo-graph"


def jobcomp(base: Path) -> list[dict[str, str]]:
    """Slurm's record of every job end, oldest first (a requeued job has one line per attempt)."""
    log = base / "logs" / "jobcomp.log"
    lines = log.read_text().splitlines() if log.exists() else []
    return [dict(re.findall(r"(\w+)=(\S*)", line)) for line in lines if line.strip()]


@pytest.fixture(scope="module")
def cluster(eopack: Eopack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    base = tmp_path_factory.mktemp("slurm3") / "state"
    base.mkdir()
    proc = eopack("slurm", "up", "--nodes", "3", "--state-dir", str(base), timeout=300)
    try:
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert proc.stdout.strip() == str(base / "slurm.conf")
        assert "nodes n1 idle, n2 idle, n3 idle" in proc.stderr
        yield base
    finally:
        slurm.down(base)


@pytest.fixture(scope="module")
def env(cluster: Path) -> dict[str, str]:
    return {"SLURM_CONF": str(cluster / "slurm.conf")}


@pytest.fixture(scope="module")
def reference(cwltool_reference: Callable[[str], Path]) -> Path:
    """The session's one cwltool --no-container run of APP (shared with the contract and WES suites)."""
    return cwltool_reference(APP)


def test_nodes_are_namespaces_with_their_own_addresses(cluster: Path, env: dict[str, str]) -> None:
    layout = slurm.Layout.load(cluster / slurm.LAYOUT)
    assert layout is not None and layout.nodes == 3
    net = layout.net
    assert slurm_net.ours(net.tag) == sorted(net.namespaces)
    for k in (1, 2, 3):
        addrs = subprocess.run(
            ["ip", "-n", net.netns(k), "-o", "-4", "addr"], capture_output=True, text=True, check=True
        ).stdout
        assert re.findall(r"inet (\S+)/", addrs) == ["127.0.0.1", net.addr(k)]
    host_links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
    assert net.tag not in host_links and "10.217." not in subprocess.check_output(
        ["ip", "-o", "addr"], text=True
    )
    nodes = subprocess.run(
        ["sinfo", "-h", "-N", "-o", "%N %o"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **env},
    ).stdout.split()
    assert nodes == ["n1", net.addr(1), "n2", net.addr(2), "n3", net.addr(3)]
    assert slurm.status(cluster).up


def test_concurrent_runs_spread_over_nodes_and_match_cwltool(
    eopack: Eopack, cluster: Path, env: dict[str, str], reference: Path, tmp_path: Path
) -> None:
    """Two users' runs at once: nodes have one CPU each, so Slurm puts them on different nodes."""
    before = len(jobcomp(cluster))
    outs = [tmp_path / "a", tmp_path / "b"]
    runs = [
        eopack.popen("run", APP, "--runner", "toil-slurm", "--outdir", str(o), "-q", env=env) for o in outs
    ]
    for run in runs:
        _, stderr = run.communicate(timeout=900)
        assert run.returncode == 0, stderr[-2000:]
    for out in outs:
        assert validate_tree(out / "openeo_results").ok
        assert_same_outputs(reference, out)
    new = jobcomp(cluster)[before:]
    assert all(j["JobState"] == "COMPLETED" and j["Name"].startswith("toil_job_") for j in new), new
    assert len({j["NodeList"] for j in new}) >= 2, new


def test_a_node_killed_mid_run_is_run_again_elsewhere(
    eopack: Eopack, cluster: Path, env: dict[str, str], reference: Path, tmp_path: Path
) -> None:
    """Slurm marks the dead node DOWN and the job NODE_FAIL; the tool runs again on a live node."""
    before = len(jobcomp(cluster))
    out = tmp_path / "run"
    run = eopack.popen("run", APP, "--runner", "toil-slurm", "--outdir", str(out), "-q", env=env)
    squeue = ["squeue", "-h", "-t", "R", "-o", "%i %N"]
    try:
        deadline = time.monotonic() + 300
        running: list[str] = []
        while time.monotonic() < deadline and not running:
            running = subprocess.run(
                squeue, capture_output=True, text=True, env={**os.environ, **env}, check=False
            ).stdout.split()
            time.sleep(0.5)
        assert running, "the job never started on the cluster"
        job, node = running[:2]
        slurm.stop_node(cluster, node)  # the node crashes: slurmd and its job die
        _, stderr = run.communicate(timeout=900)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 0, stderr[-2000:]
    assert_same_outputs(reference, out)
    ends = [(j["JobId"], j["JobState"], j["NodeList"]) for j in jobcomp(cluster)[before:]]
    assert ends[0] == (job, "NODE_FAIL", node), ends
    # Slurm requeues the job (same id) and/or Toil retries it (new id): the tool ended well elsewhere.
    assert ends[-1][1] == "COMPLETED" and ends[-1][2] != node, ends
    states = slurm.status(cluster).node_states
    assert states[node].startswith("down"), states


def test_down_removes_every_namespace_and_daemon(eopack: Eopack, cluster: Path) -> None:
    layout = slurm.Layout.load(cluster / slurm.LAYOUT)
    assert layout is not None
    proc = eopack("slurm", "down", "--state-dir", str(cluster), timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert slurm_net.ours(layout.tag) == []
    assert f"eopack-{layout.tag}" not in subprocess.check_output(["ip", "netns", "list"], text=True)
    assert [p.name for p in _proc.processes_under(cluster)] == []
    status = eopack("slurm", "status", "--state-dir", str(cluster))
    assert status.returncode == 3
