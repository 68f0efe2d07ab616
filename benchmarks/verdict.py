"""Each benchmark record's verdict: its target met or not, and for a target not met, the measured
breakdown that explains why and what would close it (issue 22: the committed results file shows
every target met, or for each one that is not, why).

``judge(records)`` adds ``"met": true|false`` to every record whose target is a bound (``<= x`` or
``>= x``) and, where it is not met, ``"why"``: one paragraph built from this run's own numbers (the
cost model's per-date stages, peak memory by months, eopack's own CPU seconds...) followed by the
lever that would close the gap. The levers are what the measurements so far point at (issue 22 and
the closing notes); the numbers are always this run's.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["bound", "judge"]

Record = dict[str, Any]

_BOUND = re.compile(r"^\s*(<=|>=)\s*([0-9]+(?:\.[0-9]+)?)")

LEVERS = {
    "mosaic_marginal": "what closes it: fewer passes over each decoded block (the SCL lookup and the "
    "median's sort are separate passes today) and the band COGs written while the next month computes "
    "on fewer threads",
    "ndvi_marginal": "what closes it: the mosaic's window reader in eo-common for ndvi (each asset "
    "opened and decoded once, no generic lazy cube: odc-stac opens each asset once per chunk), with "
    "odc-stac's GeoBox snapping and solar-day fusion reproduced exactly; the per-date COG and quicklook "
    "are outputs the default keeps, so their encode cost stays in the figure",
    "mosaic_reference": "what closes it: the marginal cost above, and the fixed start-up (imports, "
    "cluster, search) that weighs most on short periods",
    "mosaic_memory": "what closes it: a smaller working set per block task (the tool's BLOCK_SIZE: 768 "
    "pixels peaked 1.19-1.22x where 1024 peaked 1.39x) and a small GDAL block cache; the next month's "
    "blocks compute while this month's COGs are written, and the allocator keeps what the first month freed",
    "runner_overhead": "what closes it: less work in eopack's own process before and after the engine "
    "(imports, the run copy, collecting outputs); the engine's own run is the same command",
    "geozarr": "what closes it: a shorter fixed start-up (imports, opening the tree with chunks); "
    "the verification already runs on the conversion's cluster, chunk by chunk",
    "openeo": "what closes it: openeo-processes-dask's generic execution; the stages below say where",
    "wes": "what closes it: the WES queue's polling and the broker round trips",
}


def bound(target: str) -> tuple[str, float] | None:
    """``("<=", 1.1)`` for a target like ``"<= 1.10 (flat)"``; None for a descriptive target."""
    found = _BOUND.match(str(target))
    return (found.group(1), float(found.group(2))) if found else None


def _top(stages: Mapping[str, float], n: int = 4) -> str:
    ranked = sorted(((v, k) for k, v in stages.items() if v > 0), reverse=True)[:n]
    return ", ".join(f"{k} {v:.3f} s" for v, k in ranked)


def _marginal(r: Record, by: Mapping[str, Record]) -> str:
    name = r["metric"].removesuffix("_marginal_vs_raw_decode")
    model = by.get(f"{name}_cost_model", {}).get("runs", {})
    per_date = model.get("stages_s", {}).get("per_additional_date", {})
    decode = r["baseline"]
    budget = decode / 0.5
    text = (
        f"each added date costs {r['ours']:.3f} s of wall time where the target allows {budget:.3f} s "
        f"(twice the {decode:.3f} s that decoding its pixels takes); per added date, in thread-seconds: "
        f"{_top(per_date)}"
    )
    outputs = per_date.get("encode_write", 0.0) + per_date.get("stac_quicklooks", 0.0)
    if outputs / 2 > budget:  # thread-seconds on 2 cores against wall seconds: the most favourable reading
        text += (
            f". Writing the outputs alone (encode_write + stac_quicklooks, {outputs:.3f} thread-s per date, "
            f"{outputs / 2:.3f} s on both cores) exceeds the whole budget: with the outputs the default "
            "writes, this target cannot be met on this machine however the inputs are read"
        )
    return f"{text}. {LEVERS[f'{name}_marginal']}"


def _reference(r: Record, by: Mapping[str, Record]) -> str:
    model = by.get("mosaic_cost_model", {}).get("runs", {}).get("stages_s", {})
    first = next(iter(model.values()), {}) if model else {}
    fixed = sum(first.get(k, 0.0) for k in ("imports", "cluster", "search"))
    return (
        f"{r['ratio']}x the reference's throughput ({r['ours']} against {r['baseline']} {r['unit']}); "
        f"at the cost model's shorter period the fixed start-up (imports, cluster, search) is {fixed:.2f} s. "
        f"{LEVERS['mosaic_reference']}"
    )


def _memory(r: Record, by: Mapping[str, Record]) -> str:
    ours = r["runs"].get("ours_mib", [])
    ref = r["runs"].get("reference_mib", [])
    return (
        f"peak RSS by number of months: ours {ours} MiB, the reference {ref} MiB; ours rises from the first "
        f"to the second figure and then stays within {max(ours[1:], default=0) - min(ours[1:], default=0):.0f} MiB, "
        f"so it is a step after the first month, not growth with the period. {LEVERS['mosaic_memory']}"
    )


def _overhead(r: Record, by: Mapping[str, Record]) -> str:
    own = r["runs"].get("cpu_s", {}).get("eopack_own_s")
    extra = r["ours"] - r["baseline"]
    text = f"eopack's run took {extra:.2f} s more than the bare engine ({r['ours']:.2f} against {r['baseline']:.2f} s)"
    if own is not None:
        text += f", of which {own:.2f} s is the CPU time of eopack's own process"
    return f"{text}. {LEVERS['runner_overhead']}"


def _geozarr(r: Record, by: Mapping[str, Record]) -> str:
    stages = r["runs"].get("stages_s", {})
    return f"{r['ours']} s against the bare conversion's {r['baseline']} s; our stages: {_top(stages, 6)}. {LEVERS['geozarr']}"


def _openeo(r: Record, by: Mapping[str, Record]) -> str:
    stages = r["runs"].get("stages_s", {})
    return (
        f"{r['ours']} s against ndvi's {r['baseline']} s; openeo-graph: {_top(stages.get('openeo_graph', {}))}; "
        f"ndvi: {_top(stages.get('ndvi', {}))}. {LEVERS['openeo']}"
    )


def _wes(r: Record, by: Mapping[str, Record]) -> str:
    return f"{r['ours']} s through WES against {r['baseline']} s with Toil directly. {LEVERS['wes']}"


EXPLAIN: list[tuple[str, Callable[[Record, Mapping[str, Record]], str]]] = [
    ("_marginal_vs_raw_decode", _marginal),
    ("mosaic_vs_reference_", _reference),
    ("mosaic_peak_rss_", _memory),
    ("runner_overhead_", _overhead),
    ("geozarr_vs_bare_", _geozarr),
    ("openeo_graph_vs_ndvi", _openeo),
    ("wes_vs_toil", _wes),
]


def judge(records: list[Record]) -> list[Record]:
    """Add ``met`` (and ``why`` where not met) to every record with a bound target; returns ``records``."""
    by = {r["metric"]: r for r in records}
    for r in records:
        limit = bound(r.get("target", ""))
        if limit is None or r.get("ratio") is None:
            continue
        op, value = limit
        r["met"] = r["ratio"] <= value if op == "<=" else r["ratio"] >= value
        if not r["met"]:
            explain = next((fn for key, fn in EXPLAIN if key in r["metric"]), None)
            r["why"] = explain(r, by) if explain else "no breakdown is measured for this metric"
    return records
