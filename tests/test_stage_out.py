"""Every package's output is what a platform's stage-out and our `eopack publish` can take (issue 19).

ZOO-Project's standard stage-out opens ``<output>/catalog.json`` and uploads ``cat.get_items()``,
which pystac does *not* recurse: every item must be linked directly from the root catalog, with
relative hrefs that resolve. And a catalog indexes items by footprint, so every item needs one
(docs/adr/0005 for images without georeferencing).

The outputs checked are those of the pytest-workflow runs in ``tests/workflows/`` (each package's
default job through the real CLI, or the run its workflow tests already make), so no heavy job runs
twice. STAC validity: core schemas plus the extension schemas of ``/work/shared/stac-schemas``
(``$EOPACK_STAC_SCHEMAS``), through the publisher's offline validator.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pystac
import pytest
import requests

from eopack.publish import read_run
from eopack.services.stac import StacStack, status, up

ROOT = Path(__file__).resolve().parents[1]
SCHEMAS = Path(os.environ.get("EOPACK_STAC_SCHEMAS", ROOT.parent / "shared" / "stac-schemas"))
if not SCHEMAS.is_dir():  # the shared/ copy beside the checkout, else the workplace's
    SCHEMAS = Path("/work/shared/stac-schemas")

# package -> (pytest-workflow run whose output is reused, output folder under its workdir)
RUNS = {
    "cloudless-mosaic": ("cloudless-mosaic cwltool default job", "out/mosaics"),
    "convert-url": ("convert-url cwltool png 50%", "out/converted_image"),
    "geozarr": ("geozarr cwltool default job", "out/geozarr_results"),
    "ndvi": ("ndvi cwltool default job", "out/ndvi_results"),
    "openeo-graph": ("openeo-graph cwltool seed ndvi graph", "out/openeo_results"),
}


def test_every_package_is_covered() -> None:
    # The staging pair is the platform's side of stage-in/stage-out: tests/test_staging.py covers it.
    apps = sorted(
        p.name
        for p in (ROOT / "app-packages").iterdir()
        if (p / f"{p.name}.cwl").is_file() and not p.name.startswith("stage-")
    )
    assert sorted(RUNS) == apps, "add the new package's workflow run to RUNS"


def schema_map() -> dict[str, str]:
    """Extension schema URIs -> the local copies (``<name>/<version>/schema.json``)."""
    if not SCHEMAS.is_dir():
        return {}
    return {
        f"https://stac-extensions.github.io/{p.relative_to(SCHEMAS).as_posix()}": str(p)
        for p in sorted(SCHEMAS.glob("*/*/schema.json"))
    }


def _feature_files(root: Path) -> dict[str, Path]:
    """Every STAC item document under ``root``, by id (what the tool wrote, found without links)."""
    found = {}
    for path in root.rglob("*.json"):
        if ".zarr" in path.parts[-2] or path.name == "zarr.json":
            continue
        try:
            doc = json.loads(path.read_text())
        except ValueError:
            continue
        if isinstance(doc, dict) and doc.get("type") == "Feature" and "stac_version" in doc:
            found[str(doc["id"])] = path
    return found


def check_stage_out_ready(root: Path) -> list[pystac.Item]:
    """Assert the stage-out contract on one output folder; return the root's items."""
    catalog = pystac.Catalog.from_file(str(root / "catalog.json"))
    items = list(catalog.get_items())  # not recursive, as ZOO's stage-out calls it
    written = _feature_files(root)
    assert written, f"no STAC item under {root}"
    assert sorted(i.id for i in items) == sorted(written), "every item must be a direct child of the root"
    for item in items:
        links = [ln for ln in item.links if ln.rel in ("root", "parent", "self", "collection")]
        raw = json.loads(written[item.id].read_text())
        for link in raw["links"]:
            assert "://" not in link["href"] and not link["href"].startswith("/"), link
        for key, asset in raw["assets"].items():
            href = asset["href"]
            assert "://" not in href and not href.startswith("/"), (item.id, key, href)
            assert (written[item.id].parent / href).exists(), (item.id, key, href)
            assert Path(item.assets[key].get_absolute_href() or "").exists(), (item.id, key)
        assert links, item.id
        assert item.geometry is not None and item.bbox, f"{item.id}: a catalog indexes items by footprint"
    return items


def check_valid(root: Path, scratch: Path) -> set[str]:
    """Core + extension schemas offline; return the extensions left unchecked.

    Known deviation, checked apart: the tools add ``proj:epsg`` beside ``proj:code`` for stackstac
    (DESIGN.md §8, ``add_epsg_alias``), which projection v2.0.0's schema forbids. The copy that is
    validated drops exactly that alias; everything else must pass.
    """
    copy = scratch / root.name
    # A real copy, assets included: publish refuses assets that are symlinks out of their item's
    # folder (issue 21 #3), and the sample outputs are small.
    shutil.copytree(root, copy)
    for path in copy.rglob("*.json"):
        try:
            doc = json.loads(path.read_text())
        except ValueError:
            continue
        if isinstance(doc, dict) and doc.get("type") == "Feature":
            for holder in [doc.get("properties", {}), *doc.get("assets", {}).values()]:
                if "proj:code" in holder:
                    holder.pop("proj:epsg", None)
            path.write_text(json.dumps(doc))
    content = read_run(copy, schema_map=schema_map())
    assert content.problems == [], [str(p) for p in content.problems]
    return set(content.unchecked)


def check_output(app: str, workflow_dir: Path, scratch: Path) -> None:
    root = workflow_dir / RUNS[app][1]
    items = check_stage_out_ready(root)
    unchecked = check_valid(root, scratch)
    local = {p.parent.parent.name for p in SCHEMAS.glob("*/*/schema.json")}
    assert not [u for u in unchecked if any(f"/{name}/" in u for name in local)], unchecked
    if app == "cloudless-mosaic":  # a Collection still describes the loose items
        collection = json.loads((root / "collection.json").read_text())
        assert collection["id"] == "cloudless-mosaic"
        assert {i.collection_id for i in items} == {"cloudless-mosaic"}


# pytest-workflow needs the mark on the function itself, hence one small test per package.
@pytest.mark.workflow(RUNS["cloudless-mosaic"][0])
def test_cloudless_mosaic_items_at_the_root(workflow_dir: Path, tmp_path: Path) -> None:
    check_output("cloudless-mosaic", workflow_dir, tmp_path)


@pytest.mark.workflow(RUNS["convert-url"][0])
def test_convert_url_items_at_the_root(workflow_dir: Path, tmp_path: Path) -> None:
    check_output("convert-url", workflow_dir, tmp_path)


@pytest.mark.workflow(RUNS["geozarr"][0])
def test_geozarr_items_at_the_root(workflow_dir: Path, tmp_path: Path) -> None:
    check_output("geozarr", workflow_dir, tmp_path)


@pytest.mark.workflow(RUNS["ndvi"][0])
def test_ndvi_items_at_the_root(workflow_dir: Path, tmp_path: Path) -> None:
    check_output("ndvi", workflow_dir, tmp_path)


@pytest.mark.workflow(RUNS["openeo-graph"][0])
def test_openeo_graph_items_at_the_root(workflow_dir: Path, tmp_path: Path) -> None:
    check_output("openeo-graph", workflow_dir, tmp_path)


# ------------------------------------------------------------------ publishing every output


@pytest.fixture(scope="module")
def stack(stac_api: StacStack) -> StacStack:
    """The session's stack, restarted if a test file that ran earlier stopped it (`up` is idempotent)."""
    if not status(stac_api.state_dir).up:
        return up(stac_api.data_dir, stac_api.state_dir)
    return stac_api


def _search(api: str, **body: Any) -> dict[str, Any]:
    session = requests.Session()
    session.trust_env = False  # loopback
    response = session.post(f"{api}/search", json={"limit": 100, **body}, timeout=30)
    assert response.status_code == 200, response.text
    return dict(response.json())


def publish_output(app: str, workflow_dir: Path, stack: StacStack) -> None:
    """`eopack publish` the run's output into its own collection; every item is found with a footprint."""
    root = workflow_dir / RUNS[app][1]
    expected = sorted(_feature_files(root))
    collection = f"stage-out-{app}"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(
        [sys.executable, "-m", "eopack", "publish", str(root), "--stac-api", stack.api_url,
         "--collection", collection],
        cwd=ROOT, capture_output=True, text=True, env=env, check=False, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    found = _search(stack.api_url, collections=[collection])
    assert sorted(f["id"] for f in found["features"]) == expected
    assert all(f["geometry"] is not None for f in found["features"])


@pytest.mark.stacapi
@pytest.mark.workflow(RUNS["cloudless-mosaic"][0])
def test_cloudless_mosaic_publishes(workflow_dir: Path, stack: StacStack) -> None:
    publish_output("cloudless-mosaic", workflow_dir, stack)


@pytest.mark.stacapi
@pytest.mark.workflow(RUNS["convert-url"][0])
def test_convert_url_png_publishes(workflow_dir: Path, stack: StacStack) -> None:
    """The PNG has no georeferencing: the global footprint makes it publishable (docs/adr/0005)."""
    publish_output("convert-url", workflow_dir, stack)


@pytest.mark.stacapi
@pytest.mark.workflow(RUNS["geozarr"][0])
def test_geozarr_publishes(workflow_dir: Path, stack: StacStack) -> None:
    publish_output("geozarr", workflow_dir, stack)


@pytest.mark.stacapi
@pytest.mark.workflow(RUNS["ndvi"][0])
def test_ndvi_publishes(workflow_dir: Path, stack: StacStack) -> None:
    publish_output("ndvi", workflow_dir, stack)


@pytest.mark.stacapi
@pytest.mark.workflow(RUNS["openeo-graph"][0])
def test_openeo_graph_publishes(workflow_dir: Path, stack: StacStack) -> None:
    publish_output("openeo-graph", workflow_dir, stack)
