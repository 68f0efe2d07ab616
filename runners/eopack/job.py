"""Job orders: loading one (relative paths made absolute, bad input as one line) and finding loopback URLs."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .errors import JobInvalidError
from .package import load_yaml

__all__ = ["load_job", "loopback_urls"]


def load_job(path: Path) -> dict[str, Any]:
    """Read a job order; relative File/Directory locations are made absolute (we run from a copy).

    A missing file, YAML that does not parse, or a document that is not a mapping raises
    ``JobInvalidError`` (exit 2, one line).
    """
    try:
        job = load_yaml(path) or {}
    except OSError as exc:
        raise JobInvalidError(path, f"cannot be read ({exc.strerror or exc})") from None
    except Exception as exc:  # ruamel's parser and scanner errors share no useful base class
        where = getattr(exc, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise JobInvalidError(path, f"is not valid YAML{line}: {problem}") from None
    if not isinstance(job, dict):
        raise JobInvalidError(path, f"holds a {type(job).__name__}")

    def fix(value: Any) -> Any:
        if isinstance(value, dict) and value.get("class") in {"File", "Directory"}:
            for key in ("location", "path"):
                if key in value and "://" not in str(value[key]) and not str(value[key]).startswith("/"):
                    value[key] = str((path.parent / value[key]).resolve())
            return value
        if isinstance(value, list):
            return [fix(v) for v in value]
        return value

    return {k: fix(v) for k, v in job.items()}


def loopback_urls(job: Mapping[str, Any]) -> list[str]:
    """http(s) URLs in the job whose host is this machine's loopback (127.0.0.0/8, ::1, localhost).

    A container on Docker's bridge network cannot reach them, so such a run needs the host's network.
    """
    found = []
    for value in job.values():
        if not isinstance(value, str) or not value.startswith(("http://", "https://")):
            continue
        host = urlsplit(value).hostname or ""
        try:
            loop = host == "localhost" or ipaddress.ip_address(host).is_loopback
        except ValueError:
            loop = False
        if loop:
            found.append(value)
    return found
