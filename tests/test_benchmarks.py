"""`make bench` keeps working: its cost model runs each Dask package and times every stage.

Speed is never asserted here (benchmarks/ checks ratios in one run); what is asserted is that the
benchmark still measures: the cost model once wrapped ``dask_client`` without its new ``profile``
argument (every mosaic measurement died with a TypeError) and once timed a median function the
mosaic no longer called (``reduce`` read 0 s), and no test saw either.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def mosaic_bench() -> Iterator[Any]:
    sys.path.insert(0, str(BENCH))
    try:
        import mosaic

        yield mosaic
    finally:
        sys.path.remove(str(BENCH))


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
