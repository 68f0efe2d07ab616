"""The Toil runners: the command they build, `--print-command` and the guards (real runs: the contract).

Slurm runs are in test_slurm.py (marker `slurm`), HTCondor in test_htcondor.py (marker `htcondor`).
"""

from __future__ import annotations

import itertools
import shlex
import sys
from pathlib import Path

import pytest

from eopack.errors import ServiceUnavailableError
from eopack.package import find_package
from eopack.runners import REGISTRY, RunOptions, RunStatus, get_runner
from eopack.runners.toil import ToilRunner, user_gave
from eopack_cli import Eopack

VENV_BIN = str(Path(sys.executable).parent)


@pytest.fixture
def job(tmp_path: Path, image_server: str) -> Path:
    path = tmp_path / "job.yml"
    path.write_text(f"fn: resize\nurl: {image_server}/sample-rgb.png\nsize: 50%\n")
    return path


def printed(runner: str, job: Path, outdir: Path, *extra: str, no_container: bool = True) -> list[str]:
    result = get_runner(runner).run(
        find_package("convert-url"),
        job,
        RunOptions(outdir=outdir, no_container=no_container, extra_args=list(extra), print_command=True),
    )
    assert result.status is RunStatus.NOT_RUN and result.command
    assert (outdir / ".eopack" / "command.txt").read_text().strip() == result.command
    return shlex.split(result.command)


def test_registry_has_the_toil_runners() -> None:
    assert {"toil", "toil-slurm", "toil-htcondor"} <= set(REGISTRY)
    assert get_runner("toil-slurm").name == "toil-slurm"


def test_single_machine_command(job: Path, tmp_path: Path) -> None:
    words = printed("toil", job, tmp_path / "r")
    meta = tmp_path / "r" / ".eopack"
    assert words[0] == f"PATH={VENV_BIN}:$PATH"  # the tools and `_toil_worker` come from the venv
    assert words[1].endswith("toil-cwl-runner")
    pairs = dict(itertools.pairwise(words))
    assert pairs["--batchSystem"] == "single_machine"
    assert pairs["--jobStore"] == str(meta / "jobstore")
    assert pairs["--workDir"] == str(meta / "work")
    assert pairs["--outdir"] == str(meta / "out")
    assert pairs["--writeLogs"] == str(meta / "worker-logs")
    assert "--no-container" in words and "--batchLogsDir" not in words
    # One --preserve-environment, followed by another option so it cannot swallow the CWL file.
    i = words.index("--preserve-environment")
    assert words.count("--preserve-environment") == 1 and words[i + 1] == "PATH"
    assert words[-2:] == [f"{meta / 'convert-url.cwl'}#convert-url", str(meta / "job.yml")]
    assert (meta / "convert-url.cwl").exists() and not (meta / "jobstore").exists()


def test_containers_are_not_prepulled(job: Path, tmp_path: Path) -> None:
    pkg = find_package("convert-url")
    from eopack.runners.base import container_decision

    if not container_decision(pkg, no_container=False)[0]:
        pytest.skip("no Docker daemon or convert-url image here (`make images` builds it)")
    words = printed("toil", job, tmp_path / "r", no_container=False)
    assert "--no-prepull" in words and "--no-container" not in words
    assert words[words.index("--custom-net") + 1] == "host"  # the job's URL is on loopback


def test_user_flags_after_double_dash_win(job: Path, tmp_path: Path) -> None:
    words = printed("toil-slurm", job, tmp_path / "r", "--jobStore", "/shared/js", "--retryCount", "3")
    assert words.count("--jobStore") == 1 and words[words.index("--jobStore") + 1] == "/shared/js"
    assert words[words.index("--retryCount") + 1] == "3"
    assert words[words.index("--batchLogsDir") + 1] == str(tmp_path / "r" / ".eopack" / "batch-logs")
    assert user_gave(["--workDir=/x"], "--workDir") and not user_gave(["--work"], "--workDir")


def test_forwarded_variables_are_named_not_valued(
    job: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EOPACK_ALLOW_PRIVATE_URLS", "1")
    monkeypatch.setenv("DASK_GATEWAY_PASSWORD", "s3cret")
    words = printed("toil", job, tmp_path / "r")
    i = words.index("--preserve-environment")
    assert words[i : i + 4] == [
        "--preserve-environment",
        "PATH",
        "EOPACK_ALLOW_PRIVATE_URLS",
        "DASK_GATEWAY_PASSWORD",
    ]
    assert "s3cret" not in " ".join(words)


def test_print_command_for_cwltool_and_toil_through_the_cli(
    eopack: Eopack, job: Path, tmp_path: Path
) -> None:
    proc = eopack("run", "convert-url", str(job), "--outdir", str(tmp_path / "c"), "--print-command")
    assert proc.returncode == 0, proc.stderr
    assert "cwltool --disable-color" in proc.stdout and "#convert-url" in proc.stdout
    proc = eopack(
        "run", "convert-url", str(job), "--runner", "toil", "--outdir", str(tmp_path / "t"), "--print-command"
    )
    assert proc.returncode == 0, proc.stderr
    assert "toil-cwl-runner --batchSystem single_machine" in proc.stdout
    assert not (tmp_path / "t" / "converted_image").exists()  # printed, not run


def test_restart_guards(job: Path, tmp_path: Path) -> None:
    runner = ToilRunner()
    pkg = find_package("convert-url")
    with pytest.raises(ServiceUnavailableError, match="--restart needs the job store"):
        runner.run(pkg, job, RunOptions(outdir=tmp_path / "r", no_container=True, extra_args=["--restart"]))
    (tmp_path / "r" / ".eopack" / "jobstore").mkdir(parents=True)
    with pytest.raises(
        ServiceUnavailableError, match="Resume it with `-- --restart`, or choose another --outdir"
    ):
        runner.run(pkg, job, RunOptions(outdir=tmp_path / "r", no_container=True))


def test_unavailable_runner_says_how_to_enable_it(job: Path, tmp_path: Path) -> None:
    runner = get_runner("toil-htcondor")
    ok, why = runner.available()
    if ok:
        pytest.skip("an HTCondor pool answers here")
    with pytest.raises(ServiceUnavailableError) as info:
        runner.run(find_package("convert-url"), job, RunOptions(outdir=tmp_path / "r"))
    assert info.value.service == "Runner 'toil-htcondor'" and info.value.reason == why
    assert "Or use one of: cwltool, toil." in str(info.value)


# Runs on Toil (success with cwltool's outputs, the tool's one-line failure, the run folder's record,
# Ctrl-C, Dask) are cells of the runner contract: tests/test_runner_contract.py::TestToil.
