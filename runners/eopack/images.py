"""Build the packages' container images (for ``eopack images build|list``, defined in eopack.commands).

Every app has ``containers/<app>/Dockerfile``, built from the repository root with the legacy
builder (``docker build --network host``) and tagged ``eopack/<app>:<s:softwareVersion>``, which must
be the ``dockerPull`` of every tool of the package: the tag a run asks for is the one we build.

Two things make the same Dockerfiles build here and on GitHub (docs/adr/0003-container-builds.md):

* ``debian:trixie-slim`` is pulled on GitHub; where no registry is reachable, it is made with
  debootstrap (``scripts/base-image.sh``) before the first build.
* Behind a TLS-intercepting proxy pip needs the proxy's CA. The host's *extra* CA certificates (those
  not shipped by Debian's ca-certificates) are copied to ``containers/ca-certificates/`` (gitignored)
  for the builder stages; the final stage never sees them.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .console import Progress, notice
from .errors import EopackError, PackageInvalidError, ServiceUnavailableError
from .package import Package, repo_root
from .runners.engine import archive_path, image_cache_dir
from .services import docker

__all__ = [
    "BASE_IMAGE",
    "BuildResult",
    "ExportResult",
    "ImageBuildError",
    "ImageSpec",
    "build_image",
    "build_images",
    "collect_ca_certificates",
    "ensure_base_image",
    "export_image",
    "export_images",
    "extra_ca_certificates",
    "image_spec",
    "revision",
]

BASE_IMAGE = "debian:trixie-slim"
CA_DIR = Path("containers") / "ca-certificates"
DEBIAN_CA_DIR = Path("/usr/share/ca-certificates")
# Where hosts keep CA certificates they add, and bundles that tools are pointed at.
LOCAL_CA_DIRS = (Path("/usr/local/share/ca-certificates"),)
SYSTEM_CERTS = Path("/etc/ssl/certs")
BUNDLE_ENV = ("PIP_CERT", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")
_PEM = re.compile(rb"-----BEGIN CERTIFICATE-----\s+(.+?)\s+-----END CERTIFICATE-----", re.S)


class ImageBuildError(EopackError):
    """``docker build`` failed; the message carries the failing step and where the full log is."""

    def __init__(self, app: str, reason: str, log: Path) -> None:
        self.app, self.reason, self.log = app, reason, log
        super().__init__(f"image of {app!r} did not build: {reason}. Full log: {log}")


@dataclass(frozen=True)
class ImageSpec:
    """What to build for one package, derived from its name and version (one name everywhere)."""

    app: str
    version: str
    dockerfile: Path
    source: str

    @property
    def tag(self) -> str:
        return f"eopack/{self.app}:{self.version}"


@dataclass(frozen=True)
class BuildResult:
    tag: str
    image_id: str
    size_bytes: int
    seconds: float
    log: Path

    def describe(self) -> str:
        size = f"{self.size_bytes / 1e6:.0f} MB"
        return f"{self.tag}: {size}, built in {self.seconds:.0f} s ({self.image_id[:19]})"


def image_spec(pkg: Package, root: Path | None = None) -> ImageSpec:
    """The image of ``pkg``; PackageInvalidError when a tool pulls another tag or has no Dockerfile."""
    root = root or repo_root()
    spec = ImageSpec(
        pkg.name,
        pkg.version,
        root / "containers" / pkg.name / "Dockerfile",
        str(pkg.doc.get("s:codeRepository") or "https://github.com/eopack/eopack"),
    )
    problems = [
        f"dockerPull {ref!r} is not {spec.tag!r} (eopack/<app>:<s:softwareVersion>); set it to {spec.tag}"
        for ref in pkg.images()
        if ref != spec.tag
    ]
    if not pkg.images():
        problems.append(f"no DockerRequirement.dockerPull; add dockerPull: {spec.tag}")
    if not spec.dockerfile.is_file():
        problems.append(
            f"{spec.dockerfile.relative_to(root)} is missing; copy containers/convert-url/Dockerfile"
        )
    if problems:
        raise PackageInvalidError(pkg.name, problems)
    return spec


# ------------------------------------------------------------------ CA certificates


def _pem_blocks(data: bytes) -> list[bytes]:
    """DER bytes of every PEM certificate in ``data``."""
    return [base64.b64decode(b"".join(m.group(1).split())) for m in _PEM.finditer(data)]


def _pip_conf_cert() -> list[Path]:
    found = []
    for conf in (Path("/etc/pip.conf"), Path.home() / ".config/pip/pip.conf", Path.home() / ".pip/pip.conf"):
        try:
            text = conf.read_text()
        except OSError:
            continue
        found += [Path(m) for m in re.findall(r"^\s*cert\s*=\s*(\S+)", text, re.M)]
    return found


def extra_ca_certificates() -> dict[str, bytes]:
    """The CA certificates this host trusts beyond Debian's set, as ``{sha256: DER}``.

    Candidates: ``/usr/local/share/ca-certificates/**.crt`` (what ``update-ca-certificates`` adds),
    stand-alone PEM files in ``/etc/ssl/certs`` that are not links into Debian's set, and every
    bundle pip/requests/OpenSSL are pointed at (``PIP_CERT``, ``SSL_CERT_FILE``, ..., pip.conf
    ``cert``). Whatever Debian's ca-certificates already ships is dropped, so only a proxy's or a
    company's own CAs are left.
    """
    debian = {
        hashlib.sha256(der).hexdigest()
        for crt in DEBIAN_CA_DIR.rglob("*.crt")
        for der in _pem_blocks(crt.read_bytes())
    }
    files: list[Path] = [p for d in LOCAL_CA_DIRS if d.is_dir() for p in sorted(d.rglob("*.crt"))]
    if SYSTEM_CERTS.is_dir():
        files += [p for p in sorted(SYSTEM_CERTS.glob("*.pem")) if not p.is_symlink()]
    files += [Path(os.environ[name]) for name in BUNDLE_ENV if os.environ.get(name)]
    files += _pip_conf_cert()
    extra: dict[str, bytes] = {}
    for path in dict.fromkeys(files):
        try:
            data = path.read_bytes()
        except OSError:
            continue
        for der in _pem_blocks(data):
            digest = hashlib.sha256(der).hexdigest()
            if digest not in debian:
                extra.setdefault(digest, der)
    return extra


def collect_ca_certificates(root: Path | None = None) -> list[Path]:
    """Write the host's extra CAs to ``containers/ca-certificates/host-<sha>.crt`` (replacing old ones)."""
    folder = (root or repo_root()) / CA_DIR
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.crt"):
        old.unlink()
    written = []
    for digest, der in sorted(extra_ca_certificates().items()):
        body = base64.encodebytes(der).decode().replace("\n", "")
        lines = [body[i : i + 64] for i in range(0, len(body), 64)]
        path = folder / f"host-{digest[:16]}.crt"
        path.write_text("-----BEGIN CERTIFICATE-----\n" + "\n".join(lines) + "\n-----END CERTIFICATE-----\n")
        written.append(path)
    return written


# ------------------------------------------------------------------ building


def revision(root: Path) -> str:
    """The commit the image is built from (OCI ``revision``), ``-dirty`` when the tree has changes."""
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("-dirty" if dirty else "")


def ensure_base_image(root: Path, progress: Progress) -> None:
    """Make ``debian:trixie-slim`` with debootstrap when it is missing and we can (root + debootstrap).

    Otherwise leave it to ``docker build``, which pulls it where a registry is reachable.
    """
    if docker.image_exists(BASE_IMAGE):
        return
    if os.geteuid() != 0 or shutil.which("debootstrap") is None:
        progress(f"{BASE_IMAGE} is not present; docker build will try to pull it")
        return
    progress(f"{BASE_IMAGE} is not present: building it with debootstrap (scripts/base-image.sh)")
    proc = subprocess.run(["bash", str(root / "scripts" / "base-image.sh")], cwd=root, check=False)
    if proc.returncode != 0:
        raise ServiceUnavailableError(
            SERVICE_BASE,
            "scripts/base-image.sh failed (see its message above)",
            "Fix that, then `make base-image`.",
        )


SERVICE_BASE = f"Base image {BASE_IMAGE}"
_STEP = re.compile(r"^Step (\d+)/(\d+) : (.*)")


def build_image(
    spec: ImageSpec, root: Path, progress: Progress, *, no_cache: bool = False, rev: str | None = None
) -> BuildResult:
    """``docker build`` one image, reporting each Dockerfile step; the full output goes to a log."""
    log = root / "runs" / "images" / f"{spec.app}.build.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    cmd = [
        "docker",
        "build",
        "--network",
        "host",
        "-f",
        str(spec.dockerfile.relative_to(root)),
        "--build-arg",
        f"VERSION={spec.version}",
        "--build-arg",
        f"REVISION={rev or revision(root)}",
        "--build-arg",
        f"SOURCE={spec.source}",
        "-t",
        spec.tag,
        *(["--no-cache"] if no_cache else []),
        ".",
    ]
    # The legacy builder: BuildKit would need buildx here, and the Dockerfiles need neither.
    env = {**os.environ, "DOCKER_BUILDKIT": "0"}
    start = time.monotonic()
    tail: list[str] = []
    with log.open("w") as sink:
        sink.write("$ " + " ".join(cmd) + "\n")
        proc = subprocess.Popen(
            cmd, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            sink.write(line)
            tail = [*tail, line.rstrip()][-6:]
            step = _STEP.match(line)
            if step:
                elapsed = time.monotonic() - start
                progress(f"{spec.tag} [{step[1]}/{step[2]} {elapsed:4.0f}s] {step[3][:90]}")
        code = proc.wait()
    seconds = time.monotonic() - start
    if code != 0:
        last = " | ".join(t for t in tail if t.strip())[-400:]
        raise ImageBuildError(spec.app, f"docker build exited {code}: {last}", log)
    info = docker.image_info(spec.tag) or {}
    return BuildResult(spec.tag, str(info.get("Id", "")), int(str(info.get("Size", 0))), seconds, log)


def build_images(
    packages: Iterable[Package],
    root: Path | None = None,
    progress: Progress = notice,
    *,
    no_cache: bool = False,
) -> list[BuildResult]:
    """Check every package first, then make sure of daemon, CAs and base image, then build in order."""
    root = root or repo_root()
    specs = [image_spec(pkg, root) for pkg in packages]
    docker.ensure_daemon(root)
    cas = collect_ca_certificates(root)
    progress(f"{len(cas)} extra CA certificate(s) of this host for the builder stages ({CA_DIR})")
    ensure_base_image(root, progress)
    rev = revision(root)
    results = []
    for spec in specs:
        progress(f"building {spec.tag} from {spec.dockerfile.relative_to(root)}")
        result = build_image(spec, root, progress, no_cache=no_cache, rev=rev)
        progress(result.describe())
        results.append(result)
    return results


# ------------------------------------------------------------------ CLI


# ------------------------------------------------------------------ the OCI archive cache (--engine podman)


@dataclass(frozen=True)
class ExportResult:
    tag: str
    archive: Path
    size_bytes: int
    seconds: float
    fresh: bool  # False: the archive already held this image id, nothing was written


def export_image(tag: str, cache: Path) -> ExportResult:
    """Write ``tag`` from the Docker daemon to its OCI archive in ``cache`` (skopeo, atomically).

    ``<archive>.id`` records the image id it holds, so an unchanged image is not exported again.
    """
    start = time.monotonic()
    info = docker.image_info(tag)
    if info is None:
        raise ServiceUnavailableError(
            f"Image {tag}", "Docker holds no such image", "Build it first: `make images APPS=<app>`."
        )
    if shutil.which("skopeo") is None:
        raise ServiceUnavailableError(
            "skopeo", "not found on PATH", "Install it (Debian: apt-get install skopeo; `make setup` does)."
        )
    archive = archive_path(tag, cache)
    stamp = archive.with_name(archive.name + ".id")
    image_id = str(info.get("Id", ""))
    if archive.exists() and stamp.exists() and stamp.read_text().strip() == image_id:
        return ExportResult(tag, archive, archive.stat().st_size, time.monotonic() - start, False)
    cache.mkdir(parents=True, exist_ok=True)
    partial = archive.with_name(archive.name + ".partial")
    partial.unlink(missing_ok=True)
    proc = subprocess.run(
        ["skopeo", "copy", "--quiet", f"docker-daemon:{tag}", f"oci-archive:{partial}:{tag}"],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        partial.unlink(missing_ok=True)
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise EopackError(f"exporting {tag} to {archive} failed: {last}")
    partial.replace(archive)
    stamp.write_text(image_id + "\n")
    return ExportResult(tag, archive, archive.stat().st_size, time.monotonic() - start, True)


def export_images(packages: Iterable[Package], cache: Path | None = None) -> list[ExportResult]:
    """The OCI archive of every image of ``packages``, in ``cache`` (default: image_cache_dir())."""
    cache = cache or image_cache_dir()
    tags = list(dict.fromkeys(tag for pkg in packages for tag in pkg.images()))
    if not docker.daemon_answers():
        raise ServiceUnavailableError(
            "Docker",
            "no daemon answers",
            "The images are exported from Docker: start it with `make docker-up`.",
        )
    return [export_image(tag, cache) for tag in tags]
