"""Containers and releases (issue 8): every package runs in its image, and releases pin digests.

Unmarked tests check the Dockerfiles, CA selection and release rules without a daemon. Tests marked
``docker`` build every image once per session (starting dockerd and making the debootstrap base image
when needed) and run every package three ways — ``--no-container``, ``eopack run`` in its container
and plain ``cwltool`` with the package as written — then compare pixels (exactly) and STAC (apart
from timestamps). The release test pushes to a local registry on 127.0.0.1:5000 and runs the packed,
digest-pinned file after removing the local copy of that reference, so the image is really pulled.

How a container reaches the tests' HTTP server: cwltool gives a tool with NetworkAccess Docker's
default bridge network, where the host's 127.0.0.1 is unreachable. The server therefore listens on
the bridge's gateway address (a host interface, reachable from host and containers alike) for the
comparison runs, and a separate test checks that `eopack run` with a 127.0.0.1 URL works too (the
runner then passes cwltool `--custom-net host`).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from jobs import job_for

from eopack import images, release
from eopack.errors import EopackError, PackageInvalidError
from eopack.job import loopback_urls
from eopack.package import Package, find_package, list_packages, load_yaml, staging_role
from eopack.services import docker, registry

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
APPS = [p.name for p in list_packages(ROOT)]
# Application packages run in their container; the staging pair runs wrapped (tests/test_staging.py).
RUN_APPS = [p.name for p in list_packages(ROOT) if staging_role(p.doc) is None]
TIMESTAMP_KEYS = {"created", "updated"}
STAGED = re.compile(r"^/\S*?/stg[0-9a-f-]{36}/")
SESSION_START = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
RASTERS = {".tif", ".tiff", ".png", ".jpg", ".jpeg"}


# ------------------------------------------------------------------ without a daemon


def _strip_header(path: Path) -> list[str]:
    """A Dockerfile without its comments and the one line that names the app."""
    return [
        line
        for line in path.read_text().splitlines()
        if line.strip() and not line.startswith("#") and not line.startswith("ARG APP=")
    ]


@pytest.mark.parametrize("app", APPS)
def test_dockerfile_follows_the_template(app: str) -> None:
    dockerfile = ROOT / "containers" / app / "Dockerfile"
    text = dockerfile.read_text()
    assert f"ARG APP={app}\n" in text
    assert _strip_header(dockerfile) == _strip_header(ROOT / "containers/convert-url/Dockerfile")
    assert not any("--mount" in line for line in _strip_header(dockerfile)), "legacy builder: no RUN --mount"
    final = text[text.rindex("\nFROM ") :]
    assert final.startswith("\nFROM ${BASE}\n") and "ARG BASE=debian:trixie-slim" in text
    assert "ca-certificates/" not in final and "update-ca-certificates" not in final
    assert "COPY --from=builder /opt/venv /opt/venv" in final and final.count("COPY") == 1
    assert "\nUSER 1000\n" in final
    assert final.rstrip().endswith("RUN ${APP} --help >/dev/null")
    for label in ("source", "version", "revision"):
        assert f"org.opencontainers.image.{label}=" in final


@pytest.mark.parametrize("app", APPS)
def test_image_tag_is_the_dockerpull(app: str) -> None:
    pkg = find_package(app, ROOT)
    spec = images.image_spec(pkg, ROOT)
    assert spec.tag == f"eopack/{app}:{pkg.version}"
    assert set(pkg.images()) == {spec.tag}


def test_a_dockerpull_that_differs_from_the_tag_is_refused(tmp_path: Path) -> None:
    src = ROOT / "app-packages/convert-url/convert-url.cwl"
    cwl = tmp_path / "app-packages/convert-url/convert-url.cwl"
    cwl.parent.mkdir(parents=True)
    cwl.write_text(src.read_text().replace("eopack/convert-url:1.0.0", "eopack/convert-url:latest"))
    with pytest.raises(PackageInvalidError) as exc:
        images.image_spec(Package("convert-url", cwl), tmp_path)
    assert "eopack/convert-url:latest" in str(exc.value) and "Dockerfile is missing" in str(exc.value)


def test_extra_cas_leave_out_debian_ones(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    debian = sorted(images.DEBIAN_CA_DIR.rglob("*.crt"))
    if len(debian) < 2:
        pytest.skip("Debian's ca-certificates is not installed here")
    local = tmp_path / "local"
    local.mkdir()
    shutil.copy(debian[0], local / "mozilla-copy.crt")
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(debian[1].read_bytes() + EXTRA_PEM.encode())
    monkeypatch.setattr(images, "LOCAL_CA_DIRS", (local,))
    monkeypatch.setattr(images, "SYSTEM_CERTS", tmp_path / "none")
    monkeypatch.setattr(images, "_pip_conf_cert", lambda: [])
    for name in images.BUNDLE_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PIP_CERT", str(bundle))
    extra = images.extra_ca_certificates()
    assert len(extra) == 1
    written = images.collect_ca_certificates(tmp_path)
    assert [p.name for p in written] == [f"host-{next(iter(extra))[:16]}.crt"]
    assert images._pem_blocks(written[0].read_bytes()) == list(extra.values())


def test_loopback_urls_are_found() -> None:
    job = {"url": "http://127.0.0.1:8765/a.png", "b": "https://example.org/x", "c": "http://localhost/"}
    assert loopback_urls(job) == ["http://127.0.0.1:8765/a.png", "http://localhost/"]
    assert loopback_urls({"url": "http://172.17.0.1:1/a.png", "n": 3}) == []


def test_pin_images_rewrites_map_and_list_forms() -> None:
    doc: dict[str, Any] = {
        "$graph": [
            {"requirements": {"DockerRequirement": {"dockerPull": "eopack/a:1"}}},
            {"hints": [{"class": "DockerRequirement", "dockerPull": "eopack/a:1"}]},
        ]
    }
    assert release.pin_images(doc, {"eopack/a:1": "r:5000/eopack/a@sha256:" + "0" * 64}) == 2
    assert doc["$graph"][1]["hints"][0]["dockerPull"].endswith("@sha256:" + "0" * 64)


def test_an_image_without_registry_digest_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(docker, "image_info", lambda ref, timeout=10.0: {"Id": "sha256:1", "RepoDigests": []})
    with pytest.raises(release.ReleaseRefusedError, match="no registry digest"):
        release.existing_digest("eopack/convert-url:1.0.0")
    monkeypatch.setattr(docker, "image_info", lambda ref, timeout=10.0: None)
    with pytest.raises(release.ReleaseRefusedError, match="does not exist locally"):
        release.existing_digest("eopack/convert-url:1.0.0")


# A throwaway self-signed CA (not trusted anywhere), for the CA selection test.
EXTRA_PEM = """-----BEGIN CERTIFICATE-----
MIIBfTCCASOgAwIBAgIUSaxPw8/zTUbNJXlgF5gqLQrXMcIwCgYIKoZIzj0EAwIw
FDESMBAGA1UEAwwJdGVzdC1jYS0xMB4XDTI2MDEwMTAwMDAwMFoXDTM2MDEwMTAw
MDAwMFowFDESMBAGA1UEAwwJdGVzdC1jYS0xMFkwEwYHKoZIzj0CAQYIKoZIzj0D
AQcDQgAEb3VtYWtlLXRlc3QtY2Etb25seS1mb3ItZW9wYWNrLXRlc3RzLTAxMjM0
NTY3ODlhYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ej2jUzBRMB0GA1UdDgQWBBQA
AQIDBAUGBwgJCgsMDQ4PEBESExQwHwYDVR0jBBgwFoAUAAECAwQFBgcICQoLDA0O
DxAREhMUMA8GA1UdEwEB/wQFMAMBAf8wCgYIKoZIzj0EAwIDSAAwRQIhAO9wYWNr
LXRlc3QtY2EtMDEyMzQ1Njc4OWFiY2RlZgIgZW9wYWNrLXRlc3QtY2EtMDEyMzQ1
Njc4OWFiY2RlZg==
-----END CERTIFICATE-----
"""


# ------------------------------------------------------------------ with a daemon


def _env() -> dict[str, str]:
    return {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "EOPACK_ALLOW_PRIVATE_URLS": "1",  # the test servers are on loopback/bridge addresses
    }


def _eopack_run(app: str, job: Path, outdir: Path, *extra: str) -> Path:
    proc = subprocess.run(
        [str(BIN / "eopack"), "run", app, str(job), "--outdir", str(outdir), "-q", *extra],
        capture_output=True,
        text=True,
        env=_env(),
        cwd=ROOT,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return Path(proc.stdout.strip().splitlines()[-1]).parent


def _cwltool(cwl: str, job: Path, outdir: Path, *extra: str) -> Path:
    """Plain cwltool, as a user would run it; returns the Directory output."""
    proc = subprocess.run(
        [
            str(BIN / "cwltool"),
            "--disable-color",
            "--outdir",
            str(outdir),
            # cwltool gives tools a clean environment; the README documents this pass-through.
            "--preserve-environment",
            "EOPACK_ALLOW_PRIVATE_URLS",
            *extra,
            cwl,
            str(job),
        ],
        capture_output=True,
        text=True,
        env=_env(),
        cwd=ROOT,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "docker" in proc.stderr and "--no-container" not in proc.stderr
    outputs = json.loads(proc.stdout)
    (value,) = [v for v in outputs.values() if isinstance(v, dict) and v.get("class") == "Directory"]
    return Path(value["path"])


def _is_run_time(value: str) -> bool:
    """An ISO timestamp of this test session (a processing time, e.g. convert-url's item datetime)."""
    try:
        when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return when.tzinfo is not None and SESSION_START <= when <= dt.datetime.now(dt.UTC) + dt.timedelta(
        minutes=1
    )


def _normalise(value: Any) -> Any:
    """STAC without timestamps: created/updated, and any value that is the time of this run."""
    if isinstance(value, dict):
        return {k: _normalise(v) for k, v in value.items() if k not in TIMESTAMP_KEYS}
    if isinstance(value, list):
        return [_normalise(v) for v in value]
    if isinstance(value, str) and _is_run_time(value):
        return "<run time>"
    if isinstance(value, str):
        # cwltool stages inputs at a fresh path per run (/tmp/x/stg<uuid>/ or /var/lib/cwl/stg<uuid>/).
        return STAGED.sub("<staged>/", value)
    return value


def assert_same_results(expected: Path, actual: Path) -> int:
    """Same files, same pixels (exactly), same STAC apart from timestamps; returns rasters compared."""
    import numpy as np
    import rasterio

    def files(d: Path) -> set[str]:
        return {str(p.relative_to(d)) for p in d.rglob("*") if p.is_file()}

    assert files(expected) == files(actual)
    rasters = 0
    for rel in sorted(files(expected)):
        a, b = expected / rel, actual / rel
        if a.suffix.lower() in RASTERS:
            with rasterio.open(a) as ra, rasterio.open(b) as rb:
                assert (ra.crs, ra.transform, ra.dtypes) == (rb.crs, rb.transform, rb.dtypes), rel
                pa, pb = ra.read(), rb.read()
            assert pa.shape == pb.shape and np.array_equal(pa, pb, equal_nan=pa.dtype.kind == "f"), rel
            rasters += 1
        elif a.suffix == ".json":
            assert _normalise(json.loads(a.read_text())) == _normalise(json.loads(b.read_text())), rel
    for store in sorted(expected.rglob("*.zarr")):  # GeoZarr output: compare the decoded arrays
        rasters += _same_zarr(store, actual / store.relative_to(expected))
    return rasters


def _same_zarr(a: Path, b: Path) -> int:
    import numpy as np
    import zarr

    ga, gb = zarr.open_group(str(a), mode="r"), zarr.open_group(str(b), mode="r")
    arrays_a = {name: arr for name, arr in ga.members(max_depth=None) if isinstance(arr, zarr.Array)}
    arrays_b = {name: arr for name, arr in gb.members(max_depth=None) if isinstance(arr, zarr.Array)}
    assert sorted(arrays_a) == sorted(arrays_b), a.name
    for name, arr in arrays_a.items():
        va, vb = arr[...], arrays_b[name][...]
        assert np.array_equal(va, vb, equal_nan=va.dtype.kind == "f"), f"{a.name}/{name}"
    return len(arrays_a)


@pytest.mark.docker
def test_images_are_small_non_root_and_carry_no_host_ca(built_images: dict[str, images.BuildResult]) -> None:
    extra = images.extra_ca_certificates()
    for tag, result in built_images.items():
        info = docker.image_info(tag)
        assert info is not None
        config: Any = info["Config"]
        assert config["User"] == "1000"
        labels = config["Labels"]
        assert labels["org.opencontainers.image.version"] == tag.rsplit(":", 1)[1]
        assert labels["org.opencontainers.image.revision"] not in ("", "unknown")
        assert labels["org.opencontainers.image.source"].startswith("https://")
        # openeo-graph carries geopandas/pyarrow/scipy for openeo-processes-dask (about 1.05 GB)
        assert result.size_bytes < 1_250_000_000, result.describe()
        # Every certificate the image could trust, and anything under the CA drop-in folder.
        script = (
            "cat /etc/ssl/certs/ca-certificates.crt; "
            "find /usr/local/share/ca-certificates -type f -exec cat {} +; "
            "python3 -c 'import certifi; print(open(certifi.where()).read())' 2>/dev/null; true"
        )
        proc = subprocess.run(
            ["docker", "run", "--rm", "--network", "none", "--entrypoint", "sh", tag, "-c", script],
            capture_output=True,
            check=True,
        )
        inside = {images.hashlib.sha256(der).hexdigest() for der in images._pem_blocks(proc.stdout)}
        assert len(inside) > 50, "Debian's public CAs should be there"
        assert not inside & set(extra), f"{tag} contains a CA certificate of the build host"


@pytest.mark.docker
@pytest.mark.parametrize("app", RUN_APPS)
def test_package_runs_in_its_container(
    app: str, built_images: object, bridge_url: str, tmp_path: Path
) -> None:
    pkg = find_package(app, ROOT)
    job = job_for(find_package(app, ROOT), tmp_path, bridge_url)
    reference = _eopack_run(app, job, tmp_path / "host", "--no-container")
    in_container = _eopack_run(app, job, tmp_path / "container")
    meta = tmp_path / "container" / ".eopack"
    assert "--no-container" not in (meta / "command.txt").read_text()
    log = (meta / "cwltool.log").read_text()
    tag = f"eopack/{app}:{pkg.version}"
    assert "docker \\\n    run" in log and f"    {tag} \\" in log
    assert f"--env=DASK_GATEWAY_IMAGE={tag}" in log  # the lowered Dask requirement names the image
    plain = _cwltool(f"app-packages/{app}/{app}.cwl#{app}", job, tmp_path / "plain")
    assert assert_same_results(reference, in_container) >= 1
    assert_same_results(reference, plain)


@pytest.mark.docker
def test_a_loopback_url_works_in_a_container(built_images: object, image_server: str, tmp_path: Path) -> None:
    job = tmp_path / "job.yml"
    job.write_text(f"fn: resize\nurl: {image_server}/sample-rgb.png\nsize: 50%\n")
    out = _eopack_run("convert-url", job, tmp_path / "run")
    command = (tmp_path / "run" / ".eopack" / "command.txt").read_text()
    assert "--custom-net host" in command and "--no-container" not in command
    assert (out / "sample-rgb" / "sample-rgb.png").exists()


def _throwaway_repo(dest: Path) -> Path:
    """The working tree's tracked and new files, committed in a fresh repository (release needs clean)."""
    listed = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-co", "--exclude-standard", "-z"],
        capture_output=True,
        check=True,
    ).stdout.decode()
    for rel in filter(None, listed.split("\0")):
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    git = ["git", "-C", str(dest), "-c", "user.name=eopack-test", "-c", "user.email=test@eopack.invalid"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "release test"]):
        subprocess.run([*git, *args], capture_output=True, check=True)
    return dest


def _release(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "eopack"), "release", *args],
        capture_output=True,
        text=True,
        env={**_env(), "EOPACK_HOME": str(repo)},
        cwd=repo,
        check=False,
    )


@pytest.mark.docker
def test_release_pins_digests_from_a_local_registry(
    built_images: object, bridge_url: str, tmp_path: Path
) -> None:
    try:
        reg = registry.up(ROOT)
    except EopackError as exc:
        pytest.fail(str(exc))
    repo = _throwaway_repo(tmp_path / "repo")
    proc = _release(repo, "convert-url", "--registry", reg.address)
    assert proc.returncode == 0, proc.stderr
    packed = repo / "dist" / "convert-url.1.0.0.cwl"
    assert proc.stdout.strip() == str(packed)
    doc = load_yaml(packed)
    assert doc["s:softwareVersion"] == "1.0.0"
    assert [p["id"] for p in doc["$graph"]] == ["convert-url", "convert"]
    pulls = [
        str(r["dockerPull"])
        for r in Package("convert-url", packed).doc["$graph"][1]["requirements"].values()
        if isinstance(r, dict) and "dockerPull" in r
    ]
    assert len(pulls) == 1 and pulls[0].startswith(f"{reg.address}/eopack/convert-url@sha256:")
    assert "@sha256:" in packed.read_text() and ":1.0.0\n" not in packed.read_text().split("dockerPull")[1]
    validate = subprocess.run(
        [str(BIN / "cwltool"), "--validate", str(packed)], capture_output=True, check=False
    )
    assert validate.returncode == 0, validate.stderr

    # Forget the local name of the pinned reference so cwltool must pull it from the registry.
    subprocess.run(
        ["docker", "rmi", f"{reg.address}/eopack/convert-url:1.0.0"], capture_output=True, check=False
    )
    assert not docker.image_exists(pulls[0])
    job = job_for(find_package("convert-url", ROOT), tmp_path, bridge_url)
    out = _cwltool(f"{packed}#convert-url", job, tmp_path / "packed-run")
    reference = _eopack_run("convert-url", job, tmp_path / "host", "--no-container")
    assert assert_same_results(reference, out) == 1
    assert docker.image_exists(pulls[0])

    # Refusals: one line each, exit 1, nothing written.
    again = _release(repo, "convert-url", "--registry", reg.address)
    assert again.returncode == 1 and "already exists" in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1
    packed.unlink()
    subprocess.run(["git", "-C", str(repo), "tag", "convert-url-v1.0.0"], check=True)
    tagged = _release(repo, "convert-url", "--registry", reg.address)
    assert tagged.returncode == 1 and "git tag convert-url-v1.0.0 exists" in tagged.stderr
    (repo / "README.md").write_text("changed\n")
    dirty = _release(repo, "convert-url")
    assert dirty.returncode == 1 and "dirty" in dirty.stderr
    assert not packed.exists()
