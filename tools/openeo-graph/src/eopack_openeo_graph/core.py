"""Run an openEO process graph with the field's libraries, on our data and output conventions.

``openeo-pg-parser-networkx`` parses the graph, ``openeo-processes-dask`` provides the processes,
and two are ours: ``load_collection`` (``load.py``: eo-common's STAC search and float32 loading)
and ``save_result`` (``save.py``: COGs + STAC). The whole graph is checked before any data is read
(structure, then every process id, then the parser), so a bad graph fails in a second with one line
that says where; the computation runs on eo-common's Dask cluster (local, or a Dask Gateway as the
DaskGatewayRequirement asks) and the results appear only when the whole catalog is written.
"""

from __future__ import annotations

import copy
import datetime as dt
import logging
import warnings
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pystac
import xarray as xr

from eopack_eo_common.dask_cluster import dask_client, performance_report
from eopack_eo_common.errors import ToolInputError
from eopack_eo_common.output import staged_output
from eopack_eo_common.stac import save_catalog

from .graph import GraphInputError, ProcessGraphDoc, read_process_graph
from .load import DEFAULT_COLLECTION_MAP, CollectionLoader, parse_collection_map
from .processes import build_registry, check_supported, library_processes
from .save import ResultWriter

__all__ = ["OWN_PROCESSES", "VERSION", "GraphJob", "parse", "run", "supported_processes"]

log = logging.getLogger(__name__)

VERSION = version("eopack-openeo-graph")  # one source: tools/openeo-graph/pyproject.toml
OWN_PROCESSES = ("load_collection", "save_result")


def supported_processes() -> list[str]:
    """Every process id a graph may use, sorted."""
    return sorted({*library_processes(), *OWN_PROCESSES})


@dataclass(frozen=True)
class GraphJob:
    """The tool's inputs, validated."""

    graph: ProcessGraphDoc
    stac_api: str | None = None
    input_catalog: Path | None = None
    collection_map: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_COLLECTION_MAP))
    dask_report: bool = False

    @classmethod
    def from_args(
        cls,
        *,
        process_graph: Path,
        stac_api: str | None = None,
        input_catalog: Path | None = None,
        collection_map: str | None = None,
        dask_report: bool = False,
    ) -> GraphJob:
        if bool(stac_api) == bool(input_catalog):
            raise ToolInputError("give exactly one of stac_api (a URL) or input_catalog (a staged Directory)")
        graph = read_process_graph(Path(process_graph))
        check_supported(graph, supported_processes())
        return cls(graph, stac_api, input_catalog, parse_collection_map(collection_map), dask_report)


def parse(graph: ProcessGraphDoc) -> Any:
    """The parser's ``OpenEOProcessGraph``; its errors become one line naming the graph."""
    from openeo_pg_parser_networkx import OpenEOProcessGraph
    from pydantic import ValidationError

    try:
        # The parser keeps and annotates what it is given; the job's copy stays pristine.
        return OpenEOProcessGraph({"process_graph": copy.deepcopy(graph.flat_graph)})
    except ValidationError as err:
        first = err.errors()[0]
        # loc is in the parser's nested model (process_graph.root.arguments...), not the user's file.
        where = ".".join(str(p) for p in first["loc"])
        raise GraphInputError(
            graph.source, "$.process_graph", f"{first['msg']} (parser location {where})"
        ) from None
    except RecursionError:
        raise GraphInputError(
            graph.source, "$.process_graph", "the from_node references form a cycle"
        ) from None


def _provenance(loader: CollectionLoader) -> Any:
    def sources() -> tuple[list[pystac.Item], dt.datetime | None, dt.datetime | None]:
        items = [item for loaded in loader.loaded for item in loaded.items]
        when = [d for loaded in loader.loaded for d in loaded.datetimes]
        return items, (min(when) if when else None), (max(when) if when else None)

    return sources


def run(job: GraphJob, outdir: Path) -> Path:
    """Execute the graph of ``job`` into ``outdir``; return the path of catalog.json."""
    graph = parse(job.graph)
    with staged_output(outdir) as stage:
        loader = CollectionLoader(job.stac_api, job.input_catalog, job.collection_map)
        writer = ResultWriter(stage, VERSION, _provenance(loader))
        registry = build_registry(
            {"load_collection": loader.load_collection, "save_result": writer.save_result}
        )
        report = stage / "dask-report.html" if job.dask_report else None
        with dask_client(profile=report is not None) as client, performance_report(report):
            log.info("running %s (%d processes) on %s", job.graph.source, len(job.graph.processes), client)
            with warnings.catch_warnings():
                # filter_temporal turns the parser's tz-aware UTC instants into numpy's naive UTC,
                # which is right for our UTC time axis; numpy's warning about it is noise here.
                warnings.filterwarnings("ignore", "no explicit representation of timezones", UserWarning)
                result = graph.to_callable(process_registry=registry)()
            if not writer.items:
                if not isinstance(result, xr.DataArray):
                    raise ToolInputError(
                        "the process graph saved nothing and its result is not a data cube; "
                        "end it with save_result(format='GTiff')"
                    )
                log.info("the graph has no save_result; saving its result as GTiff")
                writer.save_result(result, "GTiff")
        catalog = pystac.Catalog(
            "openeo-graph",
            f"Results of the openEO process graph {Path(job.graph.source).name}",
            title="openEO process graph results",
        )
        for item in writer.items:
            catalog.add_item(item)
        save_catalog(catalog, stage)
    return outdir / "catalog.json"
