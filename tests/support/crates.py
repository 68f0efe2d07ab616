"""Validate a run's RO-Crate with the maintained validator (roc-validator) here, offline.

The validator expands the crate's JSON-LD ``@context`` (https://w3id.org/ro/crate/1.1/context) over
the network, which this machine does not reach. The one boundary double: that URL is answered (in
requests' HTTP adapter, for those URLs only) from the
RO-Crate context shipped by the ``rocrate`` library (ro-crate-py's ``data/ro-crate.jsonld``, a superset of
1.1's terms); every check of the profiles runs as published.
"""

from __future__ import annotations

import io
import json
from functools import cache
from pathlib import Path
from typing import Any

import requests
import rocrate
import urllib3
from rocrate_validator import models, services

__all__ = ["crate_issues"]

CONTEXTS = ("https://w3id.org/ro/crate/1.1/context",)


# Where RO-Crate 1.1's context differs from the bundled 1.3 one in the terms our crates use (1.3 moved
# the Bioschemas terms under bioschemas.org/terms/; the validator's profiles expect the 1.1 IRIs).
CONTEXT_1_1 = {
    "ComputationalWorkflow": "https://bioschemas.org/ComputationalWorkflow",
    "FormalParameter": "https://bioschemas.org/FormalParameter",
    "input": "https://bioschemas.org/input",
    "output": "https://bioschemas.org/output",
}


@cache
def _bundled_context() -> bytes:
    doc = json.loads((Path(rocrate.__file__).parent / "data" / "ro-crate.jsonld").read_text())
    doc["@context"].update(CONTEXT_1_1)
    return json.dumps(doc).encode()


_send = requests.adapters.HTTPAdapter.send


def _send_offline(
    self: requests.adapters.HTTPAdapter, request: requests.PreparedRequest, *args: Any, **kwargs: Any
) -> requests.Response:
    if str(request.url).rstrip("/") not in CONTEXTS:
        return _send(self, request, *args, **kwargs)
    raw = urllib3.HTTPResponse(
        body=io.BytesIO(_bundled_context()),
        headers={"Content-Type": "application/ld+json"},
        status=200,
        preload_content=False,
        request_url=str(request.url),
    )
    return self.build_response(request, raw)


def _offline() -> None:
    requests.adapters.HTTPAdapter.send = _send_offline  # type: ignore[method-assign]


def crate_issues(crate_dir: Path, profile: str = "workflow-run-crate") -> list[str]:
    """The REQUIRED-level issues roc-validator finds in the crate at ``crate_dir`` for ``profile``."""
    _offline()
    settings = services.ValidationSettings(
        rocrate_uri=str(crate_dir),
        profile_identifier=profile,
        requirement_severity=models.Severity.REQUIRED,
        no_cache=True,  # the double's answer must not land in the user's validator cache
    )
    result = services.validate(settings)
    return sorted({f"{i.check.identifier}: {i.message}" for i in result.get_issues()})
