"""Wrap an application package with the stage-in/stage-out pair, the way the platform does.

ZOO-Project DRU wraps every deployed package with ``eoap-cwlwrap``: each Directory (File) input
becomes a URI staged in by a stage-in step, each Directory output is staged out to S3 and the
workflow returns the catalog URL. ``wrap`` does the same with our own ``stage-in`` and ``stage-out``
packages (or any others that follow eoap-cwlwrap's component contracts), so the wrapped workflow
can be run by every runner (``eopack run <file> job.yml``) and checked end to end here.

The wrapped document keeps the published eoap schema name (the platforms look for it); the copies
eopack runs point it at the local copy (``package.offline_schemas``), so nothing is fetched.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .package import Package, dump_yaml, find_package, load_yaml, offline_loading_options

__all__ = ["shorten_ids", "wrap_package"]


def _fragment(value: Any) -> str:
    return str(value).rsplit("#", 1)[-1]


def _relative(value: str) -> str:
    """``file:...#wf/step/out`` -> ``step/out``; ``file:...#wf/input`` -> ``input``."""
    parts = _fragment(value).split("/")
    return "/".join(parts[1:]) if len(parts) > 1 else parts[0]


def shorten_ids(process: Any) -> Any:
    """Ids as eoap-cwlwrap writes and expects them (``main``, ``reference``, ``step/out``), not full
    file URIs: it writes them into ``run:``, ``source:`` and ``when:`` expressions."""
    process.id = _fragment(process.id)
    for param in [*process.inputs, *process.outputs]:
        param.id = _fragment(param.id).rsplit("/", 1)[-1]
        if getattr(param, "outputSource", None):
            src = param.outputSource
            param.outputSource = [_relative(s) for s in src] if isinstance(src, list) else _relative(src)
    for step in getattr(process, "steps", None) or []:
        step.id = _fragment(step.id).rsplit("/", 1)[-1]
        step.run = f"#{_fragment(step.run)}" if isinstance(step.run, str) else step.run
        step.out = [_fragment(o).rsplit("/", 1)[-1] if isinstance(o, str) else o for o in step.out]
        for binding in step.in_:
            binding.id = _fragment(binding.id).rsplit("/", 1)[-1]
            if binding.source:
                src = binding.source
                binding.source = [_relative(s) for s in src] if isinstance(src, list) else _relative(src)
    return process


def _load_all(path: Path) -> list[Any]:
    """Every process of a ``$graph`` document, parsed offline (the eoap schema from the local copy)."""
    from cwl_utils.parser import load_document_by_uri

    options = offline_loading_options()
    loaded = load_document_by_uri(path.resolve().as_uri(), loadingOptions=options, load_all=True)
    return [shorten_ids(p) for p in (loaded if isinstance(loaded, list) else [loaded])]


def _pick(processes: list[Any], pid: str) -> Any:
    for proc in processes:
        if proc.id == pid:
            return proc
    raise KeyError(pid)


def wrap_package(
    app: Package,
    output: Path,
    stage_in: Package | None = None,
    stage_out: Package | None = None,
) -> Path:
    """Write ``app`` wrapped with the staging pair to ``output``; the orchestrator's id is its stem.

    Directory inputs get ``stage_in`` (default: our ``stage-in`` package), File inputs its
    ``stage-in-file`` tool, the Directory output ``stage_out`` (default: our ``stage-out``).
    """
    from cwl_utils.parser import save
    from eoap_cwlwrap import wrap
    from loguru import logger

    logger.disable("eoap_cwlwrap")
    stage_in = stage_in or find_package("stage-in")
    stage_out = stage_out or find_package("stage-out")
    in_procs, out_procs = _load_all(stage_in.path), _load_all(stage_out.path)
    app_procs = _load_all(app.path)
    main = wrap(
        workflow=_pick(app_procs, app.name),
        directory_stage_in=_pick(in_procs, stage_in.name),
        file_stage_in=_pick(in_procs, f"{stage_in.name}-file"),
        directory_stage_out=_pick(out_procs, stage_out.name),
    )
    main.id = output.stem
    # Through JSON: plain types only (cwl_utils hands back ruamel scalars our dumper does not know).
    graph = json.loads(json.dumps(save([main, *in_procs, *out_procs, *app_procs], relative_uris=False)))
    doc = {
        "cwlVersion": "v1.2",
        "$namespaces": {**(app.doc.get("$namespaces") or {})},
        **{k: v for k, v in app.doc.items() if str(k).startswith("s:")},
        "$graph": graph if isinstance(graph, list) else graph.get("$graph", [graph]),
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    dump_yaml(doc, output)
    # Round-trip through the YAML loader so what was written is what runs.
    load_yaml(output)
    return output
