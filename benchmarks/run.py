"""`make bench`: every benchmark of DESIGN/issue 15, with its baseline measured in the same run.

Writes ``benchmarks/results/<date>.json`` (a list of records ``{"metric", "ours", "baseline",
"ratio", "unit", "target", "runs"}``, plus ``met`` and, for a target not met, ``why``: the measured
breakdown and what would close it, verdict.py) and ``benchmarks/results/<date>-scaling.png``, and
prints a table. Each figure is the median of N runs (min/max in ``runs``). Ratios are defined so the
target reads plainly: ``mosaic_vs_reference`` = our throughput / the reference's (≥ 6),
``runner_overhead_*`` = eopack time / bare runner time (≤ 1.10, ≤ 1.05 on ndvi), ``*_vs_raw_decode``
= our throughput / decode throughput (≥ 0.5 on the marginal figure), ``mosaic_peak_rss_12m_vs_1m`` =
peak RSS at 12 months / at 1 month (≤ 1.2: flat), ``openeo_graph_vs_ndvi`` = openeo-graph's time /
ndvi's on the same job (≤ 1.5).

    uv run python benchmarks/run.py            # full (about 10 minutes on 2 cores)
    uv run python benchmarks/run.py --quick    # smaller data, fewer repeats (a smoke test)
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
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

import costmodel  # noqa: E402
import mosaic as mosaic_bench  # noqa: E402
import verdict  # noqa: E402

PY = Path(sys.executable)
BIN = PY.parent
# Python's default bytecode caching, as on a user's machine (a session may set PYTHONDONTWRITEBYTECODE,
# which makes every process recompile cwltool's and eopack's imports and measures that instead).
ENV = {
    **{k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"},
    "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
    "PYTHONWARNINGS": "ignore",
}
CPU: dict[str, list[float]] = {}  # CPU seconds (process + children) of the last _timed calls, by label


def _timed(cmd: Sequence[str], cwd: Path = ROOT, label: str = "") -> float:
    """Wall seconds of ``cmd``; its CPU seconds (less sensitive to a shared machine) go to CPU[label]."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    proc = subprocess.run(
        list(cmd), cwd=cwd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False
    )
    wall = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])}... failed: {proc.stderr.strip().splitlines()[-1:]}")
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    CPU.setdefault(label, []).append(round(cpu, 3))
    return wall


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
    CPU.pop("ours", None), CPU.pop("bare", None)
    for index in range(repeats + 1):  # the first round warms the caches (bytecode, page cache) and is dropped
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
                    ],
                    label="ours",
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
            bare.append(_timed([*cmd, f"{cwl}#{name}", str(job_copy)], label="bare"))
            if index == 0:
                ours.pop(), bare.pop(), CPU["ours"].pop(), CPU["bare"].pop()
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
            ("ndvi", "ndvi", ndvi_job, max(2, repeats - 2)),
        ):
            ours, bare = _overhead(runner, pkg, job, n)
            rec = record(
                f"{metric}" + ("" if label == "trivial" else f"_{label}"),
                ours,
                bare,
                "s",
                "<= 1.10" if label == "trivial" else "<= 1.05",
                lambda o, b: o / b,
            )
            # CPU seconds of eopack (with the engine it runs) and of the bare engine: the same ratio
            # without the other load of a shared machine
            cpu_o, cpu_b = statistics.median(CPU["ours"]), statistics.median(CPU["bare"])
            rec["runs"]["cpu_s"] = {
                "ours": CPU["ours"],
                "baseline": CPU["bare"],
                "ratio": round(cpu_o / cpu_b, 3),
                "eopack_own_s": round(cpu_o - cpu_b, 3),
            }
            out.append(rec)
            print(f"  {rec['metric']}: {rec['ratio']} (CPU {rec['runs']['cpu_s']['ratio']})", file=sys.stderr)
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
    # N and 4N dates for the marginal cost (the sample data has 3-4 dates a month)
    small, large = (1, 4) if quick else (3, 12)
    months_list = [1, 4] if quick else [1, 3, 6, 12]
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
    # headline figures (N runs each) at 3 and at the largest number of months
    n = 1 if quick else 3
    out = []
    for head in dict.fromkeys([small, months_list[-1]]):
        if head == small:
            ours = [mosaic_bench._measure("ours", data, aoi, head) for _ in range(n)]
            ref = [mosaic_bench._measure("reference", data, aoi, head) for _ in range(n)]
        else:  # the longest period: the one run of each from the scaling above
            ours, ref = [scaling["ours"][-1]], [scaling["reference"][-1]]
        out.append(
            record(
                f"mosaic_vs_reference_{head}m",
                [_rate(r) for r in ours],
                [_rate(r) for r in ref],
                "Mpix·dates/s",
                ">= 6",
                lambda o, b: o / b,
            )
        )
        if head == small:
            dec = [mosaic_bench._measure("decode", data, aoi, head) for _ in range(n)]
            out.append(
                record(
                    "mosaic_vs_raw_decode",
                    [_rate(r) for r in ours],
                    [_rate(r) for r in dec],
                    "Mpix·dates/s",
                    "whole run, start-up included (the target is on the marginal figure)",
                    lambda o, b: o / b,
                )
            )
    first, last = scaling["ours"][0]["peak_rss_mib"], scaling["ours"][-1]["peak_rss_mib"]
    out.append(
        {
            "metric": f"mosaic_peak_rss_{months_list[-1]}m_vs_{months_list[0]}m",
            "ours": round(last, 1),
            "baseline": round(first, 1),
            "ratio": round(last / first, 3),
            "unit": "MiB",
            "target": "<= 1.2 (flat)",
            "runs": {
                "reference_mib": [round(r["peak_rss_mib"], 1) for r in scaling["reference"]],
                "ours_mib": [round(r["peak_rss_mib"], 1) for r in scaling["ours"]],
            },
        }
    )
    at = {m: i for i, m in enumerate(months_list)}
    out += cost_model(
        "mosaic",
        [scaling["ours"][at[small]], scaling["ours"][at[large]]],
        [scaling["decode"][at[small]], scaling["decode"][at[large]]],
    )
    ndvi = [mosaic_bench._measure("ndvi", data, aoi, m) for m in (small, large)]
    ndvi_decode = [mosaic_bench._measure("decode-ndvi", data, aoi, m) for m in (small, large)]
    out.append(
        record(
            "ndvi_vs_raw_decode",
            [_rate(ndvi[1])],
            [_rate(ndvi_decode[1])],
            "Mpix·dates/s",
            "whole run, start-up included (the target is on the marginal figure)",
            lambda o, b: o / b,
        )
    )
    out += cost_model("ndvi", ndvi, ndvi_decode)
    out.append(openeo_vs_ndvi(data, aoi, large, n))
    out.append(_tiles(quick))
    return out, scaling


def openeo_vs_ndvi(data: Path, aoi: str, months: int, n: int) -> dict[str, Any]:
    """openeo-graph's NDVI graph against the ndvi package on the same job: B04 and B08 at 10 m over
    the same AOI and dates, no SCL (the graph has none), one COG per date; each in a fresh process."""
    graph = [mosaic_bench._measure("openeo", data, aoi, months) for _ in range(n)]
    ndvi = [mosaic_bench._measure("ndvi-nomask", data, aoi, months) for _ in range(n)]
    if {r["pixels"] for r in graph} != {r["pixels"] for r in ndvi}:
        raise RuntimeError(
            f"openeo-graph and ndvi wrote different grids: {graph[0]['pixels']} vs {ndvi[0]['pixels']}"
        )
    out = record(
        "openeo_graph_vs_ndvi",
        [r["wall_s"] for r in graph],
        [r["wall_s"] for r in ndvi],
        f"s (the same NDVI job: {graph[0]['dates']} dates, {graph[0]['pixels'] / 1e6:.1f} Mpix at 10 m)",
        "<= 1.5",
        lambda o, b: o / b,
    )
    out["runs"]["stages_s"] = {"openeo_graph": graph[0]["stages_s"], "ndvi": ndvi[0]["stages_s"]}
    print(f"  openeo-graph vs ndvi: {out['ratio']}", file=sys.stderr)
    return out


def _rate(r: dict[str, Any]) -> float:
    return r["pixels"] * r["dates"] / r["wall_s"] / 1e6


def cost_model(name: str, ours: list[dict[str, Any]], decode: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Two records: the marginal cost per input date against decoding the same pixels, and the
    per-stage breakdown (costmodel.py) at N and 4N dates with its per-date marginal."""
    small, large = ours
    dec_small, dec_large = decode
    extra = large["dates"] - small["dates"]
    ours_per_date = (large["wall_s"] - small["wall_s"]) / extra
    decode_per_date = (dec_large["wall_s"] - dec_small["wall_s"]) / (dec_large["dates"] - dec_small["dates"])
    marginal = costmodel.marginal(small, large)
    pixels = large["pixels"]
    stages = marginal["stages_s_per_date"]
    print(f"  {name}: {ours_per_date:.3f} s/date vs decode {decode_per_date:.3f} s/date", file=sys.stderr)
    return [
        {
            "metric": f"{name}_marginal_vs_raw_decode",
            "ours": round(ours_per_date, 4),
            "baseline": round(decode_per_date, 4),
            "ratio": round(decode_per_date / ours_per_date, 3) if ours_per_date > 0 else None,
            "unit": "s per additional input date (wall)",
            "target": ">= 0.5 (throughput: decode time / our time)",
            "runs": {
                "dates": marginal["dates"],
                "pixels": pixels,
                "assets_decoded": dec_large.get("assets"),
                "ours_wall_s": [round(small["wall_s"], 3), round(large["wall_s"], 3)],
                "decode_wall_s": [round(dec_small["wall_s"], 3), round(dec_large["wall_s"], 3)],
                "ours_mpix_per_s_marginal": round(pixels / ours_per_date / 1e6, 1)
                if ours_per_date > 0
                else None,
                "decode_mpix_per_s_marginal": round(pixels / decode_per_date / 1e6, 1),
            },
        },
        {
            "metric": f"{name}_cost_model",
            "ours": round(large["wall_s"], 3),
            "baseline": round(dec_large["wall_s"], 3),
            "ratio": round(large["wall_s"] / dec_large["wall_s"], 3),
            "unit": f"s at {large['dates']} dates (ours / decoding the same pixels)",
            "target": "breakdown: where the time goes",
            "runs": {
                "stages_s": {
                    f"{small['dates']}_dates": small["stages_s"],
                    f"{large['dates']}_dates": large["stages_s"],
                    "per_additional_date": stages,
                },
                "decode_s_per_date": round(decode_per_date, 4),
                "task_compute_s": [small["task_compute_s"], large["task_compute_s"]],
                "calls": large["calls"],
                "note": "stages in Dask tasks are thread-seconds on 2 threads; imports/cluster/search/"
                "encode_write/stac_quicklooks run beside or after them",
            },
        },
    ]


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


def geozarr_records(quick: bool) -> list[dict[str, Any]]:
    """The geozarr package's tool vs the bare ``eopf-geozarr convert`` on the same product (geozarr.py)."""
    import geozarr as geozarr_bench

    sizes = [512] if quick else [2048, 4096]
    result = geozarr_bench.run(sizes, 256, 1024, keep=False)
    out = []
    for row in result["results"]:
        ours, bare = row["eopack_geozarr"], row["eopf_geozarr_cli"]
        rec = record(
            f"geozarr_vs_bare_{row['size']}",
            [ours["wall_s"]],
            [bare["wall_s"]],
            "s",
            "<= 1.10",
            lambda o, b: o / b,
        )
        rec["runs"].update(
            {
                "cpu_s": [ours["cpu_s"], bare["cpu_s"]],
                "peak_rss_mib": [ours["peak_rss_mib"], bare["peak_rss_mib"]],
            }
        )
        if "stages_s" in ours:
            rec["runs"]["stages_s"] = ours["stages_s"]
        out.append(rec)
    return out


def plot(scaling: dict[str, Any], path: Path, records: Sequence[dict[str, Any]] = ()) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = [r for r in records if r["metric"].endswith("_cost_model") and r.get("runs")]
    fig, axes = plt.subplots(1, 3 if models else 2, figsize=(16 if models else 11, 4.2))
    left, right = axes[0], axes[1]
    if models:
        # the marginal cost of one more input date, per stage, against decoding its pixels
        ax = axes[2]
        names = [r["metric"].removesuffix("_cost_model") for r in models]
        bottom = [0.0] * len(models)
        for stage in costmodel.STAGES:
            if stage in ("imports", "cluster", "search"):
                continue  # fixed per run: their difference between N and 4N dates is noise
            values = [max(r["runs"]["stages_s"]["per_additional_date"].get(stage, 0.0), 0.0) for r in models]
            if any(values):
                ax.bar(names, values, bottom=bottom, label=stage)
                bottom = [b + v for b, v in zip(bottom, values, strict=True)]
        ax.scatter(
            names,
            [r["runs"]["decode_s_per_date"] for r in models],
            marker="_",
            s=900,
            c="k",
            label="raw decode",
        )
        ax.set(ylabel="s per additional date (thread-seconds)", title="marginal cost per input date")
        ax.legend(fontsize=7)
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
    print("geozarr ...", file=sys.stderr)
    try:
        records += geozarr_records(args.quick)
    except (RuntimeError, OSError, KeyError, subprocess.SubprocessError) as err:
        records.append(_skipped("geozarr_vs_bare", f"failed: {err}", "s", "<= 1.10"))
    out_dir = HERE / "results"
    out_dir.mkdir(exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d")
    verdict.judge(records)  # met or not; for a target not met, the measured why
    (out_dir / f"{stamp}.json").write_text(json.dumps(records, indent=2))
    plot(scaling, out_dir / f"{stamp}-scaling.png", records)
    print(f"\n{'metric':<34} {'ours':>10} {'baseline':>10} {'ratio':>8}  target")
    for r in records:
        if r.get("skipped"):
            print(f"{r['metric']:<34} {'-':>10} {'-':>10} {'-':>8}  skipped: {r['skipped']}")
        else:
            mark = {True: "met", False: "NOT MET"}.get(r.get("met"), "")
            print(
                f"{r['metric']:<34} {r['ours']:>10} {r['baseline']:>10} {r['ratio']:>8}  {r['target']} ({r['unit']}) {mark}"
            )
    for r in records:
        if r.get("why"):
            print(f"\n{r['metric']} not met: {r['why']}")
    print(f"\nwrote {out_dir / f'{stamp}.json'} and the scaling plot in {time.perf_counter() - began:.0f} s")
    shutil.rmtree(HERE / "__pycache__", ignore_errors=True)


if __name__ == "__main__":
    main()
