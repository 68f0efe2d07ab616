"""`eopack run` with the cwltool runner: run directory, pass-through, exit codes, no side effects."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from eopack.package import find_package
from eopack.runners import RunOptions, RunStatus, get_runner
from eopack.runners.cwltool import container_decision
from eopack_cli import Eopack


def run_convert(eopack: Eopack, job: Path, outdir: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """`eopack run convert-url JOB --outdir OUTDIR -q [EXTRA]` with loopback URLs allowed."""
    return eopack(
        "run",
        "convert-url",
        str(job),
        "--outdir",
        str(outdir),
        "-q",
        *extra,
    )


@pytest.fixture
def job(tmp_path: Path, image_server: str) -> Path:
    path = tmp_path / "job.yml"
    path.write_text(f"fn: resize\nurl: {image_server}/sample-rgb.png\nsize: 25%\n")
    return path


def test_run_prints_the_catalog_and_keeps_what_was_run(
    eopack: Eopack, root: Path, job: Path, tmp_path: Path
) -> None:
    cwl = root / "app-packages/convert-url/convert-url.cwl"
    before = hashlib.sha256(cwl.read_bytes()).hexdigest()
    proc = run_convert(eopack, job, tmp_path / "run")
    assert proc.returncode == 0, proc.stderr
    catalog = tmp_path / "run" / "converted_image" / "catalog.json"
    assert proc.stdout.strip().splitlines()[-1] == str(catalog)
    meta = tmp_path / "run" / ".eopack"
    assert {p.name for p in meta.iterdir()} >= {
        "convert-url.cwl",
        "job.yml",
        "command.txt",
        "cwltool.log",
        "outputs.json",
    }
    command = (meta / "command.txt").read_text()
    assert "--preserve-environment EOPACK_ALLOW_PRIVATE_URLS" in command
    assert hashlib.sha256(cwl.read_bytes()).hexdigest() == before


def test_default_run_dir_is_under_runs(eopack: Eopack, root: Path, tmp_path: Path, job: Path) -> None:
    # The default is runs/<app>/<UTC timestamp>/ under the repository (here a copy of its layout).
    (tmp_path / "repo").mkdir()
    os.symlink(root / "app-packages", tmp_path / "repo" / "app-packages")
    proc = eopack(
        "run", "convert-url", str(job), "-q", env={"EOPACK_ALLOW_PRIVATE_URLS": "1"}, cwd=tmp_path / "repo"
    )
    assert proc.returncode == 0, proc.stderr
    runs = list((tmp_path / "repo" / "runs" / "convert-url").iterdir())
    assert len(runs) == 1 and runs[0].name.endswith("Z")
    assert proc.stdout.strip() == str(runs[0] / "converted_image" / "catalog.json")


def test_extra_args_go_to_cwltool(eopack: Eopack, job: Path, tmp_path: Path) -> None:
    proc = run_convert(eopack, job, tmp_path / "run", "--", "--print-deps")
    command = (tmp_path / "run" / ".eopack" / "command.txt").read_text()
    assert "--print-deps" in command
    assert proc.returncode == 0  # --print-deps prints dependencies and runs nothing
    assert not (tmp_path / "run" / "converted_image").exists()


def test_failure_surfaces_the_tool_line_and_exit_code(
    eopack: Eopack, tmp_path: Path, image_server: str
) -> None:
    job = tmp_path / "job.yml"
    job.write_text(f"fn: resize\nurl: {image_server}/sample-rgb.png\nsize: 0%\n")
    proc = run_convert(eopack, job, tmp_path / "run")
    assert proc.returncode == 1
    assert "convert-url: error: size percentage must be above 0% and at most 1000%; got '0%'" in proc.stderr
    assert "convert-url failed on cwltool (exit 1)" in proc.stderr
    assert proc.stdout == ""


def test_runner_api_result(job: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EOPACK_ALLOW_PRIVATE_URLS", "1")
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    result = get_runner("cwltool").run(
        find_package("convert-url"), job, RunOptions(outdir=tmp_path / "r", no_container=True, quiet=True)
    )
    assert result.status is RunStatus.SUCCEEDED and result.ok and result.exit_code == 0
    assert result.catalog == tmp_path / "r" / "converted_image" / "catalog.json"


def test_no_container_when_images_are_missing() -> None:
    use, why = container_decision(find_package("convert-url"), no_container=False)
    if use:
        pytest.skip(
            "Docker and the convert-url image are present; the container path is tested with `docker`"
        )
    assert why in {"no Docker daemon answers", "image eopack/convert-url:1.0.0 is not built (make images)"}


def test_unknown_runner_and_app_are_usage_errors(eopack: Eopack) -> None:
    proc = eopack("run", "convert-url", "--runner", "nope")
    assert proc.returncode == 2 and "Invalid value for '--runner'" in proc.stderr
    proc = eopack("run", "nope")
    assert proc.returncode == 2 and "No application package 'nope'" in proc.stderr


@pytest.mark.parametrize("url", ["-q", "127.0.0.1:8795", "gateway://127.0.0.1:8796"])
def test_a_gateway_url_that_is_no_url_is_a_usage_error(eopack: Eopack, url: str, tmp_path: Path) -> None:
    """`--dask-gateway-url -q` (a forgotten value) used to end in a traceback deep in the runner."""
    proc = eopack("run", "ndvi", "--dask-gateway-url", url, "--outdir", str(tmp_path / "run"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert f"{url!r} is not the http(s):// URL of a Dask Gateway" in proc.stderr
    assert not (tmp_path / "run").exists()


def test_list_shows_version_label_and_tested_runners(eopack: Eopack) -> None:
    proc = eopack("list", env={"COLUMNS": "200"})
    row = next(line for line in proc.stdout.splitlines() if "convert-url" in line)
    assert "1.0.0" in row and "Convert an image from a URL" in row and "cwltool" in row
