"""The Toil WES stack (wes/) and the WES runner, end to end on loopback (issue 11).

Every test talks to a real stack: Redis, Celery workers, ``toil server`` 9.3.0 and nginx with
basic auth (the ``wes_service`` fixture; the restart test starts its own one-slot stack). Runs use
``--no-container`` so they run the tools of the workspace venv, like the cwltool reference runs.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import wes_engine
from jobs import job_for

from eopack.clients.wes import WesAuthError, WesClient
from eopack.package import Package, list_packages, staging_role
from eopack.runners import RunOptions, RunStatus, get_runner
from eopack.runners.base import RunResult, prepare
from eopack.runners.wes import engine_parameters, split_options
from eopack.services import _proc, wes

pytestmark = pytest.mark.wes

ROOT = Path(__file__).resolve().parents[1]
# Application packages; the staging pair runs wrapped around them (tests/test_staging.py).
PACKAGES = {p.name: p for p in list_packages(ROOT) if staging_role(p.doc) is None}
VOLATILE_SUFFIXES = (".html", ".tar", ".tar.gz", ".tgz", ".log")  # timings, mtimes


# ------------------------------------------------------------------ helpers


def client_for(service: wes.WesService) -> WesClient:
    return WesClient(service.url, (service.user, service.password_file.read_text().strip()))


@pytest.fixture
def wes_env(wes_service: wes.WesService, monkeypatch: pytest.MonkeyPatch) -> wes.WesService:
    """Credentials the way users give them: WES_USER/WES_PASSWORD."""
    monkeypatch.setenv("WES_USER", wes_service.user)
    monkeypatch.setenv("WES_PASSWORD", wes_service.password_file.read_text().strip())
    return wes_service


def tree(folder: Path, rename: tuple[str, str] = ("", "")) -> dict[str, str]:
    """Relative path -> sha256 (JSON canonicalised; volatile files by name only).

    ``rename`` replaces a name in paths and JSON text: Toil (direct or via WES) stages a Directory
    input under a generated name (``tmpXXXXXXXX``) and geozarr names its product after its input.
    """
    old, new = rename
    found = {}
    for path in sorted(folder.rglob("*")):
        if not path.is_file():
            continue
        rel = str(path.relative_to(folder))
        rel = rel.replace(old, new) if old else rel
        if path.name.endswith(VOLATILE_SUFFIXES):
            found[rel] = "volatile"
        elif path.suffix == ".json":
            text = path.read_text().replace(old, new) if old else path.read_text()
            doc = without_run_times(json.loads(text))
            found[rel] = hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()
        else:
            found[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def without_run_times(doc: Any) -> Any:
    """The document without what is specific to one run: timestamps of the run itself (convert-url's
    item datetime is 'now') and ``eopack:source``, the path the engine staged the input at."""
    today = time.strftime("%Y-%m-%d", time.gmtime())
    if isinstance(doc, dict):
        return {
            k: without_run_times(v)
            for k, v in doc.items()
            if k != "eopack:source"
            and not (k in ("datetime", "created", "updated") and isinstance(v, str) and v.startswith(today))
        }
    if isinstance(doc, list):
        return [without_run_times(v) for v in doc]
    return doc


def run(package: Package, runner: str, job: Path, outdir: Path, *extra: str) -> RunResult:
    options = RunOptions(
        outdir=outdir,
        no_container=True,
        quiet=True,
        extra_args=list(extra),
        env={"EOPACK_ALLOW_PRIVATE_URLS": "1"},
    )
    return get_runner(runner).run(package, job, options)


def slow_job(tmp: Path, image_server: str, tag: str, seconds: int = 120) -> Path:
    """A convert-url job whose download stalls ``seconds``: a run that is RUNNING for a while."""
    path = tmp / f"slow-{tag}.yml"
    path.write_text(
        f"fn: resize\nurl: '{image_server}/slow.png?s={seconds}&tag={tag}'\nsize: 50%\ntimeout: {seconds + 60}\n"
    )
    return path


def submit(client: WesClient, package: Package, job: Path, outdir: Path, **params: str | None) -> str:
    """Submit the way the runner does (run copy + job as attachments), without waiting."""
    prepared = prepare(package, job, RunOptions(outdir=outdir, no_container=True, quiet=True))
    return client.submit(
        [(prepared.cwl.name, prepared.cwl.read_bytes()), ("job.yml", prepared.job_file.read_bytes())],
        f"{prepared.cwl.name}#{package.name}",
        prepared.job,
        {"--no-container": None, **params},
    )


def processes_with(text: str) -> list[_proc.ProcInfo]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            info = _proc.proc_info(int(entry.name))
            if info is not None and text in info.cmdline and "pytest" not in info.cmdline:
                found.append(info)
    return found


def wait_for(predicate: Any, timeout: float, what: str) -> None:
    assert _proc.wait_until(predicate, timeout, interval=0.5), (
        f"timed out after {timeout:.0f} s waiting for {what}"
    )


# ------------------------------------------------------------------ unit: option handling, config


def test_engine_parameters_and_our_options_are_split() -> None:
    ours, rest = split_options(
        ["--wes-url", "http://h/ga4gh/wes/v1", "--", "--batchSystem=slurm", "--retryCount", "2", "--logDebug"]
    )
    assert ours == {"wes-url": "http://h/ga4gh/wes/v1"}
    assert engine_parameters(rest) == {"--batchSystem": "slurm", "--retryCount": "2", "--logDebug": None}


def test_server_pin_matches_the_requirements_file() -> None:
    assert f"toil[cwl,server]=={wes.SERVER_TOIL}" in (ROOT / "wes" / "requirements-server.txt").read_text()


# ------------------------------------------------------------------ every package via WES == cwltool


@pytest.fixture(scope="module")
def every_package(
    wes_service: wes.WesService,
    image_server: str,
    cwltool_reference: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, tuple[RunResult, Path, float]]:
    """Each package once via WES, all at the same time (bounded wall time), with its cwltool reference."""
    tmp = tmp_path_factory.mktemp("every")
    os.environ["WES_USER"] = wes_service.user
    os.environ["WES_PASSWORD"] = wes_service.password_file.read_text().strip()
    try:

        def via_wes(name: str) -> tuple[RunResult, float]:
            package = PACKAGES[name]
            started = time.monotonic()
            result = run(
                package,
                "wes",
                job_for(package, tmp, image_server),
                tmp / name / "wes",
                "--wes-url",
                wes_service.url,
            )
            return result, time.monotonic() - started

        for name in PACKAGES:  # sample data is generated once, before the threads
            job_for(PACKAGES[name], tmp, image_server)
        with ThreadPoolExecutor(len(PACKAGES)) as pool:
            done = dict(zip(PACKAGES, pool.map(via_wes, PACKAGES), strict=True))
    finally:
        os.environ.pop("WES_USER", None)
        os.environ.pop("WES_PASSWORD", None)
    return {name: (result, cwltool_reference(name), took) for name, (result, took) in done.items()}


@pytest.mark.parametrize("app", sorted(PACKAGES))
def test_every_package_completes_via_wes_with_the_cwltool_outputs(
    app: str, every_package: dict[str, tuple[RunResult, Path, float]]
) -> None:
    via_wes, reference, took = every_package[app]
    assert via_wes.ok, via_wes.errors
    record = json.loads((via_wes.run_dir / ".eopack" / "wes-run-log.json").read_text())
    assert record["state"] == "COMPLETE"
    assert via_wes.catalog is not None and via_wes.catalog.exists()
    for key, value in json.loads((reference / ".eopack" / "outputs.json").read_text()).items():
        if isinstance(value, dict) and value.get("class") == "Directory":
            ours, theirs = via_wes.run_dir / key, reference / key
            staged = {p.name for p in ours.iterdir() if p.is_dir()} - {
                p.name for p in theirs.iterdir() if p.is_dir()
            }
            wanted = {p.name for p in theirs.iterdir() if p.is_dir()} - {
                p.name for p in ours.iterdir() if p.is_dir()
            }
            rename = (staged.pop(), wanted.pop()) if len(staged) == len(wanted) == 1 else ("", "")
            assert not rename[0] or rename[0].startswith("tmp"), f"{app}: unexpected folder {rename[0]}"
            assert tree(ours, rename) == tree(theirs), f"{app}: output {key} differs"
    print(f"{app}: submit->COMPLETE via WES {took:.1f} s")


# ------------------------------------------------------------------ failures, auth, cancel


def test_a_failing_package_is_executor_error_with_the_tool_line_in_logs(
    wes_env: wes.WesService, image_server: str, tmp_path: Path
) -> None:
    job = tmp_path / "bad.yml"
    job.write_text(f"fn: resize\nurl: {image_server}/missing\nsize: 50%\n")
    result = run(PACKAGES["convert-url"], "wes", job, tmp_path / "run", "--wes-url", wes_env.url)
    assert result.status is RunStatus.FAILED
    assert any(line.startswith("convert-url: error: cannot download") for line in result.errors), (
        result.errors
    )
    run_id = json.loads((tmp_path / "run" / ".eopack" / "wes-run.json").read_text())["run_id"]
    proc = subprocess.run(
        [sys.executable, "-m", "eopack", "wes", "logs", run_id, "--wes-url", wes_env.url],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "EXECUTOR_ERROR" in proc.stderr
    assert "convert-url: error: cannot download" in proc.stdout
    assert wes_env.password_file.read_text().strip() not in proc.stdout + proc.stderr


@pytest.mark.parametrize("password", [None, "wrong"])
def test_no_or_wrong_credentials_get_401_and_a_clear_error(
    wes_service: wes.WesService, password: str | None, tmp_path: Path
) -> None:
    import requests

    auth = None if password is None else (wes_service.user, password)
    raw = requests.get(wes_service.url + "/service-info", auth=auth, timeout=10)
    assert raw.status_code == 401
    with pytest.raises(WesAuthError) as caught:
        WesClient(wes_service.url, auth).list_runs().__next__()
    assert caught.value.status == 401
    assert ("no credentials were sent" if password is None else "were refused") in str(caught.value)
    env = {k: v for k, v in os.environ.items() if not k.startswith("WES_")}
    env.update({"NETRC": str(tmp_path / "none"), "EOPACK_WES_STATE_DIR": str(tmp_path)})
    if password:
        env.update({"WES_USER": wes_service.user, "WES_PASSWORD": password})
    proc = subprocess.run(
        [sys.executable, "-m", "eopack", "wes", "list", "--wes-url", wes_service.url],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert proc.returncode == 1
    assert "HTTP 401" in proc.stderr and "WES_USER" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_netrc_credentials_are_used(
    wes_service: wes.WesService, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text(
        f"machine 127.0.0.1 login {wes_service.user} password {wes_service.password_file.read_text().strip()}\n"
    )
    netrc.chmod(0o600)
    monkeypatch.delenv("WES_USER", raising=False)
    monkeypatch.delenv("WES_PASSWORD", raising=False)
    monkeypatch.setenv("NETRC", str(netrc))
    monkeypatch.setenv("EOPACK_WES_STATE_DIR", str(tmp_path))
    assert WesClient.from_environment(wes_service.url).service_info()["version"] == wes.SERVER_TOIL


def test_cancel_of_a_running_job_is_canceled_and_its_processes_are_gone(
    wes_service: wes.WesService, image_server: str, tmp_path: Path
) -> None:
    client = client_for(wes_service)
    tag = uuid.uuid4().hex
    run_id = submit(client, PACKAGES["convert-url"], slow_job(tmp_path, image_server, tag), tmp_path / "run")
    wait_for(
        lambda: client.status(run_id) == "RUNNING" and bool(processes_with(tag)), 90, "the tool to start"
    )
    assert any("convert-url" in p.cmdline for p in processes_with(tag))
    proc = subprocess.run(
        [sys.executable, "-m", "eopack", "wes", "cancel", run_id, "--wes-url", wes_service.url],
        capture_output=True,
        text=True,
        check=False,
        env={
            **os.environ,
            "WES_USER": wes_service.user,
            "WES_PASSWORD": wes_service.password_file.read_text().strip(),
        },
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "CANCELED"
    wait_for(
        lambda: not processes_with(tag) and not processes_with(run_id), 30, "the run's processes to exit"
    )


# ------------------------------------------------------------------ WES -> Slurm


def test_a_slurm_run_without_a_slurm_fails_at_once_in_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The workers' engine asks Slurm before Toil starts: Toil would retry ``sbatch`` until the
    client gave up (the CI run whose Slurm was unreachable waited 900 s for a run that never ended)."""
    if shutil.which("sinfo") is None:
        pytest.skip("no Slurm client here (`make slurm-up` installs it)")
    engine = wes_engine.load()
    conf = tmp_path / "slurm.conf"  # a cluster whose controller is gone (TCPTimeout: no wait here)
    conf.write_text(
        "ClusterName=gone\nSlurmctldHost=localhost(127.0.0.1)\nSlurmctldPort=9\nTCPTimeout=1\n"
        "MessageTimeout=1\nNodeName=localhost CPUs=1\nPartitionName=debug Nodes=localhost Default=YES\n"
    )
    monkeypatch.setenv("SLURM_CONF", str(conf))
    wf, job = tmp_path / "wf.cwl", tmp_path / "job.json"  # never read: the run stops before
    start = time.monotonic()
    assert engine.main(["--batchSystem", "slurm", f"{wf}#main", str(job)]) == 1
    err = capsys.readouterr().err.strip()
    assert time.monotonic() - start < 10 and len(err.splitlines()) == 1
    assert "asks for --batchSystem=slurm but the WES workers reach no Slurm" in err and "SLURM_CONF" in err
    assert not (tmp_path / "work").exists()  # no work dir made, no engine started
    assert engine.batch_system(["--batchSystem=slurm"]) == "slurm" and engine.batch_system(["x"]) is None


def test_wes_runs_on_slurm(
    slurm_cluster: Any, wes_env: wes.WesService, image_server: str, tmp_path: Path
) -> None:
    job = job_for(PACKAGES["convert-url"], tmp_path, image_server)
    jobcomp_path = Path(slurm_cluster.jobcomp)
    jobs_before = jobcomp_path.read_text().count("JobId=") if jobcomp_path.exists() else 0
    result = run(
        PACKAGES["convert-url"], "wes", job, tmp_path / "run", "--wes-url", wes_env.url, "--batchSystem=slurm"
    )
    assert result.ok, result.errors
    log = json.loads((tmp_path / "run" / ".eopack" / "wes-run-log.json").read_text())
    assert "--batchSystem=slurm" in " ".join(log["run_log"]["cmd"])
    # Slurm's job completion log names the Toil jobs of this run (one line per finished job).
    jobcomp = Path(slurm_cluster.jobcomp).read_text() if Path(slurm_cluster.jobcomp).exists() else ""
    assert jobcomp.count("JobId=") > jobs_before, "no Slurm job ran"
    assert (result.run_dir / "converted_image" / "catalog.json").exists()


# ------------------------------------------------------------------ restart


@pytest.fixture
def one_slot_stack(wes_service: wes.WesService) -> Iterator[tuple[Path, wes.WesService]]:
    state_dir = Path(tempfile.mkdtemp(prefix="eopack-wes-restart-"))
    os.environ["EOPACK_ALLOW_PRIVATE_URLS"] = "1"
    try:
        service = wes.up(state_dir, port=_proc.free_port(), workers=1)
    except BaseException:
        wes.down(state_dir)
        raise
    finally:
        os.environ.pop("EOPACK_ALLOW_PRIVATE_URLS", None)
    try:
        yield state_dir, service
    finally:
        wes.down(state_dir)
        shutil.rmtree(state_dir, ignore_errors=True)


def test_restart_keeps_the_queued_run_and_settles_the_running_one(
    one_slot_stack: tuple[Path, wes.WesService], image_server: str, tmp_path: Path
) -> None:
    state_dir, service = one_slot_stack
    client = client_for(service)
    tag = uuid.uuid4().hex
    running = submit(
        client, PACKAGES["convert-url"], slow_job(tmp_path, image_server, tag, 300), tmp_path / "a"
    )
    wait_for(
        lambda: client.status(running) == "RUNNING" and bool(processes_with(tag)),
        90,
        "the first run to start",
    )
    queued = submit(
        client,
        PACKAGES["convert-url"],
        job_for(PACKAGES["convert-url"], tmp_path, image_server),
        tmp_path / "b",
    )
    time.sleep(2)
    assert client.status(queued) == "QUEUED"

    wes.down(state_dir)
    assert not processes_with(tag), "the interrupted run's tool survived the stop"
    os.environ["EOPACK_ALLOW_PRIVATE_URLS"] = "1"
    try:
        service = wes.up(state_dir)
    finally:
        os.environ.pop("EOPACK_ALLOW_PRIVATE_URLS", None)
    client = client_for(service)

    assert client.status(running) == "SYSTEM_ERROR"
    assert "set to SYSTEM_ERROR" in client.log_text(running)
    assert client.wait(queued, timeout=120) == "COMPLETE"
    states = {r["run_id"]: r["state"] for r in client.list_runs()}
    assert states == {running: "SYSTEM_ERROR", queued: "COMPLETE"}


# ------------------------------------------------------------------ load


def test_twenty_concurrent_runs_all_finish_none_lost(
    wes_service: wes.WesService, image_server: str, tmp_path: Path
) -> None:
    client = client_for(wes_service)
    package = PACKAGES["convert-url"]
    job = job_for(package, tmp_path, image_server)
    before = {r["run_id"] for r in client.list_runs()}
    started = time.monotonic()
    with ThreadPoolExecutor(20) as pool:
        ids = list(pool.map(lambda i: submit(client, package, job, tmp_path / f"r{i}"), range(20)))
    submitted = time.monotonic() - started
    assert len(set(ids)) == 20
    finals: dict[str, str] = {}
    lock = threading.Lock()

    def follow(run_id: str) -> None:
        state = client.wait(run_id, timeout=300, poll=2)
        with lock:
            finals[run_id] = state

    with ThreadPoolExecutor(20) as pool:
        list(pool.map(follow, ids))
    took = time.monotonic() - started
    assert finals == dict.fromkeys(ids, "COMPLETE")
    listed = {r["run_id"]: r["state"] for r in client.list_runs()}
    assert set(ids) <= set(listed) and not (set(ids) & before)
    print(f"20 runs: submitted in {submitted:.1f} s, all COMPLETE after {took:.1f} s")


# ------------------------------------------------------------------ ZOO-Project's WES runner

ZOO_REQUIREMENTS = [
    "zoo-wes-runner==0.2.1",
    # zoo-wes-runner 0.2.1 imports these without declaring them
    "zoo-calrissian-runner",
    "cwl-loader",
    "pyyaml",
    "httpx",
    "loguru",
]


def zoo_venv() -> Path:
    """An isolated venv with ZOO-Project's WES runner (its dependencies clash with the workspace's)."""
    venv = ROOT / ".cache" / "venvs" / "zoo-wes-runner"
    stamp = venv / ".eopack-requirements"
    if stamp.exists() and stamp.read_text() == "\n".join(ZOO_REQUIREMENTS):
        return venv
    base = getattr(sys, "_base_executable", sys.executable)
    made = subprocess.run(
        [base, "-m", "venv", "--clear", str(venv)], capture_output=True, text=True, check=False
    )
    pip = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", *ZOO_REQUIREMENTS],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    if made.returncode or pip.returncode:
        pytest.skip(f"cannot install zoo-wes-runner from PyPI: {(made.stderr + pip.stderr).strip()[-300:]}")
    stamp.write_text("\n".join(ZOO_REQUIREMENTS))
    return venv


def test_zoo_wes_runner_gets_complete_from_our_endpoint(
    wes_service: wes.WesService, image_server: str, tmp_path: Path
) -> None:
    venv = zoo_venv()
    package = PACKAGES["convert-url"]
    prepared = prepare(
        package,
        job_for(package, tmp_path, image_server),
        RunOptions(outdir=tmp_path / "run", no_container=True),
    )
    job = tmp_path / "job.json"
    job.write_text(json.dumps(prepared.job))
    env = {
        **os.environ,
        # The settings ZOO-Project's deployment gives its WES runner (seed 001: OAPIP_TOIL_WES_*).
        "WES_URL": wes_service.url + "/",
        "WES_USER": wes_service.user,
        "WES_PASSWORD": wes_service.password_file.read_text().strip(),
    }
    proc = subprocess.run(
        [
            str(venv / "bin" / "python"),
            str(ROOT / "tests" / "support" / "zoo_wes_driver.py"),
            str(prepared.cwl),
            str(job),
            str(tmp_path / "zoo"),
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["exit"] == report["succeeded"]
    assert client_for(wes_service).status(report["run_id"]) == "COMPLETE"
    assert report["outputs"]["converted_image"]["class"] == "Directory"
