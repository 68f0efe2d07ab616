"""``eopack report RUN_DIR``: (re)write a run's report.html and RO-Crate; ``eopack run`` calls the same."""

from __future__ import annotations

import time
from pathlib import Path

import click

from ..console import notice
from ..provenance import write_crate
from ..report import write_report
from ..runinfo import read_run

__all__ = ["report_cmd", "write_record"]


def write_record(run_dir: Path) -> Path:
    """Write ``report.html`` and ``ro-crate-metadata.json`` into ``run_dir``; the report's path.

    A failed run leaves nothing beside ``.eopack/`` that could look like a result: its report goes
    into ``.eopack/report.html`` with its logs, and there is no crate of outputs it did not make.
    """
    info = read_run(run_dir)
    if not info.succeeded:
        return write_report(info, run_dir / ".eopack" / "report.html")
    report = write_report(info)
    write_crate(info)
    return report


def record_after_run(run_dir: Path) -> Path | None:
    """``write_record`` at the end of ``eopack run``: a failure to report never fails the run."""
    started = time.perf_counter()
    try:
        report = write_record(run_dir)
    except Exception as exc:
        notice(f"could not write the run's report: {exc}")
        return None
    also = "ro-crate-metadata.json, .eopack/usage.json" if report.parent == run_dir else ".eopack/usage.json"
    notice(f"report: {report} (and {also}) in {time.perf_counter() - started:.1f} s")
    return report


@click.command("report")
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
def report_cmd(run_dir: Path) -> None:
    """Write RUN_DIR/report.html (one offline page) and its Workflow Run RO-Crate; print the page's path."""
    if not (run_dir / ".eopack").is_dir():
        raise click.BadParameter(
            f"{run_dir} is not a run directory (no .eopack/ in it); give the folder `eopack run` printed",
            param_hint="'RUN_DIR'",
        )
    try:
        report = write_record(run_dir)
    except FileNotFoundError as exc:
        raise click.BadParameter(str(exc), param_hint="'RUN_DIR'") from exc
    click.echo(str(report))
