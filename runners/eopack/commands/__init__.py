"""The ``eopack`` command: every click command lives in this package (nothing else imports click).

This module holds the top group and the commands of running packages (list, validate, run,
sample-data, new); the others are in ``images``, ``ogc``, ``publish``, ``release`` and ``services``
(one builder for the up/down/status of all seven local services), imported only when used.
Commands parse, call and print; the logic is in the modules they call."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import click

from .. import __version__
from ..console import err, notice, out
from ..errors import EopackError, RunFailedError
from ..job import load_job
from ..package import find_package, list_packages, repo_root, tested_runners, validate_package
from ..runners import REGISTRY, RunOptions, get_runner
from ..runners.engine import ENGINES, UnknownEngineError
from ..sample_data import ensure_for_job
from ..sample_data import generate as generate_sample_data
from ..scaffold import create

__all__ = ["cli", "main"]

# Runners that run the CWL file here with cwltool's container code, so --engine applies to them.
ENGINE_RUNNERS = ("cwltool", "toil", "toil-slurm", "toil-htcondor")


# Commands that live in their own modules, imported only when used: the services, OGC and release
# code pulls in requests, kubernetes schemas and more, which `eopack run` should not pay for.
LAZY_COMMANDS = {
    "describe": ".ogc:describe_cmd",
    "docker": ".services:docker_cli",
    "gateway": ".services:gateway_cli",
    "images": ".images:images_cli",
    "ogc": ".ogc:ogc_cli",
    "publish": ".publish:publish_cmd",
    "registry": ".services:registry_cli",
    "release": ".release:release_cmd",
    "report": ".report:report_cmd",
    "s3": ".services:s3_cli",
    "slurm": ".services:slurm_cli",
    "stac": ".services:stac_cli",
    "wes": ".services:wes_cli",
    "wrap": ".staging:wrap_cmd",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *LAZY_COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in LAZY_COMMANDS:
            module, attr = LAZY_COMMANDS[cmd_name].split(":")
            command: click.Command = getattr(importlib.import_module(module, __package__), attr)
            return command
        return super().get_command(ctx, cmd_name)


def _gateway_url(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """The gateway URL as given, if it is one: an http(s) URL with a host (else exit 2, one line)."""
    from urllib.parse import urlsplit

    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise click.BadParameter(
            f"{value!r} is not the http(s):// URL of a Dask Gateway, e.g. http://127.0.0.1:8795 "
            "(`eopack gateway up` prints it)",
            param_hint="'--dask-gateway-url'",
        )
    return value


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="eopack")
def cli() -> None:
    """Run Earth-observation application packages (CWL) on any runner."""


@cli.command("list")
def list_cmd() -> None:
    """Apps with their version, label and the runners their tests cover."""
    root = repo_root()
    from rich.table import Table  # lazy: only `eopack list` draws a table

    table = Table("app", "version", "label", "tested on")
    for pkg in list_packages(root):
        table.add_row(pkg.name, pkg.version, pkg.label, ", ".join(tested_runners(pkg.name, root)) or "-")
    out.print(table)


@cli.command()
@click.argument("targets", nargs=-1)
@click.option("--no-cwltool", is_flag=True, help="Skip `cwltool --validate` (contract checks only).")
def validate(targets: tuple[str, ...], no_cwltool: bool) -> None:
    """Check packages against the app-package contract (all apps when none given)."""
    root = repo_root()
    packages = [find_package(t, root) for t in targets] if targets else list_packages(root)
    failed = 0
    for pkg in packages:
        findings = validate_package(pkg, root, run_cwltool=not no_cwltool)
        for finding in findings:
            click.echo(str(finding))
        if findings:
            failed += 1
        else:
            err.print(f"[green]ok[/] {pkg.name} {pkg.version}")
    if failed:
        sys.exit(1)


@cli.command(context_settings={"ignore_unknown_options": True})
@click.argument("app")
@click.argument("job", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--runner",
    "runner_name",
    default="cwltool",
    show_default=True,
    type=click.Choice(sorted(REGISTRY)),
    help="Where to run.",
)
@click.option(
    "--outdir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Run directory (default runs/<app>/<UTC timestamp>/).",
)
@click.option("--no-container", is_flag=True, help="Run the tools installed here instead of their images.")
@click.option(
    "--engine",
    default="docker",
    show_default=True,
    metavar="ENGINE",
    help="Container engine for cwltool and toil runners: docker, podman (images from "
    "`eopack images export`) or singularity (Apptainer .sif files in the same cache).",
)
@click.option(
    "--dask-gateway-url",
    metavar="URL",
    callback=_gateway_url,
    help="Create the package's Dask cluster on this gateway.",
)
@click.option("-q", "--quiet", is_flag=True, help="Do not echo the runner's log (it is still kept).")
@click.option(
    "--print-command",
    is_flag=True,
    help="Prepare the run directory and print the equivalent plain engine command instead of running.",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Write what would run (calrissian: command line and Kubernetes manifests) without running it.",
)
@click.option(
    "--publish",
    "publish_url",
    metavar="URL",
    help="After success, publish the results to this STAC API (as `eopack publish RUN_DIR --stac-api URL`).",
)
@click.argument("extra", nargs=-1, type=click.UNPROCESSED)
def run(
    app: str,
    job: Path | None,
    runner_name: str,
    outdir: Path | None,
    no_container: bool,
    engine: str,
    dask_gateway_url: str | None,
    quiet: bool,
    print_command: bool,
    dry_run: bool,
    publish_url: str | None,
    extra: tuple[str, ...],
) -> None:
    """Run APP with JOB (default: the package's examples/default.yml).

    Arguments after `--` go to the runner unchanged.
    """
    if job is not None and str(job).startswith("-"):
        # `eopack run APP -- --restart`: no JOB given, so click put the first runner argument there.
        extra, job = (str(job), *extra), None
    elif job is not None and not job.is_file():
        raise click.BadParameter(f"File {str(job)!r} does not exist.", param_hint="'[JOB]'")
    if engine not in ENGINES:
        raise UnknownEngineError(engine)
    if engine != "docker" and runner_name not in ENGINE_RUNNERS:
        raise UnknownEngineError(engine, runner_name, ENGINE_RUNNERS)
    pkg = find_package(app)
    job = job or pkg.default_job
    if not job.exists():
        raise click.UsageError(f"no job file given and {job} does not exist")
    runner = get_runner(runner_name)
    if dry_run:
        if not hasattr(runner, "dry_run"):
            supported = [n for n in sorted(REGISTRY) if hasattr(get_runner(n), "dry_run")]
            raise click.UsageError(
                f"runner {runner_name!r} has no --dry-run; use one of: {', '.join(supported)} "
                "(or --print-command)"
            )
        runner.dry_run = True  # type: ignore[attr-defined]
    else:
        ensure_for_job(load_job(job))
    options = RunOptions(
        outdir=outdir,
        no_container=no_container,
        dask_gateway_url=dask_gateway_url,
        extra_args=list(extra),
        quiet=quiet,
        print_command=print_command,
        engine=engine,
    )
    result = runner.run(pkg, job, options)
    if print_command:
        click.echo(result.command or "")
        return
    if not dry_run and (result.run_dir / ".eopack").is_dir():
        from .report import record_after_run  # lazy: only after a run

        record_after_run(result.run_dir)
    if not result.ok:
        for line in result.errors:
            err.print(f"[red]{line}[/]")
        raise RunFailedError(pkg.name, runner_name, result.exit_code, result.status.value, result.log)
    if dry_run:
        notice(f"{pkg.name} not run (--dry-run); what {runner_name} would run is in {result.run_dir}/.eopack")
    else:
        notice(f"{pkg.name} succeeded on {runner_name}; results in {result.run_dir}")
    click.echo(str(result.catalog) if result.catalog else str(result.run_dir))
    if publish_url and not dry_run:
        from .publish import publish_and_report  # lazy: requests and pystac only when publishing

        publish_and_report(result.run_dir, publish_url)


@cli.command("sample-data", context_settings={"ignore_unknown_options": True})
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder (default data/sample, or data/sample-STYLE with --style).",
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def sample_data(out: Path | None, args: tuple[str, ...]) -> None:
    """Generate the sample inputs (options: --months N --tiles N --tile-size PX --resolution M --force
    --style pc|earth-search|stac-1.1 --processing-baseline 03.01)."""
    click.echo(str(generate_sample_data(out, args)))


@cli.command("new")
@click.argument("app")
@click.option("--dask", is_flag=True, help="Compute through the package's Dask cluster (eo-common).")
@click.option("--no-install", is_flag=True, help="Only write the files (skip `uv lock && uv sync`).")
def new(app: str, dask: bool, no_install: bool) -> None:
    """Create a new application package APP (CWL, tool, container, tests) that validates and runs."""
    root = repo_root()
    for path in create(root, app, dask=dask, install=not no_install):
        click.echo(str(path.relative_to(root)))
    notice(f"created {app}: try `eopack validate {app}` and `eopack run {app}`")


def main() -> None:
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.Abort:
        err.print("[red]eopack: aborted[/]")
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except EopackError as exc:
        err.print(f"[red]eopack: error: {exc}[/]")
        sys.exit(exc.exit_code)
