"""Where a Dask package's time goes: timing spans around the library calls each stage goes through.

Nothing in the tools changes: before a run, ``install()`` wraps the functions every stage passes
through (in their defining module, and wherever a tool imported them by name), and a wrapper adds
its *exclusive* time (minus the time of wrapped calls nested in it) to its stage, per thread:

- ``search``: ``eopack_eo_common.search.select_items``
- ``open``: ``rasterio.open``
- ``read_decode``: ``DatasetReader.read`` / ``WarpedVRT.read`` / ``rasterio.warp.reproject`` (GDAL
  decode, and the warp when the grids differ)
- ``reduce``: the mosaic's median (``blocks._middle_pair``, what ``masked_median`` and the tasks call)
- ``mask_and_block``: the rest of the Dask tasks' compute time (SCL lookup, stacking, NDVI
  arithmetic, graph overhead): every task's measured compute time minus the spans above inside it
- ``encode_write``: ``eopack_eo_common.raster.write_cog``
- ``stac_quicklooks``: ``quicklook``, ``save_catalog`` and the band statistics
- ``cluster``: entering ``dask_client()`` (LocalCluster start); ``imports``: importing the tool

Stages in the Dask worker threads run side by side (2 threads), so they are thread-seconds and may
add up to more than the wall time; ``wall_s`` is the whole ``run()``.
"""

from __future__ import annotations

import contextlib
import functools
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import Any

STAGES = (
    "imports",
    "cluster",
    "search",
    "open",
    "read_decode",
    "mask_and_block",
    "reduce",
    "encode_write",
    "stac_quicklooks",
)


class Spans:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self.in_tasks: dict[str, float] = defaultdict(float)  # spans inside Dask worker threads
        self._local = threading.local()
        self._lock = threading.Lock()

    def wrap(self, stage: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            stack = self._local.__dict__.setdefault("stack", [])
            stack.append(0.0)
            began = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - began
                own = elapsed - stack.pop()
                if stack:
                    stack[-1] += elapsed
                worker = "Dask-Default-Threads" in threading.current_thread().name
                with self._lock:
                    self.seconds[stage] += own
                    self.calls[stage] += 1
                    if worker:
                        self.in_tasks[stage] += own

        timed.__wrapped_stage__ = stage  # type: ignore[attr-defined]
        return timed


def _replace(owner: Any, name: str, stage: str, spans: Spans) -> bool:
    original = getattr(owner, name, None)
    if original is None or hasattr(original, "__wrapped_stage__"):
        return False
    wrapped = spans.wrap(stage, original)
    setattr(owner, name, wrapped)
    # tools that did `from x import f` hold their own reference: replace it there too
    for module in list(sys.modules.values()):
        mod_name = getattr(module, "__name__", "") or ""
        if not mod_name.startswith(("eopack_", "odc", "stackstac")):
            continue
        for attr, value in list(vars(module).items()):
            if value is original:
                setattr(module, attr, wrapped)
    return True


@contextlib.contextmanager
def _cluster_probe(
    original: Callable[..., Any], spans: Spans, tasks: dict[str, float], *args: Any, **kwargs: Any
) -> Iterator[Any]:
    began = time.perf_counter()
    with original(*args, **kwargs) as client:  # the tool's own arguments (e.g. profile=) pass through
        spans.seconds["cluster"] += time.perf_counter() - began
        try:
            yield client
        finally:
            scheduler = getattr(getattr(client, "cluster", None), "scheduler", None)
            for name, prefix in getattr(scheduler, "task_prefixes", {}).items():
                tasks[name] += float(prefix.all_durations.get("compute", 0.0))


def install(tool_module: str) -> tuple[Spans, dict[str, float]]:
    """Import ``tool_module`` (timed as ``imports``) and wrap the stage functions; return the spans."""
    spans = Spans()
    tasks: dict[str, float] = defaultdict(float)
    began = time.perf_counter()
    __import__(tool_module)
    spans.seconds["imports"] = time.perf_counter() - began
    import rasterio
    import rasterio.io
    import rasterio.vrt
    import rasterio.warp

    from eopack_eo_common import dask_cluster, raster, search, stac

    _replace(search, "select_items", "search", spans)
    _replace(rasterio, "open", "open", spans)
    _replace(rasterio.io.DatasetReader, "read", "read_decode", spans)
    _replace(rasterio.vrt.WarpedVRT, "read", "read_decode", spans)
    _replace(rasterio.warp, "reproject", "read_decode", spans)  # odc-stac decodes+warps through it
    _replace(raster, "write_cog", "encode_write", spans)
    for name in ("quicklook", "band_statistics"):
        _replace(raster, name, "stac_quicklooks", spans)
    _replace(stac, "save_catalog", "stac_quicklooks", spans)
    blocks = sys.modules.get("eopack_cloudless_mosaic.blocks")
    if blocks is not None:
        # the median itself: mosaic_block calls _middle_pair directly (masked_median wraps it)
        _replace(blocks, "_middle_pair", "reduce", spans)
    mosaic_core = sys.modules.get("eopack_cloudless_mosaic.core")
    if mosaic_core is not None:
        _replace(mosaic_core, "_statistics", "stac_quicklooks", spans)

    original = dask_cluster.dask_client
    probe = functools.partial(_cluster_probe, original, spans, tasks)
    dask_cluster.dask_client = probe  # type: ignore[assignment]
    for module in list(sys.modules.values()):
        if (getattr(module, "__name__", "") or "").startswith("eopack_") and (
            getattr(module, "dask_client", None) is original
        ):
            module.dask_client = probe  # type: ignore[attr-defined]
    return spans, tasks


def summary(spans: Spans, tasks: dict[str, float], wall: float) -> dict[str, Any]:
    """Seconds per stage; ``mask_and_block`` is the tasks' compute time not in another span."""
    task_total = sum(tasks.values())
    inside = sum(spans.in_tasks.values())
    stages = {name: round(spans.seconds.get(name, 0.0), 4) for name in STAGES}
    stages["mask_and_block"] = round(max(task_total - inside, 0.0), 4)
    return {
        "wall_s": wall,
        "stages_s": stages,
        "task_compute_s": round(task_total, 4),
        "calls": dict(spans.calls),
    }


def marginal(small: dict[str, Any], large: dict[str, Any]) -> dict[str, Any]:
    """Per additional input date: (large - small) / (dates_large - dates_small), for wall and stages."""
    extra = large["dates"] - small["dates"]
    per = {
        name: round((large["stages_s"][name] - small["stages_s"][name]) / extra, 5)
        for name in large["stages_s"]
    }
    return {
        "dates": [small["dates"], large["dates"]],
        "wall_s_per_date": round((large["wall_s"] - small["wall_s"]) / extra, 5),
        "stages_s_per_date": per,
    }
