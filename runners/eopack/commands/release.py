"""``eopack release``: parse, call, print."""

from __future__ import annotations

from pathlib import Path

import click

from ..package import find_package, list_packages
from ..release import release_packages

__all__ = ["release_cmd"]


@click.command("release")
@click.argument("apps", nargs=-1)
@click.option(
    "--registry",
    metavar="HOST[:PORT][/NAMESPACE]",
    help="Push eopack/<app>:<version> there first and pin that digest (e.g. 127.0.0.1:5000, ghcr.io/OWNER).",
)
@click.option(
    "--dist",
    type=click.Path(file_okay=False, path_type=Path),
    help="Output folder (default dist/ in the repository).",
)
def release_cmd(apps: tuple[str, ...], registry: str | None, dist: Path | None) -> None:
    """Write dist/<app>.<version>.cwl for each APP (all when none) with images pinned by digest."""
    packages = [find_package(a) for a in apps] if apps else list_packages()
    for item in release_packages(packages, registry=registry, dist=dist):
        click.echo(str(item.path))
