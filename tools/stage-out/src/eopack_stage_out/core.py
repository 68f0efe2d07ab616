"""Stage a result folder out to an S3 bucket, the way the platform's default stage-out does.

What ZOO-Project's default stage-out (charts, ``cwlwrapper-assets/stageout.yaml``) does, and so
what this does, for a folder with ``catalog.json`` at its root:

1. the items are the root catalog's **direct** items (``catalog.get_items()``, not recursive);
2. a Collection whose id is the sub-folder (``<process>-<6 random base-36 chars>``) takes them;
3. each asset is uploaded to ``s3://<bucket>/<sub>/<collection>/<item id>/<file name>`` and its
   href rewritten to that URL;
4. the root catalog loses its items and gets the Collection as its only child; hrefs are normalised
   under ``s3://<bucket>/<sub>/`` and the items, the Collection and the catalog are uploaded;
5. the result is ``s3://<bucket>/<sub>/catalog.json``.

Differences, each on purpose: a folder whose root has no direct item but items further down fails
with exit 1 instead of uploading an empty catalog; child catalogs the root had are not linked from
the uploaded catalog (the platform leaves their links dangling); links are relative with absolute
``self`` links (``RELATIVE_PUBLISHED``), so the catalog reads back from the bucket with pystac.

Credentials come from a mode-600 AWS shared-credentials file (``credentials``) or from the
environment (the platform's ``STAGEOUT_AWS_*`` names, then boto3's own ``AWS_*``); never from the
command line, and they are never logged.
"""

from __future__ import annotations

import json
import logging
import mimetypes
import os
import secrets
import string
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pystac

from eopack_eo_common.errors import ToolError, ToolInputError

__all__ = ["VERSION", "S3Settings", "StagedOut", "stage_out", "subfolder_name"]

VERSION = version("eopack-stage-out")  # one source: tools/stage-out/pyproject.toml

log = logging.getLogger(__name__)

GEOJSON = "application/geo+json"
_ALPHABET = string.digits + string.ascii_lowercase


@dataclass(frozen=True)
class S3Settings:
    """Where to upload and how to sign (the secret stays out of ``repr``)."""

    endpoint: str | None
    region: str
    access_key_id: str | None = None
    secret_access_key: str | None = None
    profile_file: Path | None = None

    def __repr__(self) -> str:
        return f"S3Settings(endpoint={self.endpoint!r}, region={self.region!r}, credentials=***)"

    @classmethod
    def resolve(
        cls,
        endpoint: str | None,
        region: str | None,
        credentials: Path | None,
        env: Mapping[str, str] | None = None,
    ) -> S3Settings:
        """Flags first, then ``STAGEOUT_AWS_*``, then boto3's own resolution (``AWS_*``, profiles)."""
        env = os.environ if env is None else env
        endpoint = endpoint or env.get("STAGEOUT_AWS_SERVICEURL") or env.get("AWS_ENDPOINT_URL_S3")
        region = region or env.get("STAGEOUT_AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1"
        if endpoint and urlsplit(endpoint).scheme not in {"http", "https"}:
            raise ToolInputError(f"s3_endpoint must be an http(s) URL; got {endpoint!r}")
        if credentials is not None:
            if not credentials.is_file():
                raise ToolInputError(f"s3_credentials {credentials} is not a file")
            return cls(endpoint, region, profile_file=credentials)
        key, secret = env.get("STAGEOUT_AWS_ACCESS_KEY_ID"), env.get("STAGEOUT_AWS_SECRET_ACCESS_KEY")
        if bool(key) != bool(secret):
            raise ToolInputError(
                "set both STAGEOUT_AWS_ACCESS_KEY_ID and STAGEOUT_AWS_SECRET_ACCESS_KEY, or neither"
            )
        return cls(endpoint, region, key or None, secret or None)

    def client(self) -> Any:
        import boto3
        from botocore.config import Config

        if self.profile_file is not None:
            session = _profile_session(self.profile_file, self.region)
        else:
            session = boto3.session.Session(
                aws_access_key_id=self.access_key_id,
                aws_secret_access_key=self.secret_access_key,
                region_name=self.region,
            )
        return session.client(
            "s3", endpoint_url=self.endpoint, config=Config(s3={"addressing_style": "path"})
        )


def _profile_session(path: Path, region: str) -> Any:
    """A boto3 session reading only ``path`` (an AWS shared-credentials file, ``[default]``)."""
    import configparser

    import boto3

    parser = configparser.ConfigParser()
    parser.read(path)
    if "default" not in parser or "aws_access_key_id" not in parser["default"]:
        raise ToolInputError(
            f"s3_credentials {path} has no [default] aws_access_key_id/aws_secret_access_key"
        )
    section = parser["default"]
    return boto3.session.Session(
        aws_access_key_id=section.get("aws_access_key_id"),
        aws_secret_access_key=section.get("aws_secret_access_key"),
        region_name=section.get("region", region),
    )


@dataclass(frozen=True)
class StagedOut:
    """The catalog URL and what it holds."""

    catalog_url: str
    collection_id: str
    item_ids: tuple[str, ...]
    objects: int


def subfolder_name(process: str) -> str:
    """``<process>-<6 random base-36 chars>``, as the platform names a run's folder."""
    if not process or "/" in process:
        raise ToolInputError(f"process_name must be a non-empty name without '/'; got {process!r}")
    return f"{process}-{''.join(secrets.choice(_ALPHABET) for _ in range(6))}"


def _check_bucket(bucket: str) -> None:
    if not (3 <= len(bucket) <= 63) or not all(c.islower() or c.isdigit() or c in ".-" for c in bucket):
        raise ToolInputError(f"s3_bucket {bucket!r} is not a valid bucket name (3-63 of a-z 0-9 . -)")


def _read_catalog(results: Path) -> pystac.Catalog:
    path = results / "catalog.json"
    if not path.is_file():
        raise ToolInputError(f"{results} has no catalog.json at its root")
    try:
        root = pystac.read_file(str(path.resolve()))
    except Exception as err:  # pystac raises many kinds on a broken catalog
        raise ToolInputError(f"{path} is not a readable STAC catalog ({err})") from None
    if not isinstance(root, pystac.Catalog):
        raise ToolInputError(f"{path} is a {type(root).__name__}, not a Catalog")
    return root


def _put_json(client: Any, url: str, doc: dict[str, Any]) -> None:
    parts = urlsplit(url)
    client.put_object(
        Bucket=parts.netloc,
        Key=parts.path.lstrip("/"),
        Body=json.dumps(doc, indent=2).encode(),
        ContentType=GEOJSON,
    )


def stage_out(
    results: Path,
    bucket: str,
    settings: S3Settings,
    *,
    subfolder: str,
) -> StagedOut:
    """Upload ``results`` (see the module docstring); returns the catalog URL."""
    from botocore.exceptions import BotoCoreError, ClientError

    _check_bucket(bucket)
    catalog = _read_catalog(results)
    items = list(catalog.get_items())  # direct children only, as the platform reads them
    if not items:
        nested = sum(1 for _ in catalog.get_items(recursive=True))
        where = (
            f"; {nested} item(s) are below child catalogs, which the platform's stage-out does not read"
            if nested
            else ""
        )
        raise ToolError(f"{results / 'catalog.json'} has no direct item to stage out{where}")
    dropped = [child.id for child in catalog.get_children()]
    if dropped:
        log.info("child catalogs not carried to the bucket: %s", ", ".join(dropped))
    prefix = f"s3://{bucket}/{subfolder}"
    now = datetime.now(UTC).replace(microsecond=0)
    collection = pystac.Collection(
        id=subfolder,
        description=f"Results of {subfolder}",
        title="Processing results",
        extent=pystac.Extent(
            pystac.SpatialExtent([[-180.0, -90.0, 180.0, 90.0]]), pystac.TemporalExtent([[now, now]])
        ),
        keywords=["eoepca", "eopack"],
        license="proprietary",
    )
    sources: dict[tuple[str, str], Path] = {}
    for item in items:
        for key, asset in item.assets.items():
            source = Path(asset.get_absolute_href() or "")
            if not source.is_file():
                raise ToolError(f"item {item.id}: asset {key!r} ({asset.href}) is not a file in {results}")
            sources[item.id, key] = source
    catalog.clear_items()
    for child in list(catalog.get_children()):
        catalog.remove_child(child.id)
    catalog.remove_links(pystac.RelType.ROOT)  # it points at the local folder (the platform drops it too)
    catalog.set_root(catalog)
    catalog.add_child(collection)
    client = settings.client()
    uploaded = 0
    try:
        client.head_bucket(Bucket=bucket)
        for item in items:
            for key, asset in item.assets.items():
                source = sources[item.id, key]
                object_key = f"{subfolder}/{collection.id}/{item.id}/{source.name}"
                media = asset.media_type or mimetypes.guess_type(source.name)[0] or "application/octet-stream"
                log.info("upload %s to s3://%s/%s", source.name, bucket, object_key)
                client.upload_file(str(source), bucket, object_key, ExtraArgs={"ContentType": media})
                uploaded += 1
                asset.href = f"s3://{bucket}/{object_key}"
            item.set_collection(collection)
            collection.add_item(item)
        collection.update_extent_from_items()
        catalog.normalize_hrefs(prefix)
        catalog.catalog_type = pystac.CatalogType.RELATIVE_PUBLISHED
        for item in collection.get_items():
            _put_json(
                client, item.get_self_href() or "", item.to_dict(include_self_link=True, transform_hrefs=True)
            )
        _put_json(client, collection.get_self_href() or "", collection.to_dict(include_self_link=True))
        _put_json(client, catalog.get_self_href() or "", catalog.to_dict(include_self_link=True))
    except ClientError as err:
        code = err.response.get("Error", {}).get("Code", "error")
        if code in {"404", "NoSuchBucket"}:
            raise ToolInputError(
                f"bucket {bucket!r} does not exist at {settings.endpoint or 'AWS'}"
            ) from None
        if code in {"403", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied"}:
            raise ToolInputError(f"S3 refused the credentials ({code}); check s3_credentials") from None
        raise ToolError(f"S3 error {code} while staging out to {prefix}") from None
    except BotoCoreError as err:
        raise ToolError(f"cannot talk to S3 at {settings.endpoint or 'AWS'}: {err}") from None
    ids = tuple(item.id for item in items)
    log.info("staged out %d item(s), %d asset(s) to %s", len(ids), uploaded, prefix)
    return StagedOut(f"{prefix}/catalog.json", collection.id, ids, uploaded + len(ids) + 2)
