"""What a finished run directory says about its run: the facts the report and the RO-Crate are built from.

Read only from the run directory (``.eopack/`` and the outputs) plus, when the run used containers,
the local Docker daemon for the images' digests, so ``eopack report RUN_DIR`` can rebuild both later.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .clients import docker
from .package import as_list, class_name, load_yaml, short_id
from .usage import USAGE_FILE

__all__ = ["Image", "OutputFile", "RunInfo", "read_run", "sha256"]

# A run's metadata files besides the results; whatever is not under .eopack/ and not one of these is a result.
RECORD_FILES = ("report.html", "ro-crate-metadata.json")


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class Image:
    ref: str  # dockerPull as the run copy names it
    image_id: str | None  # the local image id (sha256:...) when the run used containers
    repo_digests: tuple[str, ...] = ()


@dataclass(frozen=True)
class OutputFile:
    path: Path  # relative to the run directory
    size: int
    sha256: str
    media_type: str = ""


@dataclass
class RunInfo:
    run_dir: Path
    app: str
    version: str
    label: str
    description: str
    license: str
    runner: str
    command: str
    used_containers: bool
    job: dict[str, Any]
    workflow: Path  # the run copy of the CWL, relative to run_dir
    inputs: list[dict[str, Any]]  # the workflow's input parameters (id, type, label)
    outputs_params: list[dict[str, Any]]
    images: list[Image] = field(default_factory=list)
    source_items: list[str] = field(default_factory=list)  # STAC item ids the outputs were derived from
    input_files: list[OutputFile] = field(default_factory=list)  # the input items' JSON documents
    output_files: list[OutputFile] = field(default_factory=list)
    items: list[dict[str, Any]] = field(
        default_factory=list
    )  # output STAC items (id, datetime, bbox, assets)
    usage: dict[str, Any] = field(default_factory=dict)
    log: Path | None = None
    dask_reports: list[Path] = field(default_factory=list)
    succeeded: bool = False

    @property
    def meta(self) -> Path:
        return self.run_dir / ".eopack"


def _runner(meta: Path, command: str) -> str:
    if (meta / "wes-run.json").exists():
        return "wes"
    if "toil-cwl-runner" in command or "toil" in command.split(" ", 3)[:3]:
        for system in ("slurm", "htcondor"):
            if f"--batchSystem {system}" in command or f"--batchSystem={system}" in command:
                return f"toil-{system}"
        return "toil"
    if "calrissian" in command:
        return "calrissian"
    return "cwltool"


def _images(doc: Mapping[str, Any], used: bool) -> list[Image]:
    refs: list[str] = []
    for tool in doc.get("$graph") or [doc]:
        for section in ("requirements", "hints"):
            for req in as_list(tool.get(section)):
                if class_name(req) == "DockerRequirement" and req.get("dockerPull"):
                    refs.append(str(req["dockerPull"]))
    out = []
    for ref in dict.fromkeys(refs):
        info = docker.image_info(ref) if used else None
        if info:
            digests = tuple(str(d) for d in info.get("RepoDigests") or [])  # type: ignore[attr-defined]
            out.append(Image(ref, str(info.get("Id")), digests))
        else:
            out.append(Image(ref, None))
    return out


def _files(run_dir: Path, folder: Path) -> Iterator[OutputFile]:
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            media = {
                ".tif": "image/tiff; application=geotiff; profile=cloud-optimized",
                ".png": "image/png",
                ".json": "application/json",
                ".html": "text/html",
                ".zarr": "application/vnd+zarr",
            }.get(path.suffix, "")
            yield OutputFile(path.relative_to(run_dir), path.stat().st_size, sha256(path), media)


def _items(folder: Path) -> list[dict[str, Any]]:
    catalog = folder / "catalog.json"
    if not catalog.exists():
        return []
    items = []
    for link in json.loads(catalog.read_text()).get("links", []):
        if link.get("rel") != "item":
            continue
        path = (catalog.parent / link["href"]).resolve()
        if path.exists():
            item = json.loads(path.read_text())
            item["_path"] = path
            items.append(item)
    return items


def _input_items(job: Mapping[str, Any], ids: set[str]) -> list[Path]:
    """The JSON documents of the used items in the job's staged catalogs (Directory inputs)."""
    found = []
    for value in job.values():
        if isinstance(value, Mapping) and value.get("class") == "Directory":
            root = Path(str(value.get("path") or value.get("location", "")).removeprefix("file://"))
            if not root.is_dir():
                continue
            for path in root.rglob("*.json"):
                if path.stem in ids:
                    found.append(path)
    return sorted(found)


def read_run(run_dir: Path) -> RunInfo:
    """The facts of the run in ``run_dir`` (raises FileNotFoundError when it is not a run directory)."""
    run_dir = run_dir.resolve()
    meta = run_dir / ".eopack"
    cwls = sorted(meta.glob("*.cwl"))
    if not cwls:
        raise FileNotFoundError(f"{run_dir} has no .eopack/<app>.cwl: not an eopack run directory")
    cwl = cwls[0]
    doc = load_yaml(cwl)
    app = cwl.stem
    workflow = next(
        (p for p in doc.get("$graph", [doc]) if p.get("class") == "Workflow"), doc.get("$graph", [doc])[0]
    )
    command = (meta / "command.txt").read_text().strip() if (meta / "command.txt").exists() else ""
    job_path = meta / "job.yml"
    job = dict(load_yaml(job_path) or {}) if job_path.exists() else {}
    used = bool(command) and "--no-container" not in command
    if (meta / "wes-run.json").exists():
        params = json.loads((meta / "wes-run.json").read_text()).get("engine_parameters") or {}
        used = "--no-container" not in params
    outputs_json = meta / "outputs.json"
    outputs = json.loads(outputs_json.read_text()) if outputs_json.exists() else {}
    logs = sorted(meta.glob("*.log"))
    info = RunInfo(
        run_dir=run_dir,
        app=app,
        version=str(doc.get("s:softwareVersion", "")),
        label=str(workflow.get("label", app)),
        description=str(workflow.get("doc", "")),
        license=str(doc.get("s:license", "")),
        runner=_runner(meta, command),
        command=command,
        used_containers=used,
        job=job,
        workflow=cwl.relative_to(run_dir),
        inputs=[
            {"id": short_id(str(i["id"])), "type": i.get("type"), "label": i.get("label", "")}
            for i in as_list(workflow.get("inputs"), "id")
        ],
        outputs_params=[
            {"id": short_id(str(o["id"])), "type": o.get("type"), "label": o.get("label", "")}
            for o in as_list(workflow.get("outputs"), "id")
        ],
        images=_images(doc, used),
        log=logs[0] if logs else None,
        succeeded=bool(outputs),
    )
    if (meta / USAGE_FILE).exists():
        info.usage = json.loads((meta / USAGE_FILE).read_text())
    sources: dict[str, None] = {}
    for key in outputs:
        folder = run_dir / key
        if not folder.is_dir():
            continue
        info.output_files += list(_files(run_dir, folder))
        for item in _items(folder):
            info.items.append(item)
            for source in item.get("properties", {}).get("eopack:source_items") or []:
                sources[str(source)] = None
            for link in item.get("links", []):
                if link.get("rel") == "derived_from":
                    sources[Path(str(link["href"])).stem] = None
        info.dask_reports += sorted(folder.rglob("dask-report*.html"))
    info.source_items = list(sources)
    info.input_files = [
        OutputFile(p, p.stat().st_size, sha256(p), "application/geo+json")
        for p in _input_items(job, set(sources))
    ]
    return info
