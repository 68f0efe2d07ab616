"""Every package through `eopack run --runner toil-slurm` on a real single-node Slurm (marker `slurm`).

Proof that Slurm ran the tools, not Toil's local scheduler: the tool's job appears in the cluster's
history (`squeue -t all`, kept by MinJobAge) under Toil's job name. Outputs are compared with the
session's cwltool run of the same job (the ``cwltool_reference`` fixture, shared with the other runner
suites): same files, same pixels, same STAC apart from timestamps and run paths.
Wall times of the Slurm runs are written to runs/benchmarks/hpc-timings.json (reported, never asserted).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from jobs import job_for
from outputs import assert_same_outputs

from eopack.package import Package, list_packages, short_id, staging_role
from eopack.services import slurm
from eopack_cli import Eopack
from eopack_eo_common.stac import validate_tree

pytestmark = pytest.mark.slurm

# Application packages; the staging pair runs wrapped around them (tests/test_staging.py).
PACKAGES = [p for p in list_packages() if staging_role(p.doc) is None]
TIMINGS: dict[str, dict[str, float]] = {}


def timed(eopack: Eopack, *args: str) -> tuple[subprocess.CompletedProcess[str], float]:
    """Run the real CLI; returns the process and its wall time in seconds."""
    start = time.monotonic()
    proc = eopack(*args, timeout=600)
    return proc, time.monotonic() - start


def slurm_jobs() -> dict[str, tuple[str, str]]:
    """Slurm's job history: id -> (name, state), finished jobs included (MinJobAge keeps them)."""
    proc = subprocess.run(
        ["squeue", "-h", "-t", "all", "-o", "%i|%j|%T"],
        capture_output=True,
        text=True,
        env={**os.environ, **slurm.client_env()},
        check=True,
    )
    rows = (line.split("|") for line in proc.stdout.splitlines() if line.strip())
    return {r[0]: (r[1], r[2]) for r in rows}


@pytest.fixture(scope="module", autouse=True)
def report_timings(root: Path) -> Iterator[None]:
    yield
    if TIMINGS:
        out = root / "runs" / "benchmarks" / "hpc-timings.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(TIMINGS, indent=2) + "\n")


# Differences between the engines that are bugs to fix, not noise to normalise (strict: a fix shows).
# Packages whose Slurm outputs are known to differ from cwltool's, with the reason (strict xfail).
KNOWN_DIFFERENCES: dict[str, str] = {}


@pytest.mark.parametrize(
    "pkg",
    [
        pytest.param(p, marks=pytest.mark.xfail(reason=KNOWN_DIFFERENCES[p.name], strict=True))
        if p.name in KNOWN_DIFFERENCES
        else p
        for p in PACKAGES
    ],
    ids=[p.name for p in PACKAGES],
)
def test_package_on_slurm_matches_cwltool(
    eopack: Eopack,
    pkg: Package,
    slurm_cluster: slurm.SlurmCluster,
    tmp_path: Path,
    image_server: str,
    cwltool_reference: Callable[[str], Path],
) -> None:
    job = job_for(pkg, tmp_path, image_server)
    reference = cwltool_reference(pkg.name)
    before = slurm_jobs()
    proc, t_slurm = timed(
        eopack, "run", pkg.name, str(job), "--runner", "toil-slurm", "--outdir", str(tmp_path / "slurm"), "-q"
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    TIMINGS[pkg.name] = {"toil-slurm": round(t_slurm, 1)}

    catalog = Path(proc.stdout.strip().splitlines()[-1])
    assert catalog.is_relative_to(tmp_path / "slurm") and catalog.name == "catalog.json"
    assert validate_tree(catalog.parent).ok
    assert_same_outputs(reference, tmp_path / "slurm")

    new = {jid: v for jid, v in slurm_jobs().items() if jid not in before}
    tools = [short_id(t.get("id", "")) for t in pkg.tools]
    ran = [name for name, state in new.values() if state == "COMPLETED"]
    for tool in tools:
        assert any(name.startswith("toil_job_") and name.endswith(tool) for name in ran), (tool, new)
    meta = tmp_path / "slurm" / ".eopack"
    assert (meta / "toil.log").exists() and any((meta / "batch-logs").iterdir())
    assert not (meta / "jobstore").exists()  # Toil cleans the job store of a successful run


def test_failing_package_surfaces_the_tool_error(
    eopack: Eopack, root: Path, slurm_cluster: slurm.SlurmCluster, tmp_path: Path
) -> None:
    before = slurm_jobs()
    proc, _ = timed(
        eopack,
        "run",
        "ndvi",
        str(root / "tests/workflows/ndvi/bad-bbox.yml"),
        "--runner",
        "toil-slurm",
        "--outdir",
        str(tmp_path / "run"),
        "-q",
        "--",
        "--retryCount",
        "0",
    )
    assert proc.returncode == 1
    assert (
        "ndvi: error: bbox must be west,south,east,north with west < east and south < north; "
        "got '11.5,46.5,11.4,46.6'" in proc.stderr
    )
    assert "ndvi failed on toil-slurm (exit 1)" in proc.stderr
    assert proc.stdout == ""
    assert not (tmp_path / "run" / "ndvi_results").exists()
    new = [
        state
        for jid, (name, state) in slurm_jobs().items()
        if jid not in before and name.endswith("ndvi-tool")
    ]
    assert new == ["FAILED"]
    # The job store is kept for a restart, and a plain rerun is told so in one line.
    again, _ = timed(eopack,
        "run", "ndvi", str(root / "tests/workflows/ndvi/bad-bbox.yml"), "--runner", "toil-slurm",
        "--outdir", str(tmp_path / "run"), "-q",
    )  # fmt: skip
    assert again.returncode == 1
    assert "holds the job store of an unfinished Toil run. Resume it with `-- --restart`" in again.stderr


def _leader_pid(outdir: Path) -> int | None:
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if "toil-cwl-runner" in cmdline and str(outdir) in cmdline:
            return int(entry.name)
    return None


def test_restart_after_the_leader_dies_resumes_from_the_job_store(
    eopack: Eopack, root: Path, slurm_cluster: slurm.SlurmCluster, tmp_path: Path, sample_catalog: Path
) -> None:
    outdir = tmp_path / "run"
    job = root / "app-packages/ndvi/examples/default.yml"
    first = eopack.popen(
        "run", "ndvi", str(job), "--runner", "toil-slurm", "--outdir", str(outdir), "-q", allow_private=False
    )
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if any(n.endswith("ndvi-tool") and s == "RUNNING" for n, s in slurm_jobs().values()):
                break
            time.sleep(0.3)
        else:
            pytest.fail("the ndvi job never started on Slurm")
        leader = _leader_pid(outdir)
        assert leader is not None
        os.kill(leader, signal.SIGKILL)  # the leader dies mid-run; its Slurm job is left behind
        _, stderr = first.communicate(timeout=60)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode != 0 and "ndvi killed on toil-slurm" in stderr
    assert (outdir / ".eopack" / "jobstore").is_dir()
    assert not (outdir / "ndvi_results").exists()

    proc, _ = timed(
        eopack,
        "run",
        "ndvi",
        str(job),
        "--runner",
        "toil-slurm",
        "--outdir",
        str(outdir),
        "-q",
        "--",
        "--restart",
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    log = (outdir / ".eopack" / "toil.log").read_text()
    assert " --restart " in log.splitlines()[0]
    assert "Creating root job" not in log and "Importing input files" not in log  # resumed
    assert validate_tree(outdir / "ndvi_results").ok
    assert len(list((outdir / "ndvi_results").glob("ndvi-*/ndvi.tif"))) == 6
