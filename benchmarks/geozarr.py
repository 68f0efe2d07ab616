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
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
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
            ours = _measure(
                [
                    str(BIN / "geozarr"),
                    "--input-zarr",
                    str(store),
                    "--outdir",
                    str(work / f"ours-{size}"),
                    "--groups",
                    " ".join(GROUPS),
                    *common,
                ]
            )
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
