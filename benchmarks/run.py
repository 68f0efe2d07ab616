"""`make bench`: every benchmark of DESIGN/issue 15, with its baseline measured in the same run.

Writes ``benchmarks/results/<date>.json`` (a list of records ``{"metric", "ours", "baseline",
"ratio", "unit", "target", "runs"}``) and ``benchmarks/results/<date>-scaling.png``, and prints a
table. Each figure is the median of N runs (min/max in ``runs``). Ratios are defined so the target
reads plainly: ``mosaic_vs_reference`` = reference time / our time (≥ 5), ``runner_overhead_*`` =
eopack time / bare runner time (≤ 1.10), ``*_vs_raw_decode`` = our throughput / decode throughput
(≥ 0.5), ``mosaic_peak_rss_12m_vs_1m`` = peak RSS at 12 months / at 1 month (≤ 1.5: flat).

    uv run python benchmarks/run.py            # full (about 10 minutes on 2 cores)
    uv run python benchmarks/run.py --quick    # smaller data, fewer repeats (a smoke test)
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import mosaic as mosaic_bench  # noqa: E402

PY = Path(sys.executable)
BIN = PY.parent
ENV = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "PYTHONWARNINGS": "ignore"}


def _timed(cmd: Sequence[str], cwd: Path = ROOT) -> float:
    began = time.perf_counter()
    proc = subprocess.run(
        list(cmd), cwd=cwd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])}... failed: {proc.stderr.strip().splitlines()[-1:]}")
    return time.perf_counter() - began


def _stats(values: list[float]) -> dict[str, Any]:
    return {
        "n": len(values),
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "values": [round(v, 4) for v in values],
    }


def record(
    metric: str,
    ours: list[float],
    baseline: list[float],
    unit: str,
    target: str,
    ratio: Callable[[float, float], float],
) -> dict[str, Any]:
    o, b = statistics.median(ours), statistics.median(baseline)
    return {
        "metric": metric,
        "ours": round(o, 4),
        "baseline": round(b, 4),
        "ratio": round(ratio(o, b), 3),
        "unit": unit,
        "target": target,
        "runs": {"ours": _stats(ours), "baseline": _stats(baseline)},
    }


def _skipped(metric: str, reason: str, unit: str, target: str) -> dict[str, Any]:
    return {
        "metric": metric,
        "ours": None,
        "baseline": None,
        "ratio": None,
        "unit": unit,
        "target": target,
        "runs": {},
        "skipped": reason,
    }


# --------------------------------------------------------------------------- runner overhead


def _overhead(runner: str, app: str, job: Path, repeats: int) -> tuple[list[float], list[float]]:
    """eopack run vs the bare engine on the exact copy eopack ran (same package, same job)."""
    ours, bare = [], []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as tmp:
            run_dir = Path(tmp) / "eopack"
            ours.append(
                _timed(
                    [
                        str(PY),
                        "-m",
                        "eopack",
                        "run",
                        app,
                        str(job),
                        "--runner",
                        runner,
                        "--no-container",
                        "--outdir",
                        str(run_dir),
                        "-q",
                    ]
                )
            )
            meta = run_dir / ".eopack"
            name = Path(app).stem  # an app name or a path to a .cwl file
            cwl, job_copy = meta / f"{name}.cwl", meta / "job.yml"
            out = Path(tmp) / "bare"
            if runner == "cwltool":
                cmd = [str(BIN / "cwltool"), "--no-container", "--outdir", str(out)]
            else:
                cmd = [
                    str(BIN / "toil-cwl-runner"),
                    "--batchSystem",
                    "single_machine",
                    "--no-container",
                    "--jobStore",
                    str(Path(tmp) / "js"),
                    "--workDir",
                    tmp,
                    "--outdir",
                    str(out),
                ]
            # the same forwarded variables as eopack (the package copy already holds the lowered Dask env)
            bare.append(_timed([*cmd, f"{cwl}#{name}", str(job_copy)]))
    return ours, bare


def runner_overheads(repeats: int) -> list[dict[str, Any]]:
    from eopack.runners import REGISTRY

    trivial = ROOT / "tests/data/packages/dask-echo/dask-echo.cwl"
    trivial_job = HERE / "results" / "trivial-job.yml"
    trivial_job.parent.mkdir(exist_ok=True)
    trivial_job.write_text("workers: 2\nmemory: 1G\n")
    ndvi_job = ROOT / "app-packages/ndvi/examples/default.yml"
    subprocess.run(
        [str(PY), "-m", "eopack", "sample-data"], cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL, check=True
    )
    out = []
    for runner, metric in (("cwltool", "runner_overhead_cwltool"), ("toil", "runner_overhead_toil")):
        if runner not in REGISTRY:
            out.append(_skipped(metric, f"runner {runner} is not implemented yet", "s", "<= 1.10"))
            continue
        for label, pkg, job, n in (
            ("trivial", str(trivial), trivial_job, repeats),
            ("ndvi", "ndvi", ndvi_job, max(1, repeats - 2)),
        ):
            ours, bare = _overhead(runner, pkg, job, n)
            rec = record(
                f"{metric}" + ("" if label == "trivial" else f"_{label}"),
                ours,
                bare,
                "s",
                "<= 1.10",
                lambda o, b: o / b,
            )
            out.append(rec)
            print(f"  {rec['metric']}: {rec['ratio']}", file=sys.stderr)
    return out


def wes_vs_toil(repeats: int) -> dict[str, Any]:
    from eopack.runners import REGISTRY

    if "wes" not in REGISTRY or "toil" not in REGISTRY:
        return _skipped("wes_vs_toil", "the WES or Toil runner is not implemented yet", "s", "<= 1.5")
    try:
        from eopack.services import wes  # type: ignore[attr-defined]
    except ImportError as err:
        return _skipped("wes_vs_toil", f"WES service module missing: {err}", "s", "<= 1.5")
    job = HERE / "results" / "trivial-job.yml"
    trivial = str(ROOT / "tests/data/packages/dask-echo/dask-echo.cwl")
    stack = wes.up()  # type: ignore[attr-defined]
    try:
        via_wes, direct = [], []
        for _ in range(repeats):
            with tempfile.TemporaryDirectory() as tmp:
                via_wes.append(
                    _timed(
                        [
                            str(PY),
                            "-m",
                            "eopack",
                            "run",
                            trivial,
                            str(job),
                            "--runner",
                            "wes",
                            "--wes-url",
                            stack.url,
                            "--outdir",
                            f"{tmp}/w",
                            "-q",
                        ]
                    )
                )
                direct.append(
                    _timed(
                        [
                            str(PY),
                            "-m",
                            "eopack",
                            "run",
                            trivial,
                            str(job),
                            "--runner",
                            "toil",
                            "--no-container",
                            "--outdir",
                            f"{tmp}/t",
                            "-q",
                        ]
                    )
                )
        return record("wes_vs_toil", via_wes, direct, "s", "<= 1.5 (submit to COMPLETE)", lambda o, b: o / b)
    finally:
        wes.down()  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- processing


def processing(quick: bool) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    tile = 1200 if quick else 2048
    months_list = [1, 3] if quick else [1, 3, 6, 12]
    data = mosaic_bench._data(tile, max(months_list))
    aoi = mosaic_bench._aoi(tile)
    scaling: dict[str, Any] = {"months": months_list, "ours": [], "reference": [], "decode": []}
    for months in months_list:
        for kind in ("decode", "ours", "reference"):
            r = mosaic_bench._measure(kind, data, aoi, months)
            r["mpix_dates_per_s"] = r["pixels"] * r["dates"] / r["wall_s"] / 1e6
            scaling[kind].append(r)
            print(
                f"  mosaic {months:>2} month(s) {kind:<9} {r['wall_s']:6.2f} s {r['mpix_dates_per_s']:6.1f} "
                f"Mpix·dates/s {r['peak_rss_mib']:6.0f} MiB",
                file=sys.stderr,
            )
    # headline figures at 3 months (N runs each)
    n = 1 if quick else 3
    head = 3 if 3 in months_list else months_list[-1]
    ours = [mosaic_bench._measure("ours", data, aoi, head) for _ in range(n)]
    ref = [mosaic_bench._measure("reference", data, aoi, head) for _ in range(n)]
    dec = [mosaic_bench._measure("decode", data, aoi, head) for _ in range(n)]

    def rate(r: dict[str, Any]) -> float:
        return r["pixels"] * r["dates"] / r["wall_s"] / 1e6

    out = [
        record(
            "mosaic_vs_reference",
            [rate(r) for r in ours],
            [rate(r) for r in ref],
            "Mpix·dates/s",
            ">= 5",
            lambda o, b: o / b,
        ),
        record(
            "mosaic_vs_raw_decode",
            [rate(r) for r in ours],
            [rate(r) for r in dec],
            "Mpix·dates/s",
            ">= 0.5",
            lambda o, b: o / b,
        ),
    ]
    first, last = scaling["ours"][0]["peak_rss_mib"], scaling["ours"][-1]["peak_rss_mib"]
    out.append(
        {
            "metric": f"mosaic_peak_rss_{months_list[-1]}m_vs_{months_list[0]}m",
            "ours": round(last, 1),
            "baseline": round(first, 1),
            "ratio": round(last / first, 3),
            "unit": "MiB",
            "target": "<= 1.5 (flat)",
            "runs": {
                "reference_mib": [round(r["peak_rss_mib"], 1) for r in scaling["reference"]],
                "ours_mib": [round(r["peak_rss_mib"], 1) for r in scaling["ours"]],
            },
        }
    )
    out.append(_ndvi_vs_decode(data, aoi, head, n))
    out.append(_tiles(quick))
    return out, scaling


def _ndvi_vs_decode(data: Path, aoi: str, months: int, n: int) -> dict[str, Any]:
    """NDVI (per date) throughput vs decoding its three assets (B04, B08, SCL)."""
    from eopack_ndvi.core import NdviJob, run

    start, end = mosaic_bench._dates(months)
    items = mosaic_bench._items(data, aoi, months, None)
    ours, decode = [], []
    for _ in range(n):
        with tempfile.TemporaryDirectory() as tmp:
            job = NdviJob.from_args(
                aoi=aoi, start_date=start, end_date=end, resolution=10, input_catalog=data
            )
            began = time.perf_counter()
            run(job, Path(tmp) / "o")
            wall = time.perf_counter() - began
            tif = next((Path(tmp) / "o").glob("*/ndvi.tif"))
            import rasterio

            with rasterio.open(tif) as src:
                pixels = src.width * src.height
        dates = len({i.datetime.date() for i in items})
        ours.append(pixels * dates / wall / 1e6)
        r = mosaic_bench._measure("decode", data, aoi, months)
        # the mosaic decode reads 5 assets; NDVI needs 3 of them
        decode.append(r["pixels"] * r["dates"] / (r["wall_s"] * 3 / 5) / 1e6)
    return record("ndvi_vs_raw_decode", ours, decode, "Mpix·dates/s", ">= 0.5", lambda o, b: o / b)


def _tiles(quick: bool) -> dict[str, Any]:
    """Scaling with area: 1 vs 4 tiles, one month."""
    size = 1200  # the generator needs tile-size x resolution >= 12 km
    out = ROOT / "data" / "bench" / f"s2-{size}-4tiles"
    script = BIN / "eopack-sample-data"
    subprocess.run(
        [
            str(script),
            "--out",
            str(out),
            "--tile-size",
            str(size),
            "--resolution",
            "10",
            "--months",
            "1",
            "--tiles",
            "4",
        ],
        env=ENV,
        stdout=subprocess.DEVNULL,
        check=True,
    )
    from rasterio.warp import transform_bounds

    results = {}
    for tiles in (1, 4):
        east = 682000 + size * 10 * tiles - 1200 * (tiles - 1) - 1300
        w, s, e, n = transform_bounds(
            "EPSG:32632", "EPSG:4326", 682100, 5164000 - size * 10 + 100, east, 5163900
        )
        aoi = f"{w + 0.01:.6f},{s + 0.01:.6f},{e - 0.01:.6f},{n - 0.01:.6f}"
        results[tiles] = mosaic_bench._measure("ours", out, aoi, 1)
    one, four = results[1], results[4]
    return {
        "metric": "mosaic_4_tiles_vs_1_tile",
        "ours": round(four["wall_s"], 3),
        "baseline": round(one["wall_s"], 3),
        "ratio": round(four["wall_s"] / one["wall_s"], 3),
        "unit": "s",
        "target": "about 4 (linear in area); memory "
        + f"{one['peak_rss_mib']:.0f} -> {four['peak_rss_mib']:.0f} MiB",
        "runs": {"pixels": [one["pixels"], four["pixels"]]},
    }


def plot(scaling: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for kind, style in (("ours", "o-"), ("reference", "s--"), ("decode", "^:")):
        left.plot(scaling["months"], [r["wall_s"] for r in scaling[kind]], style, label=kind)
        right.plot(scaling["months"], [r["peak_rss_mib"] for r in scaling[kind]], style, label=kind)
    left.set(xlabel="months", ylabel="wall time (s)", title="cloudless-mosaic: time")
    right.set(xlabel="months", ylabel="peak RSS (MiB)", title="cloudless-mosaic: memory")
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small data, one repeat: a smoke test")
    parser.add_argument("--repeats", type=int, default=5, help="runs per runner-overhead figure (default 5)")
    args = parser.parse_args()
    repeats = 2 if args.quick else args.repeats
    began = time.perf_counter()
    print("runner overhead ...", file=sys.stderr)
    records = runner_overheads(repeats)
    print("WES vs Toil ...", file=sys.stderr)
    records.append(wes_vs_toil(max(1, repeats - 2)))
    print("processing ...", file=sys.stderr)
    processed, scaling = processing(args.quick)
    records += processed
    out_dir = HERE / "results"
    out_dir.mkdir(exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d")
    (out_dir / f"{stamp}.json").write_text(json.dumps(records, indent=2))
    plot(scaling, out_dir / f"{stamp}-scaling.png")
    print(f"\n{'metric':<34} {'ours':>10} {'baseline':>10} {'ratio':>8}  target")
    for r in records:
        if r.get("skipped"):
            print(f"{r['metric']:<34} {'-':>10} {'-':>10} {'-':>8}  skipped: {r['skipped']}")
        else:
            print(
                f"{r['metric']:<34} {r['ours']:>10} {r['baseline']:>10} {r['ratio']:>8}  {r['target']} ({r['unit']})"
            )
    print(f"\nwrote {out_dir / f'{stamp}.json'} and the scaling plot in {time.perf_counter() - began:.0f} s")
    shutil.rmtree(HERE / "__pycache__", ignore_errors=True)


if __name__ == "__main__":
    main()
