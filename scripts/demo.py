"""`make demo`: run the packages on built-in defaults and print where the outputs and reports are.

- ndvi and cloudless-mosaic: generated Sentinel-2 L2A sample data (data/sample, made on first use),
  local Dask, cwltool.
- convert-url: a generated image is served on a free loopback port and converted through
  `eopack run` (the package's default job fetches a public image instead; the demo runs offline).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "support"))

from eopack_eo_common.stac import validate_tree  # noqa: E402
from imageserver import ImageServer, make_images  # noqa: E402


def eopack_run(app: str, *args: str, env: dict[str, str] | None = None) -> Path:
    proc = subprocess.run(
        [sys.executable, "-m", "eopack", "run", app, *args],
        cwd=ROOT,
        text=True,
        stdout=subprocess.PIPE,
        env={**os.environ, **(env or {})},
        check=False,
    )
    if proc.returncode != 0:
        sys.exit(f"demo: {app} failed (exit {proc.returncode}); see the messages above")
    return Path(proc.stdout.strip().splitlines()[-1])


def report(app: str, catalog: Path) -> None:
    stac = validate_tree(catalog.parent)
    if not stac.ok:
        sys.exit(f"demo: {app} wrote invalid STAC: {stac.errors[0]}")
    print(f"{app}: {catalog}  (STAC valid, {stac.documents} documents)", flush=True)
    run_dir = catalog.parent.parent
    page = run_dir / "report.html"
    if not page.exists():
        sys.exit(f"demo: {app} left no report.html in {run_dir}")
    usage = json.loads((run_dir / ".eopack" / "usage.json").read_text())
    print(
        f"  report: {page}  ({usage['elapsed_seconds']:.1f} s wall, {usage['cpu_seconds'] or 0:.1f} s CPU, "
        f"peak {usage['peak_memory_megabytes'] or 0:.0f} MB; RO-Crate: {run_dir / 'ro-crate-metadata.json'})",
        flush=True,
    )


def demo_convert_url() -> Path:
    images = ROOT / "runs" / "demo-inputs" / "images"
    make_images(images)
    with ImageServer(images) as url:
        job = images.parent / "convert-url.yml"
        job.write_text(f"fn: resize\nurl: {url}/sample-rgb.png\nsize: 50%\n")
        # The image is on loopback, which convert-url refuses unless told to trust it.
        return eopack_run("convert-url", str(job), env={"EOPACK_ALLOW_PRIVATE_URLS": "1"})


def main() -> None:
    results = {
        "ndvi": eopack_run("ndvi"),
        "cloudless-mosaic": eopack_run("cloudless-mosaic"),
        "convert-url": demo_convert_url(),
    }
    print("\nOutputs:", flush=True)
    for app, catalog in results.items():
        report(app, catalog)


if __name__ == "__main__":
    main()
