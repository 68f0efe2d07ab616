"""``eopack wrap APP``: the package wrapped with the stage-in/stage-out pair, as a platform runs it."""

from __future__ import annotations

from pathlib import Path

import click

from ..console import notice
from ..package import find_package
from ..staging import wrap_package

__all__ = ["wrap_cmd"]


@click.command("wrap")
@click.argument("app")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the wrapped CWL (default runs/wrapped/<app>-staged.cwl); its Workflow id is the file's stem.",
)
@click.option(
    "--stage-in", "stage_in", default="stage-in", show_default=True, help="Stage-in package (name or .cwl)."
)
@click.option(
    "--stage-out",
    "stage_out",
    default="stage-out",
    show_default=True,
    help="Stage-out package (name or .cwl).",
)
def wrap_cmd(app: str, output: Path | None, stage_in: str, stage_out: str) -> None:
    """Wrap APP with eoap-cwlwrap: Directory/File inputs become URIs staged in, the Directory output
    is staged out to S3 and returned as a catalog URL. Run the result with `eopack run FILE JOB`."""
    pkg = find_package(app)
    target = output or Path("runs") / "wrapped" / f"{pkg.name}-staged.cwl"
    written = wrap_package(pkg, target, find_package(stage_in), find_package(stage_out))
    notice(f"{pkg.name} wrapped with {stage_in} and {stage_out}; Workflow id {written.stem}")
    click.echo(str(written))
