"""A Workflow Run RO-Crate of a run: ``ro-crate-metadata.json`` at the run directory's root.

The same crate for every runner, built from what eopack knows (``runinfo``): toil-cwl-runner cannot
write one (DataBiosphere/toil#2390) and a WES server writes none, and one builder keeps the crates of
all runners alike. It follows the Workflow Run Crate profile 0.5 (https://w3id.org/ro/wfrun/workflow/0.5),
the RO-Crate form of CWLProv: the run copy of the CWL is the ``mainEntity`` (a ComputationalWorkflow
with its FormalParameters), one ``CreateAction`` is the run (start/end, status, the runner as
instrument's executor), its ``object`` the job's values and the input STAC items (with SHA-256
checksums) and its ``result`` every output file (size, SHA-256). The container images with their
digests are ``ContainerImage`` entities; the job, log and usage report are parts of the crate.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from .runinfo import OutputFile, RunInfo

__all__ = ["CRATE_FILE", "PROFILES", "build_crate", "write_crate"]

CRATE_FILE = "ro-crate-metadata.json"
PROFILES = {
    "process": "https://w3id.org/ro/wfrun/process/0.5",
    "workflow": "https://w3id.org/ro/wfrun/workflow/0.5",
    "wfcrate": "https://w3id.org/workflowhub/workflow-ro-crate/1.0",
}
CONTEXT = [
    "https://w3id.org/ro/crate/1.1/context",
    {
        "ContainerImage": "https://w3id.org/ro/terms/workflow-run#ContainerImage",
        "DockerImage": "https://w3id.org/ro/terms/workflow-run#DockerImage",
        "sha256": "https://w3id.org/ro/terms/workflow-run#sha256",
        "tag": "https://w3id.org/ro/terms/workflow-run#tag",
        "registry": "https://w3id.org/ro/terms/workflow-run#registry",
        "containerImage": "https://w3id.org/ro/terms/workflow-run#containerImage",
    },
]


def _ref(i: str) -> dict[str, str]:
    return {"@id": i}


def _cwl_type(t: Any) -> str:
    name = t if isinstance(t, str) else (t.get("type") if isinstance(t, dict) else "string")
    name = str(name).rstrip("?")
    return {
        "Directory": "Dataset",
        "File": "File",
        "int": "Integer",
        "long": "Integer",
        "float": "Float",
        "double": "Float",
        "boolean": "Boolean",
    }.get(name, "Text")


def _file_entity(f: OutputFile, at: str, param: str | None = None) -> dict[str, Any]:
    entity: dict[str, Any] = {
        "@id": at,
        "@type": "File",
        "name": Path(at).name,
        "contentSize": str(f.size),
        "sha256": f.sha256,
    }
    if f.media_type:
        entity["encodingFormat"] = f.media_type
    if param:
        entity["exampleOfWork"] = _ref(param)
    return entity


def build_crate(info: RunInfo) -> dict[str, Any]:
    """The crate's JSON-LD for ``info``."""
    wf = info.workflow.as_posix()
    now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    params = []
    for entries in (info.inputs, info.outputs_params):
        for p in entries:
            params.append(
                {
                    "@id": f"#{info.app}/{p['id']}",
                    "@type": "FormalParameter",
                    "conformsTo": _ref("https://bioschemas.org/profiles/FormalParameter/1.0-RELEASE"),
                    "name": p["id"],
                    "description": str(p.get("label") or p["id"]),
                    "additionalType": _cwl_type(p.get("type")),
                    "valueRequired": not str(p.get("type", "")).endswith("?"),
                }
            )
    objects: list[dict[str, Any]] = []
    for key, value in info.job.items():
        param = f"#{info.app}/{key}"
        if isinstance(value, dict) and value.get("class") in ("Directory", "File"):
            location = str(value.get("path") or value.get("location", ""))
            uri = location if "://" in location else Path(location).resolve().as_uri()
            objects.append(
                {
                    "@id": uri,
                    "@type": "Dataset" if value["class"] == "Directory" else "File",
                    "name": key,
                    "exampleOfWork": _ref(param),
                }
            )
        else:
            objects.append(
                {
                    "@id": f"#pv-{key}",
                    "@type": "PropertyValue",
                    "name": key,
                    "value": json.dumps(value) if isinstance(value, list | dict) else str(value),
                    "exampleOfWork": _ref(param),
                }
            )
    item_entities = [
        {
            **_file_entity(f, f.path.resolve().as_uri()),
            "@type": "File",
            "name": f.path.stem,
            "description": f"STAC item {f.path.stem}, an input of this run",
        }
        for f in info.input_files
    ]
    results = [
        _file_entity(f, f.path.as_posix(), f"#{info.app}/{f.path.parts[0]}") for f in info.output_files
    ]
    images = [
        {
            "@id": f"#image-{n}",
            "@type": "ContainerImage",
            "additionalType": _ref("https://w3id.org/ro/terms/workflow-run#DockerImage"),
            "name": img.ref.rsplit(":", 1)[0] if "@" not in img.ref else img.ref.split("@")[0],
            "tag": img.ref.rsplit(":", 1)[1] if ":" in img.ref.rsplit("/", 1)[-1] else "",
            **({"sha256": img.image_id.removeprefix("sha256:")} if img.image_id else {}),
            **({"identifier": list(img.repo_digests)} if img.repo_digests else {}),
        }
        for n, img in enumerate(info.images)
    ]
    usage = info.usage
    action: dict[str, Any] = {
        "@id": "#run",
        "@type": "CreateAction",
        "name": f"Run of {info.app} {info.version} on {info.runner}",
        "instrument": _ref(wf),
        "object": [_ref(o["@id"]) for o in objects] + [_ref(e["@id"]) for e in item_entities],
        "result": [_ref(r["@id"]) for r in results],
        "actionStatus": _ref(
            "http://schema.org/CompletedActionStatus"
            if info.succeeded
            else "http://schema.org/FailedActionStatus"
        ),
        "agent": _ref("#eopack"),
    }
    if usage.get("start_time"):
        action["startTime"] = usage["start_time"]
        action["endTime"] = usage["finish_time"]
    if images:
        action["containerImage"] = [_ref(str(i["@id"])) for i in images]
    meta_files = [
        p.relative_to(info.run_dir).as_posix()
        for p in sorted(info.meta.iterdir())
        if p.is_file() and p.suffix in (".yml", ".json", ".log", ".txt") and p.name != "secrets"
    ]
    parts = [
        wf,
        *[m for m in meta_files if m != wf],
        *[r["@id"] for r in results],
        *[o["@id"] for o in objects if o["@type"] in ("File", "Dataset")],
        *[e["@id"] for e in item_entities],
    ]
    if (info.run_dir / "report.html").exists():
        parts.append("report.html")
    described = {
        wf,
        *(r["@id"] for r in results),
        *(o["@id"] for o in objects),
        *(e["@id"] for e in item_entities),
    }
    support = [{"@id": m, "@type": "File", "name": Path(m).name} for m in parts if m not in described]
    graph: list[dict[str, Any]] = [
        {
            "@id": CRATE_FILE,
            "@type": "CreativeWork",
            "conformsTo": [_ref("https://w3id.org/ro/crate/1.1"), _ref(PROFILES["wfcrate"])],
            "about": _ref("./"),
        },
        {
            "@id": "./",
            "@type": "Dataset",
            "name": f"{info.app} {info.version}: run on {info.runner}",
            "description": info.description or info.label,
            "datePublished": now,
            "license": _ref(info.license)
            if info.license.startswith("http")
            else info.license or "Apache-2.0",
            "conformsTo": [_ref(PROFILES[k]) for k in ("process", "workflow", "wfcrate")],
            "mainEntity": _ref(wf),
            "hasPart": [_ref(p) for p in parts],
            "mentions": _ref("#run"),
        },
        {
            "@id": wf,
            "@type": ["File", "SoftwareSourceCode", "ComputationalWorkflow"],
            "name": info.label,
            "description": info.description,
            "version": info.version,
            "programmingLanguage": _ref("https://w3id.org/workflowhub/workflow-ro-crate#cwl"),
            "input": [_ref(p["@id"]) for p in params[: len(info.inputs)]],
            "output": [_ref(p["@id"]) for p in params[len(info.inputs) :]],
        },
        {
            "@id": "https://w3id.org/workflowhub/workflow-ro-crate#cwl",
            "@type": "ComputerLanguage",
            "name": "Common Workflow Language",
            "alternateName": "CWL",
            "identifier": _ref("https://w3id.org/cwl/v1.2/"),
            "url": _ref("https://www.commonwluser.org/"),
            "version": "v1.2",
        },
        {
            "@id": "#eopack",
            "@type": "SoftwareApplication",
            "name": f"eopack ({info.runner})",
            "description": info.command,
        },
        action,
        *[
            {"@id": uri, "@type": "CreativeWork", "name": name, "version": uri.rsplit("/", 1)[-1]}
            for name, uri in (
                ("Process Run Crate", PROFILES["process"]),
                ("Workflow Run Crate", PROFILES["workflow"]),
                ("Workflow RO-Crate", PROFILES["wfcrate"]),
            )
        ],
        *params,
        *objects,
        *item_entities,
        *results,
        *support,
        *images,
    ]
    return {"@context": CONTEXT, "@graph": graph}


def write_crate(info: RunInfo) -> Path:
    path = info.run_dir / CRATE_FILE
    path.write_text(json.dumps(build_crate(info), indent=2) + "\n")
    return path
