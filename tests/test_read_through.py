"""Issue 18, item 4: what the read-through found, fixed (tested through the CLI and the runner API)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from eopack.errors import JobInvalidError
from eopack.job import load_job
from eopack.package import find_package
from eopack.package import tested_runners as covered_runners
from eopack.runners import REGISTRY, RunOptions, RunStatus, get_runner

ROOT = Path(__file__).resolve().parents[1]


def _eopack(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "eopack", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "COLUMNS": "200"},
        check=False,
    )


@pytest.mark.parametrize(
    ("content", "says"),
    [("- a\n- b\n", "holds a list"), ("a: [1, 2\n", "is not valid YAML at line 2"), ("42\n", "holds a int")],
)
def test_a_bad_job_file_is_one_line_and_exit_2(tmp_path: Path, content: str, says: str) -> None:
    job = tmp_path / "job.yml"
    job.write_text(content)
    with pytest.raises(JobInvalidError) as info:
        load_job(job)
    assert info.value.exit_code == 2 and says in str(info.value)
    proc = _eopack("run", "convert-url", str(job))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert lines[0].startswith(f"eopack: error: Job file {job} {says}")


def test_list_shows_runners_covered_not_job_files() -> None:
    # tests/workflows/ndvi holds job files (bad-bbox.yml, empty-search.yml, ...) beside the tests.
    assert covered_runners("ndvi", ROOT) == ["cwltool", "toil"]
    for app in ("cloudless-mosaic", "convert-url", "geozarr", "ndvi", "openeo-graph"):
        assert set(covered_runners(app, ROOT)) <= set(REGISTRY), app
    row = next(line for line in _eopack("list").stdout.splitlines() if " ndvi " in line)
    assert "cwltool, toil" in row and "bad-bbox" not in row


def test_list_reads_the_runner_from_the_command(tmp_path: Path) -> None:
    folder = tmp_path / "tests" / "workflows" / "demo"
    folder.mkdir(parents=True)
    (folder / "test_wes.yml").write_text(
        "- name: a\n  command: eopack run demo job.yml --runner toil-slurm -q\n"
        "- name: b\n  command: eopack run demo --outdir out\n"
    )
    (folder / "broken-job.yml").write_text("x: 1\n")
    assert covered_runners("demo", tmp_path) == ["cwltool", "toil-slurm"]


def test_a_prepared_only_run_is_not_reported_as_succeeded(tmp_path: Path) -> None:
    runner = get_runner("calrissian")
    runner.dry_run = True  # type: ignore[attr-defined]
    pkg = find_package("cloudless-mosaic")
    result = runner.run(pkg, pkg.default_job, RunOptions(outdir=tmp_path / "dry"))
    assert result.status is RunStatus.NOT_RUN and result.ok and result.exit_code == 0
    assert (tmp_path / "dry" / ".eopack" / "manifests.yaml").is_file()
