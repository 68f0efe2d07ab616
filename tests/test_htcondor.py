"""The toil-htcondor runner: the command and environment it builds, and a real run on a pool.

No HTCondor daemons exist in Debian or PyPI, so a pool cannot run here (DESIGN.md §5): the real run
(marker `htcondor`) runs when `condor_status` answers and otherwise skips, saying so.
"""

from __future__ import annotations

import itertools
import shlex
import sys
from pathlib import Path

import pytest

from eopack.package import find_package
from eopack.runners import RunOptions, get_runner
from eopack_eo_common.stac import validate_tree

VENV_BIN = str(Path(sys.executable).parent)


@pytest.fixture
def job(tmp_path: Path, image_server: str) -> Path:
    path = tmp_path / "job.yml"
    path.write_text(f"fn: resize\nurl: {image_server}/sample-rgb.png\nsize: 50%\n")
    return path


def test_command_and_environment(job: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOIL_HTCONDOR_COLLECTOR", "cm.example.org")
    monkeypatch.setenv("TOIL_HTCONDOR_SCHEDD", "submit.example.org")
    monkeypatch.delenv("TOIL_HTCONDOR_PARAMS", raising=False)
    result = get_runner("toil-htcondor").run(
        find_package("convert-url"),
        job,
        RunOptions(
            outdir=tmp_path / "r", no_container=True, print_command=True, extra_args=["--retryCount", "2"]
        ),
    )
    words = shlex.split(result.command or "")
    meta = tmp_path / "r" / ".eopack"
    # The pool is chosen by the environment; it is part of the printed, pasteable line.
    assert words[:3] == [
        f"PATH={VENV_BIN}:$PATH",
        "TOIL_HTCONDOR_COLLECTOR=cm.example.org",
        "TOIL_HTCONDOR_SCHEDD=submit.example.org",
    ]
    pairs = dict(itertools.pairwise(words))
    assert pairs["--batchSystem"] == "htcondor"
    # Job store, work dir and batch logs in the run directory: it must be on the shared file system.
    assert pairs["--jobStore"] == str(meta / "jobstore")
    assert pairs["--workDir"] == str(meta / "work")
    assert pairs["--batchLogsDir"] == str(meta / "batch-logs")
    assert pairs["--retryCount"] == "2"
    assert "--no-container" in words


def condor_pool() -> str | None:
    """None when a pool answers `condor_status`; else why not, and what a site needs (the runner's words)."""
    ok, why = get_runner("toil-htcondor").available()
    return None if ok else f"no HTCondor pool here (not in Debian or PyPI): {why}"


def test_the_skip_says_what_a_site_needs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With no pool, the reason names the binaries, the config, the bindings and what eopack calls."""
    monkeypatch.setenv("PATH", f"{tmp_path}:{VENV_BIN}")  # no condor_status here (tmp_path is empty)
    reason = condor_pool()
    assert reason is not None
    for needed in (
        "condor_status -total",
        "CONDOR_CONFIG",
        "COLLECTOR_HOST",
        "TOIL_HTCONDOR_COLLECTOR",
        "toil[htcondor]",
        "--outdir on a file system every execute node mounts",
        "toil-cwl-runner --batchSystem htcondor",
        "--print-command",
    ):
        assert needed in reason, needed


@pytest.mark.htcondor
def test_convert_url_on_a_real_pool(job: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reason = condor_pool()
    if reason:
        pytest.skip(reason)
    runner = get_runner("toil-htcondor")
    ok, why = runner.available()
    assert ok, why
    monkeypatch.setenv("EOPACK_ALLOW_PRIVATE_URLS", "1")
    result = runner.run(
        find_package("convert-url"), job, RunOptions(outdir=Path.cwd() / "htcondor-run", quiet=True)
    )
    assert result.ok, result.errors
    assert result.catalog is not None and validate_tree(result.catalog.parent).ok
