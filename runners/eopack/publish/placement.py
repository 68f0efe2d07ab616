"""Where asset files go: a local folder served at a URL, or object-storage URLs from a template."""

from __future__ import annotations

import shutil
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import quote

from ..errors import EopackError

TEMPLATE_FIELDS = {"collection", "item", "asset", "key", "path"}


class PublishUsageError(EopackError):
    """Options that cannot work together or a template that cannot work (exit 2, like a usage error)."""

    exit_code = 2

    def __init__(self, message: str) -> None:
        self.reason = message
        super().__init__(message)


# ------------------------------------------------------------------ where assets go


@dataclass(frozen=True)
class Upload:
    """One asset file and the URL it is published at (``dest``: the local copy, when we make one)."""

    source: Path
    url: str
    dest: Path | None = None


class AssetTarget(Protocol):
    """Where asset files are published: decides the URL and, for local targets, copies the file."""

    @property
    def description(self) -> str: ...

    def place(self, collection: str, item: str, key: str, source: Path, rel: str) -> Upload: ...

    def copy(self, upload: Upload) -> bool: ...


@dataclass(frozen=True)
class LocalAssets:
    """A folder served over HTTP at ``base_url`` (our stack's nginx serves ``<state>/published``)."""

    folder: Path
    base_url: str

    @property
    def description(self) -> str:
        return f"{self.folder} (served at {self.base_url})"

    def place(self, collection: str, item: str, key: str, source: Path, rel: str) -> Upload:
        parts = [collection, item, *rel.split("/")]
        dest = self.folder.joinpath(*parts)
        if any(p in ("", ".", "..") for p in parts) or not dest.resolve().is_relative_to(
            self.folder.resolve()
        ):
            raise PublishUsageError(f"asset {key!r} of item {item!r} would be written outside {self.folder}")
        return Upload(
            source,
            self.base_url.rstrip("/") + "/" + "/".join(quote(p) for p in parts),
            self.folder.joinpath(*parts),
        )

    def copy(self, upload: Upload) -> bool:
        """Copy when missing or different (size/mtime); True if copied. Atomic: no half file served.

        A folder asset (a Zarr store) is copied whole, compared by its files' count, sizes and mtimes.
        """
        assert upload.dest is not None
        if upload.source.is_dir():
            return _copy_folder(upload.source, upload.dest)
        src = upload.source.stat()
        if upload.dest.is_file():
            dst = upload.dest.stat()
            if dst.st_size == src.st_size and int(dst.st_mtime) == int(src.st_mtime):
                return False
        upload.dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = upload.dest.with_name(f".{upload.dest.name}.part")
        shutil.copy2(upload.source, tmp)
        tmp.replace(upload.dest)
        return True


def _stamp(folder: Path) -> tuple[int, int, int]:
    files = [p.stat() for p in folder.rglob("*") if p.is_file()]
    return len(files), sum(s.st_size for s in files), max((int(s.st_mtime) for s in files), default=0)


def _copy_folder(source: Path, dest: Path) -> bool:
    if dest.is_dir() and _stamp(dest) == _stamp(source):
        return False
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.part")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(source, tmp)
    if dest.exists():
        shutil.rmtree(dest)
    tmp.replace(dest)
    return True


@dataclass(frozen=True)
class TemplateAssets:
    """Object storage (``s3://bucket/{collection}/{item}/{asset}``): hrefs only; upload is yours.

    Fields: ``{collection}``, ``{item}``, ``{asset}`` (file name), ``{key}`` (asset key),
    ``{path}`` (path relative to the item's folder).
    """

    template: str

    def __post_init__(self) -> None:
        names = {name for _, name, _, _ in string.Formatter().parse(self.template) if name is not None}
        unknown = names - TEMPLATE_FIELDS
        if unknown or not names & {"asset", "key", "path"}:
            raise PublishUsageError(
                f"--assets-url-template {self.template!r}: "
                + (f"unknown field(s) {', '.join(sorted(unknown))}; " if unknown else "")
                + f"use {', '.join('{' + f + '}' for f in sorted(TEMPLATE_FIELDS))} and at least one of "
                "{asset} {key} {path} so assets do not collide"
            )

    @property
    def description(self) -> str:
        return f"hrefs from {self.template} (upload the files yourself)"

    def place(self, collection: str, item: str, key: str, source: Path, rel: str) -> Upload:
        url = self.template.format(collection=collection, item=item, asset=source.name, key=key, path=rel)
        return Upload(source, url)

    def copy(self, upload: Upload) -> bool:
        return False


def asset_rel(source: Path, item_path: Path) -> str:
    """The asset's path below its item's folder (its file name when it lives elsewhere)."""
    try:
        return source.relative_to(item_path.parent.resolve()).as_posix()
    except ValueError:
        return source.name
