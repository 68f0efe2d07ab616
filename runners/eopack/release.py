"""``eopack release [APP...]``: one packed CWL per package with every image pinned by registry digest.

Why pin by digest: a tag can be re-pushed; ``image@sha256:<manifest digest>`` cannot, so ZOO-Project,
Calrissian and Toil users run exactly the image that was tested. Only a registry produces a manifest
digest (the local image id is not pullable), so a release needs the image pushed: ``--registry
HOST[:PORT][/NAMESPACE]`` pushes ``eopack/<app>:<version>`` there and takes the digest from the push;
without it the digest the image already carries from an earlier push or pull is used.

A release is refused, with one line saying why, before anything is written when: the git working
tree is dirty (the file must be reproducible from a commit), ``dist/<app>.<version>.cwl`` already
exists or the tag ``<app>-v<version>`` exists (a version is released once), or an image has no
registry digest. The packed file is written next to its final name and checked with
``cwltool --validate`` before it takes that name.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .console import Progress, notice
from .errors import EopackError
from .images import image_spec
from .package import Package, cwltool_validate, dump_yaml, repo_root
from .services import docker

__all__ = ["ReleaseRefusedError", "Released", "pin_images", "release_packages"]

_DIGEST = re.compile(r"digest: (sha256:[0-9a-f]{64})")


class ReleaseRefusedError(EopackError):
    """A release rule is not met; ``what`` names the object, ``fix`` the way out."""

    def __init__(self, what: str, reason: str, fix: str) -> None:
        self.what, self.reason, self.fix = what, reason, fix
        super().__init__(f"cannot release {what}: {reason}. {fix}")


@dataclass(frozen=True)
class Released:
    app: str
    version: str
    path: Path
    images: Mapping[str, str]  # dockerPull in the package -> pinned reference


def _git(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=False)


def check_clean(root: Path) -> None:
    """Refuse outside a git work tree or with uncommitted changes (untracked files count)."""
    inside = _git(root, "rev-parse", "--is-inside-work-tree")
    if inside.returncode != 0 or inside.stdout.strip() != "true":
        raise ReleaseRefusedError(str(root), "it is not a git working tree", "Release from a git clone.")
    changes = _git(root, "status", "--porcelain").stdout.splitlines()
    if changes:
        raise ReleaseRefusedError(
            str(root),
            f"the git working tree is dirty ({len(changes)} change(s), e.g. {changes[0].strip()!r})",
            "Commit or stash them: a release must be reproducible from a commit.",
        )


def check_unreleased(pkg: Package, root: Path, dist: Path) -> Path:
    """The output path, after checking that neither the file nor the git tag of this version exists."""
    out = dist / f"{pkg.name}.{pkg.version}.cwl"
    what = f"{pkg.name} {pkg.version}"
    if out.exists():
        raise ReleaseRefusedError(
            what,
            f"{out} already exists",
            "Bump s:softwareVersion (and the tool's version) for a new release.",
        )
    tag = f"{pkg.name}-v{pkg.version}"
    if _git(root, "rev-parse", "-q", "--verify", f"refs/tags/{tag}").returncode == 0:
        raise ReleaseRefusedError(
            what,
            f"git tag {tag} exists (this version is released)",
            "Bump s:softwareVersion for a new release.",
        )
    return out


def push(tag: str, registry: str) -> str:
    """Tag ``tag`` as ``registry/<repo>:<version>``, push it, return ``registry/<repo>@sha256:...``."""
    remote = f"{registry}/{tag}"
    repo = remote.rsplit(":", 1)[0]
    steps = [["docker", "tag", tag, remote], ["docker", "push", remote]]
    output = ""
    for cmd in steps:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            last = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
            raise ReleaseRefusedError(
                tag,
                f"`{' '.join(cmd)}` failed: {last[0]}",
                f"Check that {registry} answers and accepts pushes (make registry-up starts a local one).",
            )
        output = proc.stdout
    match = _DIGEST.search(output)
    if not match:
        raise ReleaseRefusedError(
            tag, f"`docker push {remote}` printed no digest", "Push it by hand and retry."
        )
    return f"{repo}@{match[1]}"


def existing_digest(tag: str) -> str:
    """The one registry digest the local image carries (from an earlier push or pull)."""
    info = docker.image_info(tag)
    if info is None:
        raise ReleaseRefusedError(
            tag, "the image does not exist locally", "Build it with `eopack images build` and push it."
        )
    digests = sorted({str(d) for d in info.get("RepoDigests") or []})  # type: ignore[attr-defined]
    if not digests:
        raise ReleaseRefusedError(
            tag,
            "the image has no registry digest (it was never pushed)",
            "Push it with `eopack release --registry HOST:PORT`.",
        )
    if len(digests) > 1:
        raise ReleaseRefusedError(
            tag,
            f"the image is in several registries ({', '.join(digests)})",
            "Choose one with --registry HOST:PORT.",
        )
    return digests[0]


def pin_images(doc: dict[str, Any], pins: Mapping[str, str]) -> int:
    """Rewrite every ``dockerPull`` of a packed document (map or list form); return how many."""
    count = 0
    for process in doc.get("$graph", [doc]):
        for section in ("requirements", "hints"):
            entries = process.get(section)
            items: Iterable[tuple[str, Any]] = (
                entries.items()
                if isinstance(entries, dict)
                else ((e.get("class", ""), e) for e in entries or [])
            )
            for name, req in items:
                if str(name).endswith("DockerRequirement") and isinstance(req, dict) and "dockerPull" in req:
                    req["dockerPull"] = pins[str(req["dockerPull"])]
                    count += 1
    return count


def pack(pkg: Package) -> dict[str, Any]:
    """All of the package in one document, ids and s: metadata kept (cwltool --pack renames to #main)."""
    from cwl_utils.pack import pack as cwl_pack

    return dict(cwl_pack(f"{pkg.path}#{pkg.name}"))


def release_packages(
    packages: Iterable[Package],
    root: Path | None = None,
    registry: str | None = None,
    dist: Path | None = None,
    progress: Progress = notice,
) -> list[Released]:
    """Check every rule for every package first, then push/resolve digests, pack, validate, write."""
    root = root or repo_root()
    dist = dist or root / "dist"
    pkgs = list(packages)
    check_clean(root)
    outs = {pkg.name: check_unreleased(pkg, root, dist) for pkg in pkgs}
    specs = {pkg.name: image_spec(pkg, root) for pkg in pkgs}
    registry = registry.removeprefix("http://").removeprefix("https://").rstrip("/") if registry else None
    docker.ensure_daemon(root)
    pins: dict[str, dict[str, str]] = {}
    for pkg in pkgs:
        tag = specs[pkg.name].tag
        if registry:
            progress(f"pushing {tag} to {registry}")
            pins[pkg.name] = {tag: push(tag, registry)}
        else:
            pins[pkg.name] = {tag: existing_digest(tag)}
    released = []
    dist.mkdir(parents=True, exist_ok=True)
    for pkg in pkgs:
        doc = pack(pkg)
        if pin_images(doc, pins[pkg.name]) == 0:
            raise ReleaseRefusedError(
                pkg.name, "the packed document has no dockerPull", "Add DockerRequirement."
            )
        out = outs[pkg.name]
        tmp = out.with_name(f".{out.name}.tmp.cwl")
        dump_yaml(doc, tmp)
        error = cwltool_validate(tmp)
        if error:
            tmp.unlink()
            raise ReleaseRefusedError(
                f"{pkg.name} {pkg.version}", f"the packed file is invalid: {error}", "Report this as a bug."
            )
        tmp.rename(out)
        progress(f"released {pkg.name} {pkg.version}: {out} ({', '.join(pins[pkg.name].values())})")
        released.append(Released(pkg.name, pkg.version, out, pins[pkg.name]))
    return released
