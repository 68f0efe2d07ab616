"""OGC API Processes, the package side: a package's process description and its job as OGC inputs.

The HTTP client for ZOO-Project is ``eopack.clients.ogc``; the commands are ``eopack.commands.ogc``.

Why here and not in the runners: deployment is not a run. ZOO-Project (OGC API Processes Part 2,
"Deploy, Replace, Undeploy") takes the package as an ``executionUnit`` and runs it itself; eopack
only describes the process, deploys it and drives its jobs (Part 1: execute, status, results).

* ``describe(pkg)``: the Part 1 process description, with inputs and outputs converted by
  ``cwl2ogc`` (the converter ZOO-Project's stack uses), so what we print is what a server derives.
  Two corrections on top: an input with a CWL ``default`` has ``minOccurs: 0`` (a client may omit
  it; cwl2ogc only looks at nullability), and keeps that default in its schema even when it is falsy
  (cwl2ogc 0.22 drops ``default: false``).
* ``OgcClient``: deploy (``executionUnit`` by reference to a released CWL, or the CWL inline as
  ``application/cwl+yaml``), execute (``Prefer: respond-async``; the job id from the body or the
  ``Location`` header), status, results, dismiss, undeploy; bearer token or basic auth.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from .clients.ogc import OgcApiError
from .package import Package, as_list, short_id

__all__ = ["describe", "job_inputs"]


def describe(pkg: Package) -> dict[str, Any]:
    """The OGC API Processes process description of ``pkg``'s Workflow (inputs/outputs via cwl2ogc)."""
    from cwl2ogc import BaseCWLtypes2OGCConverter
    from cwl_utils.parser import load_document_by_uri

    process = load_document_by_uri(f"{pkg.path.resolve().as_uri()}#{pkg.name}")
    converter = BaseCWLtypes2OGCConverter(process)
    inputs = json.loads(json.dumps(converter.get_inputs()))
    defaults = {
        short_id(i["id"]): i["default"] for i in as_list(pkg.workflow.get("inputs"), "id") if "default" in i
    }
    for key, spec in inputs.items():
        if key in defaults:
            spec["minOccurs"] = 0
            # cwl2ogc 0.22 drops falsy defaults (false, 0, ""); the server needs them to fill omitted inputs.
            spec.setdefault("schema", {}).setdefault("default", defaults[key])
    doc = pkg.doc
    keywords = doc.get("s:keywords") or []
    return {
        "id": pkg.name,
        "title": pkg.label,
        "description": str(pkg.workflow.get("doc", "")).strip(),
        "version": pkg.version,
        "keywords": [str(k) for k in (keywords if isinstance(keywords, list) else [keywords])],
        "jobControlOptions": ["async-execute"],
        "outputTransmission": ["value", "reference"],
        "inputs": inputs,
        "outputs": json.loads(json.dumps(converter.get_outputs())),
        "links": [
            {
                "rel": "http://www.opengis.net/def/rel/ogc/1.0/execute",
                "href": f"processes/{pkg.name}/execution",
                "title": "Execute endpoint",
            }
        ],
    }


def job_inputs(job: Mapping[str, Any]) -> dict[str, Any]:
    """A CWL job order as OGC ``inputs``: File/Directory become ``{"href": URL}``.

    A local path is refused: the server cannot read this machine's disk.
    """

    def convert(key: str, value: Any) -> Any:
        if isinstance(value, dict) and value.get("class") in {"File", "Directory"}:
            location = str(value.get("location") or value.get("path") or "")
            if not location.startswith(("http://", "https://", "s3://")):
                raise OgcApiError(
                    f"input {key!r}",
                    None,
                    f"{location or 'a local path'} is on this machine",
                    "Give an http(s) URL the server can read (e.g. a STAC item or catalog URL).",
                )
            return {"href": location}
        if isinstance(value, list):
            return [convert(key, v) for v in value]
        return value

    return {k: convert(k, v) for k, v in job.items() if v is not None}
