"""A 3-node Slurm in network namespaces (`eopack slurm up --nodes 3`) running a package on toil-slurm.

One cluster for the module, in a state dir of its own: its namespaces, cluster name and loopback
forward are derived from that path, and slurmctld/slurmd listen inside their namespaces, so it
coexists with the single-node Slurm other suites use. Everything is asserted from Slurm's own
records: the job completion log (``jobcomp/filetxt``: one line per job end, with its node list).

Kept lean: one workload (every package, all at once, one node killed under them) compared with the
session's shared cwltool references (conftest ``cwltool_reference``). convert-url fetches its image
from the test image server on Docker's bridge address (conftest ``bridge_url``), which the tool's
container reaches from any node, as compute nodes reach a site's web server; not from the host's
loopback, which no node reaches. Its reference is a cwltool run of that same job.
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
from jobs import job_for
from outputs import assert_same_outputs

from eopack.package import list_packages, staging_role
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

# Every application package, each in its image, on toil-slurm.
APPS = [p for p in list_packages() if staging_role(p.doc) is None]


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
def jobs(bridge_url: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each package's test job (tests/support/jobs.py), convert-url's image on the bridge server."""
    folder = tmp_path_factory.mktemp("jobs")
    return {p.name: job_for(p, folder, bridge_url) for p in APPS}


@pytest.fixture(scope="module")
def references(
    eopack: Eopack,
    cwltool_reference: Callable[[str], Path],
    jobs: dict[str, Path],
    env: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, Path]:
    """The session's cwltool --no-container run of each app (shared with the contract and WES suites);
    convert-url's is a cwltool run of the bridge job, so even its STAC (the source URL) must match."""
    made = {}
    for p in APPS:
        if jobs[p.name] == p.default_job:
            made[p.name] = cwltool_reference(p.name)
            continue
        out = tmp_path_factory.mktemp(f"{p.name}-reference") / "out"
        proc = eopack("run", p.name, str(jobs[p.name]), "--no-container", "--outdir", str(out), "-q", env=env)
        assert proc.returncode == 0, proc.stderr[-2000:]
        made[p.name] = out
    return made


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


def test_every_package_spreads_over_nodes_and_survives_a_node_killed_mid_run(
    eopack: Eopack,
    cluster: Path,
    env: dict[str, str],
    jobs: dict[str, Path],
    references: dict[str, Path],
    tmp_path: Path,
) -> None:
    """Every package at once (one CPU per node, so one job per node at a time); the node running the
    first tool job crashes: Slurm marks it DOWN and the job NODE_FAIL, the tool runs again on a live
    node (Slurm's requeue or Toil's retry), and every run ends with cwltool's outputs."""
    before = len(jobcomp(cluster))
    outs = {p.name: tmp_path / p.name for p in APPS}
    runs = {
        app: eopack.popen(
            "run", app, str(jobs[app]), "--runner", "toil-slurm", "--outdir", str(o), "-q", env=env
        )
        for app, o in outs.items()
    }
    squeue = ["squeue", "-h", "-t", "R", "-o", "%i %N"]
    stderrs: dict[str, str] = {}
    try:
        deadline = time.monotonic() + 300
        running: list[str] = []
        while time.monotonic() < deadline and not running:
            running = subprocess.run(
                squeue, capture_output=True, text=True, env={**os.environ, **env}, check=False
            ).stdout.split()
            time.sleep(0.5)
        assert running, "no job ever started on the cluster"
        job, node = running[:2]
        slurm.stop_node(cluster, node)  # the node crashes: slurmd and its job die
        for app, run in runs.items():
            stderrs[app] = run.communicate(timeout=900)[1]
    finally:
        for run in runs.values():
            if run.poll() is None:
                run.kill()
    for app, run in runs.items():
        assert run.returncode == 0, (app, stderrs.get(app, "")[-2000:])
    for app, out in outs.items():
        catalogs = list(out.glob("*/catalog.json"))
        assert catalogs and all(validate_tree(c.parent).ok for c in catalogs), app
        assert_same_outputs(references[app], out)
    ends = [(j["JobId"], j["JobState"], j["NodeList"]) for j in jobcomp(cluster)[before:]]
    assert all(j["Name"].startswith("toil_job_") for j in jobcomp(cluster)[before:]), ends
    assert next(e for e in ends if e[0] == job) == (job, "NODE_FAIL", node), ends
    completed = [e for e in ends if e[1] == "COMPLETED"]
    assert len(completed) >= len(APPS) and all(e[2] != node for e in completed), ends  # one per run at least
    assert len({e[2] for e in ends}) >= 2, ends  # the jobs ran on more than one node
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
