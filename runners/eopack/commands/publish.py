"""``eopack publish`` (and ``eopack run --publish``): parse, call, print."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.markup import escape

from ..console import notice
from ..publish import AssetTarget, LocalAssets, PublishResult, TemplateAssets, publish

__all__ = ["publish_and_report", "publish_cmd"]


def publish_and_report(run_dir: Path, api_url: str, **options: Any) -> PublishResult:
    """``publish`` with progress on stderr, then on stdout: files to upload (templates), collection URLs,
    and last the STAC Browser page of each collection when the API is a local stack that serves one.

    Shared by ``eopack publish`` and ``eopack run --publish``.
    """
    result = publish(run_dir, api_url, progress=lambda msg: notice(escape(msg)), **options)
    for upload in result.uploads:
        if upload.dest is None:
            click.echo(f"upload {upload.source} {upload.url}")
    for url in result.collection_urls:
        click.echo(url)
    for url in result.browser_urls:
        click.echo(url)
    return result


@click.command("publish")
@click.argument("run_dir", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--stac-api", "api_url", required=True, metavar="URL", help="STAC API with Transactions enabled."
)
@click.option(
    "--collection", metavar="ID", help="Target collection (default: the run's collection or catalog id)."
)
@click.option(
    "--assets-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Copy asset files into this folder (served at --assets-url).",
)
@click.option("--assets-url", metavar="URL", help="Base URL at which --assets-dir is served.")
@click.option(
    "--assets-url-template",
    metavar="TEMPLATE",
    help="Object-storage hrefs, e.g. 's3://bucket/{collection}/{item}/{asset}'; prints what to upload.",
)
@click.option(
    "--schema-map",
    nargs=2,
    multiple=True,
    metavar="URL FILE",
    help="Validate against a local copy of a schema (e.g. an extension's), like stac-validator -s.",
)
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="State dir of the local stack, when it is not the default and not found from the URL.",
)
@click.option("--dry-run", is_flag=True, help="Validate and show the plan; copy and ingest nothing.")
def publish_cmd(
    run_dir: Path,
    api_url: str,
    collection: str | None,
    assets_dir: Path | None,
    assets_url: str | None,
    assets_url_template: str | None,
    schema_map: tuple[tuple[str, str], ...],
    state_dir: Path | None,
    dry_run: bool,
) -> None:
    """Validate a run's STAC output and ingest it into a STAC API (Transactions extension).

    Nothing is published when any document is invalid. Assets go to the local stack's
    published/ folder by default (for `eopack stac up`), or --assets-dir/--assets-url, or only
    get their hrefs from --assets-url-template (the files to upload are printed).
    """
    target: AssetTarget | None = None
    if assets_url_template and (assets_dir or assets_url):
        raise click.UsageError("--assets-url-template excludes --assets-dir/--assets-url")
    if bool(assets_dir) != bool(assets_url):
        raise click.UsageError("--assets-dir and --assets-url go together")
    if assets_url_template:
        target = TemplateAssets(assets_url_template)
    elif assets_dir and assets_url:
        target = LocalAssets(assets_dir.resolve(), assets_url.rstrip("/"))
    publish_and_report(
        run_dir,
        api_url,
        collection=collection,
        target=target,
        state_dir=state_dir,
        schema_map=dict(schema_map),
        dry_run=dry_run,
    )
