"""`make bench` keeps working: its cost model runs each Dask package and times every stage.

Speed is never asserted here (benchmarks/ checks ratios in one run); what is asserted is that the
benchmark still measures: the cost model once wrapped ``dask_client`` without its new ``profile``
argument (every mosaic measurement died with a TypeError) and once timed a median function the
mosaic no longer called (``reduce`` read 0 s), and no test saw either.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def _bench_module(name: str) -> Iterator[Any]:
    """A module of benchmarks/ (they import each other by plain name), importable for the test."""
    sys.path.insert(0, str(BENCH))
    try:
        yield importlib.import_module(name)
    finally:
        sys.path.remove(str(BENCH))


@pytest.fixture(scope="module")
def mosaic_bench() -> Iterator[Any]:
    yield from _bench_module("mosaic")


@pytest.mark.parametrize("package", ["ours", "ndvi"])
def test_the_cost_model_times_every_stage_of_a_run(mosaic_bench: Any, package: str) -> None:
    data, aoi = mosaic_bench._data(1200, 1), mosaic_bench._aoi(1200)  # the --quick size, one month
    result = mosaic_bench._measure(package, data, aoi, 1)  # a fresh process, as `make bench` runs it
    stages = result["stages_s"]
    measured = ["imports", "cluster", "search", "open", "read_decode", "encode_write", "stac_quicklooks"]
    if package == "ours":
        measured.append("reduce")  # the mosaic's median
    assert all(stages[s] > 0 for s in measured), stages
    assert result["pixels"] > 1_000_000 and result["dates"] >= 1 and result["peak_rss_mib"] > 0
    assert result["wall_s"] > 0 and sum(stages.values()) > 0


@pytest.fixture(scope="module")
def verdict() -> Iterator[Any]:
    yield from _bench_module("verdict")


def test_a_bound_target_is_judged_and_a_missed_one_says_why_with_its_numbers(verdict: Any) -> None:
    assert verdict.bound("<= 1.10 (flat)") == ("<=", 1.1) and verdict.bound(">= 6") == (">=", 6.0)
    assert verdict.bound("breakdown: where the time goes") is None
    records = [
        {"metric": "runner_overhead_cwltool", "ours": 1.3, "baseline": 1.0, "ratio": 1.3, "unit": "s",
         "target": "<= 1.10", "runs": {"cpu_s": {"eopack_own_s": 0.21}}},
        {"metric": "runner_overhead_toil", "ours": 1.0, "baseline": 1.0, "ratio": 1.0, "unit": "s",
         "target": "<= 1.10", "runs": {}},
        {"metric": "ndvi_marginal_vs_raw_decode", "ours": 0.8, "baseline": 0.04, "ratio": 0.05,
         "unit": "s", "target": ">= 0.5 (throughput)", "runs": {}},
        {"metric": "ndvi_cost_model", "ours": 9.0, "baseline": 1.0, "ratio": 9.0, "unit": "s",
         "target": "breakdown: where the time goes",
         "runs": {"stages_s": {"per_additional_date": {"encode_write": 0.42, "read_decode": 0.29}}}},
        {"metric": "geozarr_vs_bare_2048", "ours": None, "baseline": None, "ratio": None, "unit": "s",
         "target": "<= 1.10", "runs": {}, "skipped": "failed"},
    ]  # fmt: skip
    by = {r["metric"]: r for r in verdict.judge(records)}
    assert by["runner_overhead_toil"]["met"] is True and "why" not in by["runner_overhead_toil"]
    slow = by["runner_overhead_cwltool"]
    assert slow["met"] is False and "0.30 s more" in slow["why"] and "0.21 s" in slow["why"]
    ndvi = by["ndvi_marginal_vs_raw_decode"]
    assert ndvi["met"] is False and "0.080 s" in ndvi["why"]  # the budget: twice the decode
    assert "encode_write 0.420 s, read_decode 0.290 s" in ndvi["why"] and "what closes it" in ndvi["why"]
    assert "met" not in by["ndvi_cost_model"] and "met" not in by["geozarr_vs_bare_2048"]


def test_every_bound_metric_of_the_committed_results_has_its_own_explanation(verdict: Any) -> None:
    """Were any target missed, its record would say why from its own figures, never a fallback."""
    import copy
    import json

    newest = max((BENCH / "results").glob("????-??-??.json"))
    records = json.loads(newest.read_text())
    bounded = [r for r in records if verdict.bound(r.get("target", "")) and r.get("ratio") is not None]
    assert bounded, newest
    for r in bounded:
        missed = copy.deepcopy(r)
        op, value = verdict.bound(r["target"])
        missed["ratio"] = value * 2 if op == "<=" else value / 2
        judged = verdict.judge([*copy.deepcopy(records), missed])[-1]
        assert judged["met"] is False and "no breakdown" not in judged["why"], judged
        assert "what closes it" in judged["why"], judged["why"]
