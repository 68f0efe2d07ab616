"""Containers without a Docker daemon: `--engine podman` (real podman, real Slurm) and the
Singularity/Apptainer command lines (Apptainer cannot be installed here: only what the runners build).

The podman runs use an isolated podman state dir each (EOPACK_PODMAN_DIR: its own storage root),
so the assertions about what podman did are about these runs only: the image arrived by loading the
OCI archive that `eopack images export` wrote, nothing was pulled (eopack's registries.conf blocks
docker.io, so a pull would also fail the run), and the results equal cwltool's with Docker.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, cast

import pytest
from outputs import assert_same_outputs

from eopack.clients import podman
from eopack.package import find_package
from eopack.runners.engine import archive_path, sif_name, use_archives
from eopack.services import slurm
from eopack_cli import Eopack

APP = "convert-url"  # the lightest package: no Dask cluster, one small image
TAG = "eopack/convert-url:1.0.0"


def _job(folder: Path, image_server: str) -> Path:
    job = folder / "job.yml"
    job.write_text(f"fn: resize\nurl: {image_server}/sample-rgb.png\nsize: 50%\n")
    return job


# ------------------------------------------------------------------ command lines (no engine needed)


def test_sif_name_is_the_file_cwltool_looks_for() -> None:
    # cwl-utils' SingularityImagePuller (cwltool 3.3): "_" -> "___", "/" -> "_s_", then ".sif".
    assert sif_name(TAG) == "eopack_s_convert-url:1.0.0.sif"
    assert sif_name("127.0.0.1:5000/eopack/geo_zarr") == "127.0.0.1:5000_s_eopack_s_geo___zarr:latest.sif"


@pytest.mark.parametrize("runner", ["cwltool", "toil-slurm"])
def test_singularity_command_line(eopack: Eopack, runner: str, tmp_path: Path, image_server: str) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / sif_name(TAG)).write_bytes(b"")  # where `apptainer build` would have written it
    proc = eopack(
        "run", APP, str(_job(tmp_path, image_server)), "--runner", runner, "--engine", "singularity",
        "--outdir", str(tmp_path / "run"), "--print-command", env={"EOPACK_IMAGE_CACHE": str(cache)},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    line = proc.stdout.strip().splitlines()[-1]
    assert line.startswith(f"CWL_SINGULARITY_CACHE={cache} ")
    assert " --singularity " in line and "--podman" not in line
    if runner == "toil-slurm":
        assert "toil-cwl-runner --batchSystem slurm" in line and " --no-prepull " in line
    # The image is found by its dockerPull name in the cache: the run copy keeps dockerPull.
    assert f"dockerPull: {TAG}" in (tmp_path / "run" / ".eopack" / f"{APP}.cwl").read_text()


def test_singularity_without_its_sif_says_how_to_build_it(eopack: Eopack, tmp_path: Path) -> None:
    proc = eopack(
        "run", APP, "--engine", "singularity", "--print-command", env={"EOPACK_IMAGE_CACHE": str(tmp_path)}
    )
    assert proc.returncode == 1 and proc.stdout == ""
    want = f"`apptainer build {tmp_path / sif_name(TAG)} oci-archive://{archive_path(TAG, tmp_path)}`"
    assert proc.stderr.strip().splitlines() == [
        f"eopack: error: Image {TAG} for --engine singularity is not available: "
        f"{tmp_path / sif_name(TAG)} does not exist. Create it with {want}."
    ]


def test_bad_engine_and_engine_on_a_remote_runner_are_one_line_exit_2(eopack: Eopack) -> None:
    bad = eopack("run", APP, "--engine", "rkt")
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        "eopack: error: Unknown container engine 'rkt'. Use one of: docker, podman, singularity."
    ]
    wes = eopack("run", APP, "--engine", "podman", "--runner", "wes")
    assert wes.returncode == 2 and len(wes.stderr.strip().splitlines()) == 1
    assert "Container engine 'podman' is not available with runner 'wes'" in wes.stderr


def test_podman_missing_is_one_clear_line(eopack: Eopack, tmp_path: Path) -> None:
    # PATH: only this venv's scripts (eopack, cwltool, toil); podman lives in /usr/bin.
    env = {"PATH": str(Path(sys.executable).parent)}
    proc = eopack("run", APP, "--engine", "podman", "--outdir", str(tmp_path / "run"), env=env)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.strip().splitlines()[-1] == (
        "eopack: error: Container engine 'podman' is not available: podman not found on PATH "
        "(Debian: apt-get install podman). Or use --engine docker."
    )


def test_use_archives_rewrites_docker_pull_to_a_load_from_the_cache(tmp_path: Path) -> None:
    doc = find_package(APP).copy_doc()
    use_archives(doc, tmp_path)
    reqs = [
        r for t in doc["$graph"] for r in t.get("requirements", []) if r.get("class") == "DockerRequirement"
    ]
    assert reqs == [
        {
            "class": "DockerRequirement",
            "dockerLoad": str(tmp_path / "eopack_convert-url_1.0.0.oci.tar"),
            "dockerImageId": TAG,
        }
    ]


# ------------------------------------------------------------------ real podman runs


@pytest.fixture(scope="module")
def oci_archive(eopack: Eopack, built_images: dict[str, object]) -> Path:
    """`eopack images export convert-url` into the default cache (kept: an unchanged image is not redone)."""
    if shutil.which("podman") is None or shutil.which("skopeo") is None:
        pytest.skip("podman and skopeo are not installed: `make setup` (as root) installs them")
    proc = eopack("images", "export", APP, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    archive = Path(proc.stdout.strip().splitlines()[-1])
    assert archive == archive_path(TAG) and archive.stat().st_size > 10_000_000
    # An OCI archive: a tar whose index.json names the image by its tag.
    index = json.loads(
        subprocess.run(["tar", "-xOf", str(archive), "index.json"], capture_output=True, check=True).stdout
    )
    assert index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"] == TAG
    return archive


def _archive_image_id(archive: Path) -> str:
    """The image id (config digest) inside an OCI archive: index.json -> manifest -> config."""

    def member(name: str) -> dict[str, Any]:
        out = subprocess.run(["tar", "-xOf", str(archive), name], capture_output=True, check=True).stdout
        return cast(dict[str, Any], json.loads(out))

    digest = member("index.json")["manifests"][0]["digest"]
    return str(member("blobs/sha256/" + digest.split(":")[1])["config"]["digest"])


def _podman_ran_only_from_the_archive(state: Path, archive: Path) -> None:
    env = podman.configure(state)  # the same files the run used (rewritten identically)
    # One image in this storage root, the archive's, loaded from it (not pulled: no registry is
    # configured, docker.io is blocked and pull_policy is never).
    assert podman.image_names(env) == [f"localhost/{TAG}@{_archive_image_id(archive)}"]
    events = podman.image_events(env)
    assert events[0].startswith("loadfromarchive "), events
    absent = subprocess.run(
        ["podman", "run", "--rm", "eopack/absent:1"], capture_output=True, text=True, check=False,
        env={**os.environ, **{k: v for k, v in env.items() if k != "PATH"}},
    )  # fmt: skip
    assert absent.returncode != 0 and "image not known" in absent.stderr


@pytest.mark.docker
@pytest.mark.slurm
def test_podman_from_the_oci_archive_on_cwltool_and_toil_slurm_matches_docker(
    eopack: Eopack,
    oci_archive: Path,
    slurm_cluster: slurm.SlurmCluster,
    tmp_path: Path,
    image_server: str,
) -> None:
    job = _job(tmp_path, image_server)
    ref = eopack("run", APP, str(job), "--outdir", str(tmp_path / "docker"), "-q")
    assert ref.returncode == 0, ref.stderr[-2000:]

    runs = {"cwltool": tmp_path / "podman-cwltool", "toil-slurm": tmp_path / "podman-slurm"}
    states = [tmp_path / f"podman-state-{runner}" for runner in runs]
    try:
        _run_with_podman(eopack, job, runs, states, oci_archive)
    finally:
        for state in states:  # the overlay driver leaves its storage bind-mounted: reset unmounts it
            if state.exists():
                subprocess.run(
                    ["podman", "system", "reset", "--force"], capture_output=True, check=False,
                    env={**os.environ, **{k: v for k, v in podman.configure(state).items() if k != "PATH"}},
                )  # fmt: skip


def _run_with_podman(
    eopack: Eopack, job: Path, runs: dict[str, Path], states: list[Path], oci_archive: Path
) -> None:
    for (runner, outdir), state in zip(runs.items(), states, strict=True):
        # state: an empty storage root, nothing loaded yet
        proc = eopack(
            "run", APP, str(job), "--runner", runner, "--engine", "podman", "--outdir", str(outdir), "-q",
            env={"EOPACK_PODMAN_DIR": str(state)}, timeout=900,
        )  # fmt: skip
        assert proc.returncode == 0, (runner, proc.stderr[-3000:])
        assert_same_outputs(outdir.parent / "docker", outdir)
        command = (outdir / ".eopack" / "command.txt").read_text()
        assert " --podman " in command and f"CONTAINERS_STORAGE_CONF={state / 'storage.conf'}" in command
        assert f"dockerLoad: {oci_archive}" in (outdir / ".eopack" / f"{APP}.cwl").read_text()
        _podman_ran_only_from_the_archive(state, oci_archive)

    # Slurm ran the tool (its history keeps the job), so the load happened in the Slurm job.
    hist = subprocess.run(
        ["sacct", "-n", "-X", "-o", "JobName%80,State"], capture_output=True, text=True, check=False,
        env={**os.environ, **slurm.client_env()},
    )  # fmt: skip
    squeue = subprocess.run(
        ["squeue", "-h", "-t", "all", "-o", "%j|%T"], capture_output=True, text=True, check=True,
        env={**os.environ, **slurm.client_env()},
    )  # fmt: skip
    rows = squeue.stdout + hist.stdout
    assert any(
        line.startswith("toil_job_") and "convert" in line and "COMPLETED" in line
        for line in rows.splitlines()
    ), rows
