"""What every run leaves besides its results, asserted the same way for every runner.

``report.html`` (one offline page), ``.eopack/usage.json`` (Calrissian's usage-report shape, figures
within 20 % of what the test measured around ``eopack run``) and ``ro-crate-metadata.json`` (a
Workflow Run RO-Crate whose results are the output files with their real SHA-256).
"""

from __future__ import annotations

import hashlib
import json
import re
import resource
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from rocrate.rocrate import ROCrate

__all__ = ["Measured", "assert_run_record", "measure"]

TOLERANCE = 0.20


@dataclass
class Measured:
    wall: float = 0.0
    cpu: float = 0.0  # user + system of the processes the test waited for (eopack and its children)


@contextmanager
def measure() -> Iterator[Measured]:
    """Wall and CPU of what runs inside, as a benchmark measures ``eopack run`` from outside."""
    m = Measured()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    yield m
    m.wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    m.cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_run_record(
    run_dir: Path,
    app: str,
    runner: str,
    measured: Measured | None = None,
    quicklooks: int = 0,
    validate: Callable[[Path], list[str]] | None = None,
) -> None:
    """The run's report, usage and crate are there and agree with the run (``validate``: the profile check)."""
    page = (run_dir / "report.html").read_text()
    assert f"<h1>{app} " in page and f" on {runner}:" in page, page[:500]
    assert page.count('src="data:image/png;base64,') == quicklooks
    assert not re.search(r'(src|href)="(https?:)?//', page), "the page loads something from the web"

    usage = json.loads((run_dir / ".eopack" / "usage.json").read_text())
    assert usage["runner"] in (runner, runner.split("-")[0]), usage["runner"]
    for key in (
        "start_time",
        "finish_time",
        "total_cpu_hours",
        "total_ram_megabyte_hours",
        "max_parallel_cpus",
    ):
        assert key in usage, key  # Calrissian's usage-report keys
    assert usage["children"], usage
    for child in usage["children"]:
        assert 0 < child["elapsed_seconds"] <= usage["elapsed_seconds"] * 1.01, child
        assert child["cpus"] >= 1 and child["ram_megabytes"] > 0, child
    if measured is not None:
        assert abs(usage["elapsed_seconds"] - measured.wall) <= TOLERANCE * measured.wall, (usage, measured)
        if usage["cpu_seconds"] is not None:
            assert abs(usage["cpu_seconds"] - measured.cpu) <= TOLERANCE * measured.cpu, (usage, measured)

    crate = ROCrate(str(run_dir))
    assert crate.mainEntity is not None and crate.mainEntity.id == f".eopack/{app}.cwl"
    action = next(e for e in crate.get_entities() if e.type == "CreateAction")
    results = {r.id: r for r in action["result"]}
    outputs = json.loads((run_dir / ".eopack" / "outputs.json").read_text())
    files = [p for key in outputs for p in sorted((run_dir / key).rglob("*")) if p.is_file()]
    assert sorted(results) == sorted(p.relative_to(run_dir).as_posix() for p in files)
    for path in files:
        assert results[path.relative_to(run_dir).as_posix()]["sha256"] == _sha256(path)
    if validate is not None:
        issues = validate(run_dir)
        assert issues == [], issues
