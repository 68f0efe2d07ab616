"""Issue 21 #2: a canary gateway password never reaches a file the run leaves, a log or ``ps``.

On every runner that can run here, with and without containers. In container mode the password
travels by file (runners/secret_files.py): cwltool logs its ``docker run`` line with every
``--env=NAME=value``, so an environment variable would land in ``.eopack/cwltool.log`` and ``ps``.
The test package proves the tool still receives the password (its SHA-256 in the result), without
writing the password itself anywhere.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import rasterio
import wes_engine

from eopack.clients import docker, s3
from eopack.package import find_package
from eopack.runners import secret_files
from eopack.services import _proc, wes
from eopack.services import s3 as s3_service
from eopack.services.wes import _Layout, _worker_env
from eopack.tool_env import SECRET_ENV

ROOT = Path(__file__).resolve().parents[1]
ECHO = ROOT / "tests/data/packages/dask-echo/dask-echo.cwl"
IMAGE = "eopack/ndvi:1.0.0"  # any built image with a shell; the tool only runs sh
# The tool: records the environment, then reads every secret from <NAME>_FILE (container mode, and
# Toil) or <NAME>, writes only their SHA-256, and reads an s3:// GeoTIFF from the loopback S3 with them.
# No "$(" or "${" in it: CWL would read them as expressions; no single quote inside the Python.
READER = (
    "import hashlib, os, rasterio\n"
    "lines = []\n"
    "for n in NAMES:\n"
    "    f = os.environ.get(n + '_FILE')\n"
    "    v = open(f).read() if f else os.environ.get(n, '')\n"
    "    if v: os.environ[n] = v\n"
    "    lines.append(n + ' ' + hashlib.sha256(v.encode()).hexdigest() + (' file' if f else ' env'))\n"
    "with rasterio.open(os.environ['EOPACK_TEST_OBJECT']) as src: lines.append('sum %d' % src.read(1).sum())\n"
    "open('secrets.txt', 'w').write(chr(10).join(lines) + chr(10))\n"
).replace("'", '"')
SECRETS = ("DASK_GATEWAY_PASSWORD", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "EOPACK_ASSET_HEADERS")


def _command(s3_url: str) -> str:
    code = READER.replace("NAMES", repr(SECRETS).replace("'", '"')).replace(
        'os.environ["EOPACK_TEST_OBJECT"]', json.dumps(s3_url)
    )
    return (
        "env | grep ^DASK_GATEWAY_ | grep -v PASSWORD= | sort > env.txt; "
        "env | grep -c _FILE= > files.txt; "
        f"python -c '{code}'"
    )


def _package(folder: Path, s3_url: str) -> Path:
    command = _command(s3_url)
    assert "$(" not in command and "${" not in command
    text = ECHO.read_text().replace("eopack/does-not-exist:0.1.0", IMAGE)
    text = text.replace('"env | grep ^DASK_GATEWAY_ | sort > env.txt"', json.dumps(command))
    cwl = folder / "dask-echo.cwl"
    cwl.write_text(text)
    assert json.dumps(command) in text
    return cwl


class PsWatch:
    """``ps -eo args`` every 0.1 s while the run lasts: every command line of the machine."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            out = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=False)
            self.seen.append(out.stdout)
            self._stop.wait(0.1)

    def __enter__(self) -> PsWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _leaks(canary: str, *folders: Path) -> list[str]:
    found = []
    for folder in folders:
        for path in folder.rglob("*"):
            if path.is_file() and not path.is_symlink() and canary.encode() in path.read_bytes():
                found.append(str(path))
    return found


@dataclass(frozen=True)
class Canaries:
    """The secret values of a run: each must reach the tool and nothing else."""

    values: dict[str, str]
    s3_url: str
    env: dict[str, str]

    def leaks_in(self, text: str) -> list[str]:
        return [name for name, value in self.values.items() if value in text]


@pytest.fixture(scope="module")
def s3_object(s3_endpoint: s3_service.S3Service, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, int]:
    """(s3:// URL, pixel sum) of a small GeoTIFF in the loopback S3 (signatures enforced)."""
    path = tmp_path_factory.mktemp("s3") / "tile.tif"
    pixels = np.arange(64, dtype="uint16").reshape(8, 8)
    profile = {"driver": "GTiff", "width": 8, "height": 8, "count": 1, "dtype": "uint16"}
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(pixels, 1)
    key = s3_endpoint.key()
    s3.client(s3_endpoint.url, key, s3_endpoint.region).upload_file(
        str(path), s3_endpoint.bucket, "t/tile.tif"
    )
    return f"s3://{s3_endpoint.bucket}/t/tile.tif", int(pixels.sum())


@pytest.fixture
def canaries(s3_endpoint: s3_service.S3Service, s3_object: tuple[str, int]) -> Canaries:
    key = s3_endpoint.key()
    values = {
        "DASK_GATEWAY_PASSWORD": _canary(),
        "AWS_ACCESS_KEY_ID": key.access_key_id,
        "AWS_SECRET_ACCESS_KEY": key.secret_access_key,
        "EOPACK_ASSET_HEADERS": f"Authorization: Bearer {_canary()}",
    }
    env = {
        **values,
        "AWS_S3_ENDPOINT": s3_endpoint.url.split("://", 1)[1],
        "AWS_HTTPS": "NO",
        "AWS_VIRTUAL_HOSTING": "FALSE",
        "AWS_DEFAULT_REGION": s3_endpoint.region,
    }
    return Canaries(values, s3_object[0], env)


def _run(tmp_path: Path, canaries: Canaries, *args: str) -> tuple[subprocess.CompletedProcess[str], PsWatch]:
    cwl = _package(tmp_path, canaries.s3_url)
    job = tmp_path / "job.yml"
    job.write_text("workers: 1\nmemory: 1G\n")
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {**os.environ, **canaries.env, "TMPDIR": str(tmp)}
    with PsWatch() as ps:
        proc = subprocess.run(
            [sys.executable, "-m", "eopack", "run", str(cwl), str(job), "--outdir", str(tmp_path / "run"),
             "--dask-gateway-url", "http://127.0.0.1:9", *args],
            capture_output=True, text=True, env=env, check=False, timeout=600,
        )  # fmt: skip
    return proc, ps


def _assert_received(tmp_path: Path, canaries: Canaries, s3_sum: int, by_file: bool) -> None:
    """The tool got every secret (their digests) and read the s3:// object with them."""
    lines = (tmp_path / "run" / "result" / "secrets.txt").read_text().splitlines()
    got = {line.split()[0]: line.split()[1:] for line in lines}
    assert got["sum"] == [str(s3_sum)]
    for name, value in canaries.values.items():
        assert got[name] == [hashlib.sha256(value.encode()).hexdigest(), "file" if by_file else "env"], name


def _assert_no_leak(
    tmp_path: Path, canaries: Canaries, proc: subprocess.CompletedProcess[str], ps: PsWatch
) -> None:
    for value in canaries.values.values():
        assert _leaks(value, tmp_path) == []
    assert canaries.leaks_in(proc.stdout + proc.stderr) == []
    assert len(ps.seen) > 3 and not any(canaries.leaks_in(snapshot) for snapshot in ps.seen)
    assert not (tmp_path / "run" / ".eopack" / "secrets").exists()


def _canary() -> str:
    return f"canary-{secrets.token_hex(12)}"


def _skip_without_images(mode: str) -> None:
    if mode == "container" and not (docker.daemon_answers() and docker.image_exists(IMAGE)):
        pytest.skip(f"needs a Docker daemon and {IMAGE} (make images)")


@pytest.mark.parametrize("mode", ["container", "no-container"])
def test_cwltool_never_shows_the_secrets(
    tmp_path: Path, mode: str, canaries: Canaries, s3_object: tuple[str, int]
) -> None:
    _skip_without_images(mode)
    args = ["--no-container"] if mode == "no-container" else []
    proc, ps = _run(tmp_path, canaries, *args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    _assert_received(tmp_path, canaries, s3_object[1], by_file=mode == "container")
    if mode == "container":
        assert "DASK_GATEWAY_PASSWORD_FILE=" in (tmp_path / "run" / "result" / "env.txt").read_text()
        assert "running without containers" not in proc.stderr
    _assert_no_leak(tmp_path, canaries, proc, ps)


@pytest.mark.parametrize("mode", ["container", "no-container"])
def test_toil_passes_the_secrets_by_file_and_leaks_nothing(
    tmp_path: Path, mode: str, canaries: Canaries, s3_object: tuple[str, int]
) -> None:
    """Toil forwards no variable by name and must not get secrets in the copy: files, in both modes."""
    _skip_without_images(mode)
    args = ["--no-container"] if mode == "no-container" else []
    proc, ps = _run(tmp_path, canaries, "--runner", "toil", *args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    _assert_received(tmp_path, canaries, s3_object[1], by_file=True)
    _assert_no_leak(tmp_path, canaries, proc, ps)


def test_wes_workers_get_the_password_by_file_not_in_their_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The workers pass their entire environment to every tool (and to `docker run --env`)."""
    canary = _canary()
    monkeypatch.setenv("DASK_GATEWAY_PASSWORD", canary)
    layout = _Layout(tmp_path / "wes")
    layout.root.mkdir()
    env = _worker_env(layout, tmp_path / "venv")
    assert not any(canary in value for value in env.values())
    secret = Path(env["DASK_GATEWAY_PASSWORD_FILE"])
    assert secret.read_text() == canary and secret.stat().st_mode & 0o777 == 0o600
    assert "DASK_GATEWAY_PASSWORD" in wes.SECRET_WORKER_ENV
    assert set(wes.SECRET_WORKER_ENV) == set(SECRET_ENV) & set(wes.WORKER_ENV)
    assert set(wes.SECRET_WORKER_ENV) <= set(wes.WORKER_ENV)


def test_wes_engine_gives_the_tools_their_secrets_as_hidden_files(tmp_path: Path) -> None:
    """The WES workers' secret files reach each tool as a staged File (so also inside its container):
    every tool gets the credentials, only Dask tools the gateway password; the copies hold paths only,
    and cwltool accepts the wired workflow."""
    engine = wes_engine.load()
    values = {"DASK_GATEWAY_PASSWORD": _canary(), "AWS_SECRET_ACCESS_KEY": _canary()}
    environ = {}
    for name, value in values.items():
        environ[f"{name}_FILE"] = str(secret_files.write(tmp_path / "secrets", name, value))
    files = engine.secret_files(environ)
    assert set(files) == set(values)
    workflows = {}
    for app in ("ndvi", "stage-in"):  # a Dask package and one without
        cwl = tmp_path / f"{app}.cwl"
        cwl.write_text(json.dumps(find_package(app).copy_doc()))
        inputs = tmp_path / f"{app}-inputs.json"
        inputs.write_text("{}")
        wf, job = engine.with_secrets(f"{cwl}#{app}", str(inputs), files)
        copy, job_copy = Path(wf.partition("#")[0]), Path(job)
        for text in (copy.read_text(), job_copy.read_text()):
            assert not [name for name, value in values.items() if value in text]
        tool = next(p for p in json.loads(copy.read_text())["$graph"] if p["class"] == "CommandLineTool")
        env = {d["envName"]: d["envValue"] for r in tool["requirements"] if r.get("class") == "EnvVarRequirement" for d in r["envDef"]}  # fmt: skip
        assert env["AWS_SECRET_ACCESS_KEY_FILE"] == "$(inputs.eopack_secret_aws_secret_access_key.path)"
        assert ("DASK_GATEWAY_PASSWORD_FILE" in env) == (app == "ndvi"), app
        wanted = {secret_files.input_id(n) for n in values if app == "ndvi" or n != "DASK_GATEWAY_PASSWORD"}
        assert {k: v["path"] for k, v in json.loads(job_copy.read_text()).items()} == {
            k: str(files[n]) for n in values if (k := secret_files.input_id(n)) in wanted
        }
        workflows[app] = wf
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "cwltool"), "--validate", "--quiet", workflows["ndvi"]],
        capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_a_wes_stack_hands_its_secrets_to_the_tools_by_file_and_leaks_nothing(
    tmp_path: Path, canaries: Canaries, s3_object: tuple[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The site's secrets are the stack's (`eopack wes up` with them set): the workers hold them as
    0600 files, the engine shim stages them to each tool (inside its container too). The client has
    none; no file of the run or the stack (but the secret files) and no command line shows one."""
    modes = ["no-container"] + (
        ["container"] if docker.daemon_answers() and docker.image_exists(IMAGE) else []
    )
    for name, value in {**canaries.env, "EOPACK_ALLOW_PRIVATE_URLS": "1"}.items():
        monkeypatch.setenv(name, value)
    state = tmp_path / "wes-state"
    state.mkdir(mode=0o700)
    with PsWatch() as ps:
        service = wes.up(state, port=_proc.free_port(), workers=1)
        try:
            for name in canaries.env:
                monkeypatch.delenv(name)
            client_env = {
                **os.environ,
                "WES_USER": service.user,
                "WES_PASSWORD": service.password_file.read_text().strip(),
                "TMPDIR": str(tmp_path),
            }
            for mode in modes:
                folder = tmp_path / mode
                folder.mkdir()
                cwl = _package(folder, canaries.s3_url)
                job = folder / "job.yml"
                job.write_text("workers: 1\nmemory: 1G\n")
                flags = ["--no-container"] if mode == "no-container" else []
                proc = subprocess.run(
                    [sys.executable, "-m", "eopack", "run", str(cwl), str(job), "--runner", "wes",
                     "--wes-url", service.url, "--outdir", str(folder / "run"),
                     "--dask-gateway-url", "http://127.0.0.1:9", *flags],
                    capture_output=True, text=True, env=client_env, check=False, timeout=600,
                )  # fmt: skip
                assert proc.returncode == 0, f"{mode}: {proc.stderr[-3000:]}"
                _assert_received(folder, canaries, s3_object[1], by_file=True)
                assert canaries.leaks_in(proc.stdout + proc.stderr) == [], mode
        finally:
            wes.down(state)
    held = {state / name.lower() for name in SECRET_ENV}  # the stack's own 0600 secret files
    for value in canaries.values.values():
        assert [p for p in _leaks(value, tmp_path) if Path(p) not in held] == []
    assert len(ps.seen) > 3 and not any(canaries.leaks_in(snapshot) for snapshot in ps.seen)
