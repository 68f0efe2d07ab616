"""Benchmark: the geozarr package's tool vs the bare ``eopf-geozarr convert`` CLI, same inputs.

For each r10m size (default 512, 2048, 4096) a synthetic EOPF product is generated (Zarr v3,
three reflectance groups), then both commands convert the three groups with the same
``--spatial-chunk`` and ``--min-dimension``; the bare CLI gets ``--no-s2-optimized`` so both
take the generic path. Each command runs in its own subprocess; its wall time and peak RSS
(``os.wait4`` rusage: the process and the descendants it waited for) are measured.

Ours does more work than the bare CLI: preflight, group/CRS checks, a Dask LocalCluster,
the overview-grid fix, a full read-back verification of level 0, and the STAC item.

    python benchmarks/geozarr.py --sizes 512,2048 > geozarr.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BIN = Path(sys.executable).parent
GROUPS = [
    "/measurements/reflectance/r10m",
    "/measurements/reflectance/r20m",
    "/measurements/reflectance/r60m",
]


def _measure(cmd: list[str]) -> dict[str, Any]:
    started = time.perf_counter()
    # Python's default bytecode caching, as on a user's machine (see run.py)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    assert proc.stderr is not None
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    err = proc.stderr.read().decode(errors="replace")
    proc.stderr.close()
    code = os.waitstatus_to_exitcode(status)
    result: dict[str, Any] = {
        "exit_code": code,
        "wall_s": round(wall, 2),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
        "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),  # Linux: KiB
    }
    if code != 0:
        result["stderr_tail"] = err.strip().splitlines()[-3:]
    return result


STEPS = ("open_tree", "check_crs", "convert", "fix_overview_grids", "verify", "build_item", "save_catalog")


def _ours_with_stages(argv: list[str], stages_file: Path) -> int:
    """The ``geozarr`` console script's ``main``, with the seconds of each step of ``core.run`` (and of
    the imports and the Dask cluster start) written to ``stages_file``."""
    import contextlib

    began = time.perf_counter()
    from eopack_geozarr import cli, core

    seconds: dict[str, float] = {"imports": round(time.perf_counter() - began, 3)}

    def timed(name: str, fn: Any) -> Any:
        def inner(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                seconds[name] = round(seconds.get(name, 0.0) + time.perf_counter() - start, 3)

        return inner

    for name in STEPS:
        if hasattr(core, name):
            setattr(core, name, timed(name, getattr(core, name)))
    client_cm = core.dask_client

    @contextlib.contextmanager
    def dask_client(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        with client_cm(*args, **kwargs) as client:
            seconds["cluster"] = round(time.perf_counter() - start, 3)
            yield client

    core.dask_client = dask_client  # type: ignore[assignment]
    code = cli.main(argv)
    stages_file.write_text(json.dumps(seconds))
    return code


def run(sizes: list[int], min_dimension: int, spatial_chunk: int, keep: bool) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="geozarr-bench-"))
    rows = []
    try:
        for size in sizes:
            product = work / f"in-{size}"
            subprocess.run(
                [str(BIN / "eopack-sample-data"), "--geozarr", "--out", str(product), "--size", str(size)],
                check=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            store = product / "sample-eopf.zarr"
            common = ["--spatial-chunk", str(spatial_chunk), "--min-dimension", str(min_dimension)]
            stages_file = work / f"stages-{size}.json"
            ours = _measure(
                [
                    sys.executable,
                    __file__,
                    "--stages-to",
                    str(stages_file),
                    "--",
                    "--input-zarr",
                    str(store),
                    "--outdir",
                    str(work / f"ours-{size}"),
                    "--groups",
                    " ".join(GROUPS),
                    *common,
                ]
            )
            if stages_file.exists():
                ours["stages_s"] = json.loads(stages_file.read_text())
            bare = _measure(
                [
                    str(BIN / "eopf-geozarr"),
                    "convert",
                    str(store),
                    str(work / f"bare-{size}.zarr"),
                    "--groups",
                    *GROUPS,
                    "--no-s2-optimized",
                    *common,
                ]
            )
            rows.append(
                {
                    "size": size,
                    "input_mib": round(
                        sum(f.stat().st_size for f in store.rglob("*") if f.is_file()) / 1024**2, 1
                    ),
                    "eopack_geozarr": ours,
                    "eopf_geozarr_cli": bare,
                }
            )
            print(
                f"size {size}: ours {ours['wall_s']} s / {ours['peak_rss_mib']} MiB, "
                f"bare {bare['wall_s']} s / {bare['peak_rss_mib']} MiB",
                file=sys.stderr,
            )
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
    return {
        "benchmark": "geozarr",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "parameters": {"groups": GROUPS, "min_dimension": min_dimension, "spatial_chunk": spatial_chunk},
        "results": rows,
    }


def main() -> int:
    if sys.argv[1:2] == ["--stages-to"]:  # one run of ours, in this process (see _ours_with_stages)
        return _ours_with_stages(sys.argv[4:], Path(sys.argv[2]))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="512,2048,4096", help="r10m sizes in pixels (default %(default)s)")
    parser.add_argument("--min-dimension", type=int, default=256)
    parser.add_argument("--spatial-chunk", type=int, default=1024)
    parser.add_argument("--keep", action="store_true", help="keep the temporary inputs and outputs")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    print(json.dumps(run(sizes, args.min_dimension, args.spatial_chunk, args.keep), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
