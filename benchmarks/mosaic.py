"""Benchmark: cloudless-mosaic vs the eoap reference algorithm vs the raw decode rate (JSON on stdout).

Same generated data, same 2 cores, same machine, same run:

- ``ours``: ``eopack_cloudless_mosaic.core.run`` (per-pixel SCL mask, block tasks, uint16 median).
- ``reference``: a faithful re-implementation of eoap/dask-app-package's cloudless-mosaic: scene
  filter ``eo:cloud_cover < 25``, ``stackstac.stack(..., chunksize=(10, 3, 512, 512))`` in float64,
  ``where(x > 0)``, ``persist()``, ``groupby("time.month").median()``, then one COG per month.
- ``decode``: rasterio decoding every pixel of every asset (4 bands + SCL) the mosaic needs over the
  AOI, on 2 threads: the physical limit of this machine for this job.

Throughput is AOI pixels × acquisition dates per second (each implementation counted on the dates
it reads). Each measurement runs in a fresh process so its peak RSS is its own.

    python benchmarks/mosaic.py                       # 1, 3, 6, 12 months on a 2048² tile at 10 m
    python benchmarks/mosaic.py --months 1,3 --tile-size 1200
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))  # costmodel
BANDS = ["red", "green", "blue", "nir"]
IDS = ["B04", "B03", "B02", "B08"]


def _data(tile_size: int, months: int) -> Path:
    out = ROOT / "data" / "bench" / f"s2-{tile_size}-{months}m"
    script = Path(sys.executable).parent / "eopack-sample-data"
    proc = subprocess.run(
        [
            str(script),
            "--out",
            str(out),
            "--tile-size",
            str(tile_size),
            "--resolution",
            "10",
            "--months",
            str(months),
        ],
        stdout=subprocess.PIPE,
        text=True,
        check=True,
    )
    return Path(proc.stdout.strip().splitlines()[-1]).parent


def _aoi(tile_size: int) -> str:
    """Tile 0 minus its overlap with tile 1, in lon/lat, so one tile's worth of pixels is read."""
    from rasterio.warp import transform_bounds

    west, north = 682000.0, 5164000.0
    east, south = west + tile_size * 10 - 1300, north - tile_size * 10 + 100
    bounds = transform_bounds("EPSG:32632", "EPSG:4326", west + 100, south, east, north - 100)
    # shrink a little: the lon/lat box of a UTM square bulges out of it at the corners
    w, s, e, n = bounds
    dx, dy = (e - w) * 0.03, (n - s) * 0.03
    return f"{w + dx:.6f},{s + dy:.6f},{e - dx:.6f},{n - dy:.6f}"


def _dates(months: int) -> tuple[str, str]:
    import datetime as dt

    start = dt.date(2024, 6, 1)
    end_month = (start.month - 1 + months) % 12 + 1
    end_year = start.year + (start.month - 1 + months) // 12
    end = dt.date(end_year, end_month, 1) - dt.timedelta(days=1)
    return start.isoformat(), end.isoformat()


def _items(data: Path, aoi: str, months: int, max_cloud: float | None) -> list[Any]:
    from eopack_eo_common.search import Search, parse_bbox, parse_date_range, select_items

    start, end = parse_date_range(*_dates(months))
    return select_items(Search("sentinel-2-l2a", parse_bbox(aoi), start, end, max_cloud), input_catalog=data)


def one_ours(data: Path, aoi: str, months: int) -> dict[str, Any]:
    import costmodel

    spans, tasks = costmodel.install("eopack_cloudless_mosaic.core")  # timing spans (costmodel.py)
    from eopack_cloudless_mosaic.core import MosaicJob, run

    start, end = _dates(months)
    job = MosaicJob.from_args(
        aoi=aoi, start_date=start, end_date=end, bands=BANDS, resolution=10, input_catalog=data
    )
    wall, pixels = _timed_run(run, job, "monthly-mosaic-*/red.tif")
    dates = len({i.datetime.date() for i in _items(data, aoi, months, None)})
    return {"pixels": pixels, "dates": dates, **costmodel.summary(spans, tasks, wall)}


def _timed_run(run: Any, job: Any, pattern: str) -> tuple[float, int]:
    """Wall seconds of ``run(job, outdir)`` and the pixel count of its first output matching ``pattern``."""
    import rasterio

    with tempfile.TemporaryDirectory() as tmp:
        began = time.perf_counter()
        run(job, Path(tmp) / "out")
        wall = time.perf_counter() - began
        with rasterio.open(next((Path(tmp) / "out").glob(pattern))) as src:
            return wall, src.width * src.height


def one_ndvi(data: Path, aoi: str, months: int, masked_classes: str | None = None) -> dict[str, Any]:
    """The ndvi package's tool; ``masked_classes=""`` leaves out the SCL (openEO's NDVI graph has none)."""
    import costmodel

    spans, tasks = costmodel.install("eopack_ndvi.core")
    from eopack_ndvi.core import NdviJob, run

    start, end = _dates(months)
    job = NdviJob.from_args(
        aoi=aoi,
        start_date=start,
        end_date=end,
        resolution=10,
        input_catalog=data,
        masked_classes=masked_classes,
    )
    wall, pixels = _timed_run(run, job, "*/ndvi.tif")
    dates = len({i.datetime.date() for i in _items(data, aoi, months, None)})
    return {"pixels": pixels, "dates": dates, **costmodel.summary(spans, tasks, wall)}


def one_openeo(data: Path, aoi: str, months: int) -> dict[str, Any]:
    """The openeo-graph package's tool on its NDVI example graph (openEO's own NDVI: B04 and B08 at
    their native 10 m, no SCL), over the same AOI and dates: the job ``ndvi-nomask`` computes."""
    import costmodel

    spans, tasks = costmodel.install("eopack_openeo_graph.core")
    from eopack_openeo_graph.core import GraphJob, run

    doc = json.loads((ROOT / "app-packages" / "openeo-graph" / "examples" / "ndvi.json").read_text())
    load = doc["process_graph"]["loadcollection1"]["arguments"]
    west, south, east, north = (float(v) for v in aoi.split(","))
    load["spatial_extent"] = {"west": west, "south": south, "east": east, "north": north}
    load["temporal_extent"] = list(_dates(months))
    with tempfile.TemporaryDirectory() as tmp:
        graph = Path(tmp) / "ndvi.json"
        graph.write_text(json.dumps(doc))
        job = GraphJob.from_args(process_graph=graph, input_catalog=data)
        wall, pixels = _timed_run(run, job, "openeo-*/*.tif")
    dates = len({i.datetime.date() for i in _items(data, aoi, months, None)})
    return {"pixels": pixels, "dates": dates, **costmodel.summary(spans, tasks, wall)}


def one_reference(data: Path, aoi: str, months: int) -> dict[str, Any]:
    import numpy as np
    import stackstac
    from distributed import Client, LocalCluster

    from eopack_eo_common.raster import write_cog

    items = _items(data, aoi, months, 25)  # the reference's query: eo:cloud_cover < 25
    bbox = tuple(float(v) for v in aoi.split(","))
    cluster = LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None)
    client = Client(cluster)
    began = time.perf_counter()
    stack = stackstac.stack(
        items, assets=IDS, chunksize=(10, 3, 512, 512), resolution=10, epsg=32632, bounds_latlon=bbox
    ).where(lambda x: x > 0, other=np.nan)
    stack = stack.persist()
    monthly = stack.groupby("time.month").median().compute()
    with tempfile.TemporaryDirectory() as tmp:
        transform = stack.attrs["transform"]
        for index in range(monthly.sizes["month"]):
            pixels = monthly.isel(month=index).values.astype("float32")
            write_cog(Path(tmp) / f"m{index}.tif", pixels, transform, "EPSG:32632")
    wall = time.perf_counter() - began
    dates = len({i.datetime.date() for i in items})
    result = {"wall_s": wall, "pixels": int(stack.sizes["x"] * stack.sizes["y"]), "dates": dates}
    client.close()
    cluster.close()
    return result


def one_decode(data: Path, aoi: str, months: int, assets: Sequence[str] = (*IDS, "SCL")) -> dict[str, Any]:
    import rasterio
    from rasterio.warp import transform_bounds
    from rasterio.windows import from_bounds

    items = _items(data, aoi, months, None)
    bbox = tuple(float(v) for v in aoi.split(","))
    bounds = transform_bounds("EPSG:4326", "EPSG:32632", *bbox)

    def decode(href: str) -> int:
        with rasterio.open(href) as src:
            window = from_bounds(*bounds, transform=src.transform).round_offsets().round_lengths()
            return int(src.read(1, window=window).size)

    hrefs = [i.assets[a].get_absolute_href() for i in items for a in assets]
    began = time.perf_counter()
    with ThreadPoolExecutor(2) as pool:
        read = sum(pool.map(decode, hrefs))
    wall = time.perf_counter() - began
    dates = len({i.datetime.date() for i in items})
    return {"wall_s": wall, "pixels": read // (len(hrefs)), "dates": dates, "assets": list(assets)}


#: the assets each package reads per date (the decode baseline reads exactly these)
NDVI_ASSETS = ("B04", "B08", "SCL")


ONE: dict[str, Any] = {  # what one fresh process measures (``--one KIND``)
    "ours": one_ours,
    "ndvi": one_ndvi,
    "ndvi-nomask": lambda d, a, m: one_ndvi(d, a, m, masked_classes=""),
    "openeo": one_openeo,
    "reference": one_reference,
    "decode": one_decode,
    "decode-ndvi": lambda d, a, m: one_decode(d, a, m, NDVI_ASSETS),
}


def _measure(kind: str, data: Path, aoi: str, months: int) -> dict[str, Any]:
    """Run one measurement in a fresh interpreter; return its result with its own peak RSS."""
    cmd = [
        sys.executable,
        __file__,
        "--one",
        kind,
        "--data",
        str(data),
        "--aoi",
        aoi,
        "--months",
        str(months),
    ]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--months", default="1,3,6,12")
    parser.add_argument("--tile-size", type=int, default=2048)
    parser.add_argument("--one", choices=sorted(ONE), help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--aoi", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        import logging

        logging.disable(logging.INFO)
        fn = ONE[args.one]
        result = fn(args.data, args.aoi, int(args.months))
        result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(result))
        return
    months = [int(m) for m in args.months.split(",")]
    data = _data(args.tile_size, max(months))
    aoi = _aoi(args.tile_size)
    records = []
    for n in months:
        row: dict[str, Any] = {"months": n}
        for kind in ("decode", "ours", "reference"):
            r = _measure(kind, data, aoi, n)
            rate = r["pixels"] * r["dates"] / r["wall_s"] / 1e6
            row[kind] = {
                **r,
                "mpix_dates_per_s": round(rate, 2),
                "wall_s": round(r["wall_s"], 3),
                "peak_rss_mib": round(r["peak_rss_mib"], 1),
            }
            print(
                f"{n:>2} month(s) {kind:<9} {r['wall_s']:7.2f} s  {rate:7.1f} Mpix·dates/s  "
                f"{r['peak_rss_mib']:7.0f} MiB",
                file=sys.stderr,
            )
        row["ours_vs_reference"] = round(
            row["ours"]["mpix_dates_per_s"] / row["reference"]["mpix_dates_per_s"], 2
        )
        row["ours_vs_decode"] = round(row["ours"]["mpix_dates_per_s"] / row["decode"]["mpix_dates_per_s"], 2)
        records.append(row)
    summary = {
        "benchmark": "cloudless-mosaic",
        "tile_size": args.tile_size,
        "resolution_m": 10,
        "cores": len(__import__("os").sched_getaffinity(0)),
        "targets": {
            "ours_vs_reference": ">= 5",
            "ours_vs_decode": ">= 0.5",
            "peak_rss": "flat as months grow",
        },
        "runs": records,
        "peak_rss_ratio_max_vs_min_months": round(
            records[-1]["ours"]["peak_rss_mib"] / records[0]["ours"]["peak_rss_mib"], 2
        ),
    }
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
