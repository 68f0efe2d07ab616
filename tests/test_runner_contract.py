"""One contract every runner passes (Toil's batch-system test pattern: one suite, one subclass per runner).

Each runner is run through the real CLI, ``eopack run APP JOB --runner NAME``, in every cell of the
matrix: the package image present or absent (``--no-container``), and for a Dask package a local
Dask cluster or the gateway. The contract:

- success: exit 0, the catalog path last on stdout, the same outputs as one cwltool reference run
  per package (``--no-container``; pixels exact, STAC apart from run times and paths);
- a tool failure: exit 1 and the tool's one-line error (``convert-url: error: ...``) on stderr;
- a bad job: exit 2 and one line, no traceback;
- cancellation (Ctrl-C on ``eopack run``): the run ends as killed and the tool's processes are gone;
- a containerised Dask run on a gateway with local inputs: exit 2 with one line, before any cluster;
- every successful run leaves report.html, .eopack/usage.json (wall and CPU within 20 % of what the
  test measured around `eopack run`) and a Workflow Run RO-Crate (profile-validated once per runner,
  in the no-image convert-url cell; its results checked against the files in every cell).

A cell that cannot run here is skipped with how to enable it. Cheap jobs only: convert-url on the
session's loopback image server, and ndvi's sample job for the Dask cells; each heavy run happens once
per cell (module-scoped cache), and the reference runs once per package (shared with the Slurm and
WES suites).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import uuid
from pathlib import Path
from typing import Any, ClassVar

import browser
import pytest
from crates import crate_issues
from outputs import assert_same_outputs
from PIL import Image
from run_record import Measured, assert_run_record, measure

from eopack.package import find_package
from eopack.runners import get_runner
from eopack.runners.base import container_decision
from eopack.services import _proc
from eopack_eo_common.stac import validate_tree

CONVERT_ERROR = "convert-url: error: size percentage must be above 0% and at most 1000%; got '0%'"
IMAGE = "image"
NO_IMAGE = "no-image"
# Wall and CPU the test measured around each cell's `eopack run`, by run directory.
MEASURED: dict[Path, Measured] = {}


def convert_job(folder: Path, image_server: str, size: str = "50%", name: str = "convert.yml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(f"fn: resize\nurl: {image_server}/sample-rgb.png\nsize: {size}\n")
    return path


def last_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[-1] if lines else ""


def tool_processes(tag: str) -> list[int]:
    """Pids of processes (other than pytest) whose command line mentions ``tag``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            info = _proc.proc_info(int(entry.name))
            if info is not None and tag in info.cmdline and "pytest" not in info.cmdline:
                found.append(int(entry.name))
    return found


# ------------------------------------------------------------------ shared runs


@pytest.fixture(scope="session")
def reference(cwltool_reference: Any) -> dict[str, Path]:
    """The outputs every cell is compared with: the session's one cwltool run per package."""
    return {app: cwltool_reference(app) for app in ("convert-url", "ndvi")}


@pytest.fixture(scope="module")
def runs() -> dict[tuple[str, ...], tuple[subprocess.CompletedProcess[str], Path]]:
    """Each cell's run, made once and read by every test of that cell."""
    return {}


@pytest.fixture(params=[NO_IMAGE, IMAGE])
def containers(request: pytest.FixtureRequest) -> list[str]:
    """The CLI flags of the image cell: none with the package images present, else --no-container."""
    if request.param == NO_IMAGE:
        return ["--no-container"]
    ok, why = container_decision(find_package("convert-url"), no_container=False)
    if not ok or not container_decision(find_package("ndvi"), no_container=False)[0]:
        if os.environ.get("EOPACK_BUILD_IMAGES"):
            request.getfixturevalue("built_images")
        else:
            pytest.skip(
                f"package images not usable here ({why}): build them with `make images` "
                "(or set EOPACK_BUILD_IMAGES=1 to let the suite build them)"
            )
    return []


# ------------------------------------------------------------------ the contract


class RunnerContract:
    """The tests every runner passes; a subclass names the runner and how to reach it."""

    runner: ClassVar[str]
    fail_args: ClassVar[tuple[str, ...]] = ()  # engine options of the failure run (no retries)
    cancellable: ClassVar[str] = ""  # why cancellation is not supported, when it is not
    # Known bug, when set: Ctrl-C stops the run but leaves the tool's container running.
    cancel_leaves_container: ClassVar[str] = ""
    # Why this runner cannot use the suite's gateway (it always has a password), when it cannot.
    gateway_password: ClassVar[str] = ""

    @pytest.fixture
    def target(self, containers: list[str]) -> tuple[list[str], dict[str, str]]:
        """(extra CLI flags, extra environment) to run on this runner; skips with how to enable it."""
        ok, why = get_runner(self.runner).available()
        if not ok:
            pytest.skip(f"runner {self.runner} is not available here: {why}")
        return [], {}

    def run(
        self,
        eopack: Any,
        runs: dict[tuple[str, ...], tuple[subprocess.CompletedProcess[str], Path]],
        target: tuple[list[str], dict[str, str]],
        containers: list[str],
        outdir: Path,
        app: str,
        job: Path,
        *extra: str,
        env: dict[str, str] | None = None,
        key: tuple[str, ...] | None = None,
    ) -> tuple[subprocess.CompletedProcess[str], Path]:
        """``eopack run`` in this cell, once per ``key`` (the module cache)."""
        if key is not None and key in runs:
            return runs[key]
        flags, target_env = target
        args = [
            "run",
            app,
            str(job),
            "--runner",
            self.runner,
            *flags,
            *containers,
            "--outdir",
            str(outdir),
            "-q",
            *extra,
        ]
        with measure() as measured:
            proc = eopack(*args, env={**target_env, **(env or {})})
        MEASURED[outdir] = measured
        if key is not None:
            runs[key] = (proc, outdir)
        return proc, outdir

    # ---------------------------------------------------------------- convert-url

    def convert_run(
        self, eopack: Any, runs: Any, target: Any, containers: list[str], image_server: str,
        tmp_path_factory: pytest.TempPathFactory,
    ) -> tuple[subprocess.CompletedProcess[str], Path]:  # fmt: skip
        """This cell's successful convert-url run (made once, read by every test that needs it)."""
        key = (self.runner, "convert-url", *containers)
        tmp = runs[key][1].parent if key in runs else tmp_path_factory.mktemp(f"{self.runner}-ok")
        job = convert_job(tmp, image_server)
        return self.run(eopack, runs, target, containers, tmp / "run", "convert-url", job, key=key)

    def test_success_matches_cwltool(
        self, eopack: Any, runs: Any, target: Any, containers: list[str], image_server: str,
        reference: dict[str, Path], tmp_path_factory: pytest.TempPathFactory,
    ) -> None:  # fmt: skip
        proc, outdir = self.convert_run(eopack, runs, target, containers, image_server, tmp_path_factory)
        assert proc.returncode == 0, proc.stderr[-3000:]
        catalog = Path(last_line(proc.stdout))
        assert catalog == outdir / "converted_image" / "catalog.json", proc.stdout
        assert validate_tree(catalog.parent).ok
        assert_same_outputs(reference["convert-url"], outdir)
        assert_run_record(
            outdir, "convert-url", self.runner, MEASURED[outdir],
            validate=crate_issues if containers else None,
        )  # fmt: skip

    def test_tool_failure_gives_its_one_line_error(
        self, eopack: Any, runs: Any, target: Any, containers: list[str], image_server: str, tmp_path: Path
    ) -> None:
        job = convert_job(tmp_path, image_server, size="0%")
        extra = ("--", *self.fail_args) if self.fail_args else ()
        proc, outdir = self.run(
            eopack, runs, target, containers, tmp_path / "run", "convert-url", job, *extra
        )
        assert proc.returncode == 1, proc.stderr[-3000:]
        assert CONVERT_ERROR in proc.stderr
        assert f"convert-url failed on {self.runner} (exit 1)" in proc.stderr
        assert proc.stdout == "" and "Traceback" not in proc.stderr
        assert not (outdir / "converted_image").exists()

    def test_bad_job_is_exit_2_in_one_line(
        self, eopack: Any, target: Any, containers: list[str], tmp_path: Path
    ) -> None:
        job = tmp_path / "list.yml"
        job.write_text("- fn: resize\n")  # a list, not a mapping of input ids to values
        flags, env = target
        proc = eopack("run", "convert-url", str(job), "--runner", self.runner, *flags, *containers,
                      "--outdir", str(tmp_path / "run"), env=env)  # fmt: skip
        assert proc.returncode == 2, proc.stderr[-3000:]
        errors = [line for line in proc.stderr.splitlines() if "error" in line.lower()]
        assert len(errors) == 1 and str(job) in errors[0], proc.stderr
        assert "Traceback" not in proc.stderr

    def test_ctrl_c_cancels_the_run_and_its_tool(
        self,
        request: pytest.FixtureRequest,
        eopack: Any,
        target: Any,
        containers: list[str],
        image_server: str,
        tmp_path: Path,
    ) -> None:
        if self.cancellable:
            pytest.skip(self.cancellable)
        if self.cancel_leaves_container and not containers:
            # A known bug, strict: the day it is fixed this cell fails until the mark goes.
            request.node.add_marker(pytest.mark.xfail(reason=self.cancel_leaves_container, strict=True))
        tag = uuid.uuid4().hex
        job = tmp_path / "slow.yml"
        job.write_text(
            f"fn: resize\nurl: '{image_server}/slow.png?s=120&tag={tag}'\nsize: 50%\ntimeout: 180\n"
        )
        flags, env = target
        proc = eopack.popen("run", "convert-url", str(job), "--runner", self.runner, *flags, *containers,
                            "--outdir", str(tmp_path / "run"), env=env)  # fmt: skip
        try:
            assert _proc.wait_until(lambda: bool(tool_processes(tag)), 120, interval=0.5), (
                "the tool never started"
            )
            proc.send_signal(signal.SIGINT)
            _, stderr = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode != 0
        assert f"convert-url killed on {self.runner}" in stderr, stderr[-3000:]
        assert _proc.wait_until(lambda: not tool_processes(tag), 60, interval=0.5), tool_processes(tag)

    # ---------------------------------------------------------------- Dask (ndvi's sample job)

    @pytest.fixture(params=["local-dask", "gateway"])
    def dask(self, request: pytest.FixtureRequest) -> tuple[list[str], dict[str, str]]:
        if request.param == "local-dask":
            return [], {}
        if self.gateway_password:
            pytest.skip(self.gateway_password)
        gw = request.getfixturevalue("dask_gateway")
        return ["--dask-gateway-url", gw.url], {"EOPACK_GATEWAY_STATE_DIR": str(gw.state_dir)}

    def test_dask_package_matches_cwltool(
        self, eopack: Any, runs: Any, target: Any, containers: list[str], dask: Any,
        reference: dict[str, Path], tmp_path_factory: pytest.TempPathFactory,
    ) -> None:  # fmt: skip
        flags, env = dask
        job = find_package("ndvi").default_job
        tmp = tmp_path_factory.mktemp(f"{self.runner}-ndvi")
        proc, outdir = self.run(
            eopack, runs, target, containers, tmp / "run", "ndvi", job, *flags, env=env,
            key=(self.runner, "ndvi", *containers, *flags),
        )  # fmt: skip
        # In the image on the gateway, the workers read the staged catalog's host files: eopack's own
        # gateway shares this machine's files, and the tool maps its staging folder back (locality).
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert Path(last_line(proc.stdout)) == outdir / "ndvi_results" / "catalog.json", proc.stdout
        assert_same_outputs(reference["ndvi"], outdir)
        assert_run_record(outdir, "ndvi", self.runner, MEASURED[outdir], quicklooks=6)


# ------------------------------------------------------------------ the runners


class TestCwltool(RunnerContract):
    runner = "cwltool"

    def test_report_shows_the_quicklooks_in_a_browser(
        self, eopack: Any, runs: Any, tmp_path_factory: pytest.TempPathFactory
    ) -> None:
        """Debian's chromium opens the ndvi run's report.html offline and shows its six quicklooks.

        Reuses the no-image local-Dask ndvi cell's run (made once per module). The screenshot is kept
        in the run folder (screenshots/report.png).
        """
        if browser.chromium() is None:
            pytest.skip("chromium is not installed: `make setup` installs Debian's chromium")
        tmp = tmp_path_factory.mktemp("cwltool-ndvi")
        proc, outdir = self.run(
            eopack, runs, ([], {}), ["--no-container"], tmp / "run", "ndvi", find_package("ndvi").default_job,
            key=(self.runner, "ndvi", "--no-container"),
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-3000:]
        # `eopack report` writes the same record again from the folder alone.
        (outdir / "report.html").unlink()
        (outdir / "ro-crate-metadata.json").unlink()
        again = eopack("report", str(outdir))
        assert again.returncode == 0 and again.stdout.strip() == str(outdir / "report.html"), again.stderr
        assert (outdir / "ro-crate-metadata.json").is_file()
        bad = eopack("report", str(outdir / "ndvi_results"))
        assert bad.returncode == 2 and "is not a run directory (no .eopack/ in it)" in bad.stderr, bad.stderr
        assert "Traceback" not in bad.stderr
        page = (outdir / "report.html").as_uri()
        dom = browser.dump_dom(page)
        alts = re.findall(r'<img alt="(ndvi-\d{8})" src="data:image/png;base64,', dom)
        assert alts == [f"ndvi-2024{d}" for d in ("0605", "0615", "0625", "0705", "0715", "0725")], alts
        shot = browser.screenshot(page, outdir / "screenshots" / "report.png")
        # The quicklooks are drawn: the colour the first one uses most (besides white) fills a good
        # part of the screenshot, where six scaled copies of it lie.
        quicklook = outdir / "ndvi_results" / "ndvi-20240605" / "quicklook.png"
        colours = Image.open(quicklook).convert("RGBA").getcolors(1 << 20) or []
        count, rgba = max(
            (c for c in colours if c[1][3] == 255 and c[1][:3] != (255, 255, 255)), key=lambda c: c[0]
        )
        colour = rgba[:3]
        on_screen = sum(
            n for n, rgb in Image.open(shot).convert("RGB").getcolors(1 << 24) or [] if rgb == colour
        )
        assert on_screen > 0.5 * count * (240 / max(Image.open(quicklook).size)) ** 2, (
            on_screen,
            count,
            colour,
        )


class TestToil(RunnerContract):
    runner = "toil"
    fail_args = ("--retryCount", "0")

    def test_run_folder_keeps_the_record_not_the_job_store(
        self, eopack: Any, runs: Any, target: Any, containers: list[str], image_server: str,
        tmp_path_factory: pytest.TempPathFactory,
    ) -> None:  # fmt: skip
        proc, outdir = self.convert_run(eopack, runs, target, containers, image_server, tmp_path_factory)
        assert proc.returncode == 0, proc.stderr[-3000:]
        meta = outdir / ".eopack"
        assert {"toil.log", "command.txt", "outputs.json", "convert-url.cwl", "job.yml"} <= {
            p.name for p in meta.iterdir()
        }
        assert not (meta / "jobstore").exists() and not (meta / "out").exists()


@pytest.mark.slurm
class TestToilSlurm(RunnerContract):
    runner = "toil-slurm"
    fail_args = ("--retryCount", "0")
    cancellable = (
        "Ctrl-C on a toil-slurm run leaves its Slurm job to Toil's restart (test_slurm.py covers it)"
    )

    @pytest.fixture
    def target(
        self, containers: list[str], request: pytest.FixtureRequest
    ) -> tuple[list[str], dict[str, str]]:
        request.getfixturevalue("slurm_cluster")  # skips with "start it with `make slurm-up`"
        return [], {}


@pytest.mark.wes
class TestWes(RunnerContract):
    runner = "wes"
    fail_args = ("--retryCount=0",)
    gateway_password = (
        "a WES stack hands its tools the gateway password it was started with (`eopack wes up` with "
        "DASK_GATEWAY_PASSWORD set; the engine shim passes it by file), and the suite's stack starts "
        "without one: the shim's wiring is tested in test_security_secrets.py"
    )

    @pytest.fixture
    def target(
        self, containers: list[str], request: pytest.FixtureRequest
    ) -> tuple[list[str], dict[str, str]]:
        # The session stack has the site default --no-container; runs in the images get their own.
        name = "wes_service" if containers else "wes_service_containers"
        service = request.getfixturevalue(name)
        env = {"WES_USER": service.user, "WES_PASSWORD": service.password_file.read_text().strip()}
        return ["--wes-url", service.url], env


class TestCalrissian(RunnerContract):
    runner = "calrissian"

    @pytest.fixture
    def target(self, containers: list[str]) -> tuple[list[str], dict[str, str]]:
        ok, why = get_runner(self.runner).available()
        if not ok:
            pytest.skip(
                f"runner calrissian is not available here: {why}. It needs kubectl and a Kubernetes "
                "cluster (test_calrissian.py covers it on kind; see docs/runners.md)"
            )
        pytest.skip("calrissian runs in its own suite (test_calrissian.py); not in this matrix yet")


class TestToilHtcondor(RunnerContract):
    runner = "toil-htcondor"

    @pytest.fixture
    def target(self, containers: list[str]) -> tuple[list[str], dict[str, str]]:
        ok, why = get_runner(self.runner).available()
        if not ok:
            pytest.skip(
                f"runner toil-htcondor is not available here: {why} (an HTCondor pool; see docs/runners.md)"
            )
        pytest.skip("toil-htcondor runs in its own suite (test_htcondor.py); not in this matrix yet")
