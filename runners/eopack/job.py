"""Job orders: loading one (relative paths made absolute, bad input as one line) and finding loopback URLs."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .errors import JobInvalidError
from .package import Package, as_list, load_yaml, short_id

__all__ = ["check_inputs", "load_job", "loopback_urls"]


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


def _optional(cwl_type: Any) -> bool:
    if isinstance(cwl_type, str):
        return cwl_type.endswith("?") or cwl_type == "null"
    if isinstance(cwl_type, list):
        return "null" in cwl_type
    return False


def check_inputs(package: Package, job: Mapping[str, Any], path: object) -> None:
    """Refuse a job with inputs the package does not have (a typo such as ``max_byte`` would be
    ignored by the engines) or without a required one; ``JobInvalidError`` names the known inputs."""
    inputs = {short_id(str(i["id"])): i for i in as_list(package.workflow.get("inputs"), "id", "type")}
    known = ", ".join(sorted(inputs)) or "none"
    unknown = sorted(k for k in job if k not in inputs)
    if unknown:
        raise JobInvalidError(
            path, f"has unknown input(s) {', '.join(unknown)} (the package's inputs: {known})"
        )
    missing = sorted(
        k for k, i in inputs.items()
        if job.get(k) is None and i.get("default") is None and not _optional(i.get("type"))
    )  # fmt: skip
    if missing:
        raise JobInvalidError(
            path, f"lacks required input(s) {', '.join(missing)} (the package's inputs: {known})"
        )


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
