"""Talking to an S3 endpoint: provisioning a key on the local one, and the credentials file tools read.

The local endpoint (``eopack.services.s3``) is moto's server mode: an S3 *stand-in* for tests and
demos, not an object store (data lives in its memory and is gone after ``down``). It enforces
signatures once three unauthenticated calls are spent; ``provision`` spends them on creating one
IAM user, its policy and its access key, so every later request must be signed with that key.

The key is written only to a mode-600 AWS shared-credentials file (``credentials_file``); tools get
that file's path (``--s3-credentials`` / ``AWS_SHARED_CREDENTIALS_FILE``), never the key itself.
"""

from __future__ import annotations

import configparser
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ServiceUnavailableError
from . import http

__all__ = [
    "PROVISIONING_CALLS",
    "SERVICE",
    "S3Key",
    "answers",
    "client",
    "ensure_bucket",
    "provision",
    "read_credentials",
    "write_credentials",
]

SERVICE = "S3 endpoint"
USER = "eopack"
# Calls moto answers without a signature before it enforces them: exactly those of ``provision``.
PROVISIONING_CALLS = 3
_ALLOW_ALL = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}


@dataclass(frozen=True)
class S3Key:
    """An access key pair (repr hides the secret, so it never lands in a log by accident)."""

    access_key_id: str
    secret_access_key: str

    def __repr__(self) -> str:
        return f"S3Key(access_key_id={self.access_key_id!r}, secret_access_key=***)"


def answers(url: str) -> bool:
    """True when something speaks HTTP at ``url`` (moto answers its control route without a key)."""
    return http.http_status(f"{url.rstrip('/')}/moto-api/", timeout=2.0) is not None


def client(url: str, key: S3Key, region: str) -> Any:
    """A boto3 S3 client for ``url`` signed with ``key`` (path-style addressing, as loopback needs)."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=url,
        region_name=region,
        aws_access_key_id=key.access_key_id,
        aws_secret_access_key=key.secret_access_key,
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2}),
    )


def provision(url: str, region: str) -> S3Key:
    """Create the ``eopack`` user with an allow-all policy and return its new access key.

    Must be the first three calls to a fresh moto server (see the module docstring).
    """
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    iam = boto3.client(
        "iam",
        endpoint_url=url,
        region_name=region,
        aws_access_key_id="provisioning",
        aws_secret_access_key="provisioning",  # noqa: S106 - moto accepts any pair for these calls
    )
    try:
        iam.create_user(UserName=USER)
        iam.put_user_policy(UserName=USER, PolicyName="all", PolicyDocument=json.dumps(_ALLOW_ALL))
        made = iam.create_access_key(UserName=USER)["AccessKey"]
    except (BotoCoreError, ClientError) as exc:
        raise ServiceUnavailableError(
            SERVICE,
            f"could not create its access key ({http.one_line(exc)})",
            "Run `eopack s3 down` and `up` again.",
        ) from exc
    return S3Key(made["AccessKeyId"], made["SecretAccessKey"])


def ensure_bucket(url: str, key: S3Key, region: str, bucket: str) -> None:
    """Create ``bucket`` unless it exists."""
    s3 = client(url, key, region)
    existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
    if bucket not in existing:
        s3.create_bucket(Bucket=bucket)


def write_credentials(path: Path, key: S3Key, region: str) -> None:
    """An AWS shared-credentials file (``[default]`` profile) readable by its owner only."""
    parser = configparser.ConfigParser()
    parser["default"] = {
        "aws_access_key_id": key.access_key_id,
        "aws_secret_access_key": key.secret_access_key,
        "region": region,
    }
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    with path.open("w") as handle:
        parser.write(handle)


def read_credentials(path: Path, profile: str = "default") -> S3Key:
    """The key pair of ``profile`` in an AWS shared-credentials file."""
    parser = configparser.ConfigParser()
    parser.read(path)
    if profile not in parser:
        raise ServiceUnavailableError(
            SERVICE, f"{path} has no [{profile}] profile", "Run `eopack s3 up` to write it."
        )
    section = parser[profile]
    return S3Key(section["aws_access_key_id"], section["aws_secret_access_key"])
