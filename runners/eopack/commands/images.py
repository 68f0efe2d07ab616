"""``eopack images build|list``: parse, call, print."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import click
from rich.table import Table

from ..clients import docker
from ..console import err, out
from ..images import build_images, export_images
from ..package import Package, find_package, list_packages

__all__ = ["images_cli"]


def _packages(apps: Sequence[str]) -> list[Package]:
    return [find_package(a) for a in apps] if apps else list_packages()


@click.group("images")
def images_cli() -> None:
    """Build, list and export the packages' container images (eopack/<app>:<version>)."""


@images_cli.command("build")
@click.argument("apps", nargs=-1)
@click.option("--no-cache", is_flag=True, help="Rebuild every layer.")
def build_cmd(apps: tuple[str, ...], no_cache: bool) -> None:
    """Build the image of each APP (all apps when none given); starts dockerd when needed."""
    results = build_images(_packages(apps), no_cache=no_cache)
    table = Table("image", "size", "build time", "id")
    for r in results:
        table.add_row(r.tag, f"{r.size_bytes / 1e6:.0f} MB", f"{r.seconds:.0f} s", r.image_id[7:19])
    err.print(table)
    for r in results:
        click.echo(r.tag)


@images_cli.command("list")
def list_cmd() -> None:
    """Each package's image tag, whether it is built, its size and registry digests."""
    answers = docker.daemon_answers()
    table = Table("app", "image", "built", "size", "registry digests")
    for pkg in list_packages():
        tag = f"eopack/{pkg.name}:{pkg.version}"
        info = docker.image_info(tag) if answers else None
        if info is None:
            table.add_row(pkg.name, tag, "no" if answers else "? (no daemon)", "-", "-")
            continue
        digests = info.get("RepoDigests") or []
        table.add_row(
            pkg.name,
            tag,
            "yes",
            f"{int(str(info.get('Size', 0))) / 1e6:.0f} MB",
            "\n".join(str(d) for d in digests) if isinstance(digests, list) and digests else "-",
        )
    out.print(table)


@images_cli.command("export")
@click.argument("apps", nargs=-1)
@click.option(
    "--cache",
    type=click.Path(file_okay=False, path_type=Path),
    help="Archive folder, on storage every compute node sees (default $EOPACK_IMAGE_CACHE or runs/images).",
)
def export_cmd(apps: tuple[str, ...], cache: Path | None) -> None:
    """Write each APP's image from Docker to an OCI archive, for `eopack run --engine podman`.

    Compute nodes then load the image from the archive: no registry, no network. An archive that
    already holds the image's current id is kept. Prints each archive's path.
    """
    results = export_images(_packages(apps), cache.resolve() if cache else None)
    table = Table("image", "archive", "size", "time")
    for r in results:
        table.add_row(
            r.tag,
            r.archive.name,
            f"{r.size_bytes / 1e6:.0f} MB",
            f"{r.seconds:.0f} s" if r.fresh else "up to date",
        )
    err.print(table)
    for r in results:
        click.echo(str(r.archive))
