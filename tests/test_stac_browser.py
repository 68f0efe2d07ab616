"""Issue 23 #1 and #6: the published outputs on a map, seen by a real headless Chromium.

The outputs are those of the pytest-workflow runs (ndvi and cloudless-mosaic default jobs, which
``test_stage_out`` also reuses), published once each into the session's stack: no heavy job runs
again. Asserted: ``eopack publish`` ends with STAC Browser's page of the collection; that page,
rendered by Chromium with every DNS name but loopback unresolvable, lists the collection and its
items, and the page asked no other host for anything (no CDN, no basemap, no schema); a tile of
the NDVI field has the colormap's colour for 9/11 = 0.818 and the mosaic's true-colour tile the
field's red/green/blue reflectances. Screenshots go to ``runs/browser-test/``.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import numpy as np
import pytest
import requests
from PIL import Image

from eopack.services.stac import StacStack, browser_url, status, up

ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "runs" / "browser-test"
CHROMIUM = shutil.which("chromium")
# package -> (pytest-workflow run whose output is published, output folder, target collection)
RUNS = {
    "ndvi": ("ndvi cwltool default job", "out/ndvi_results", "browser-ndvi"),
    "cloudless-mosaic": ("cloudless-mosaic cwltool default job", "out/mosaics", "browser-mosaic"),
}
ZOOM = 14  # a WebMercator tile of ~1.7 km at 46.5° N: the 2 km field fills a third of it

pytestmark = [
    pytest.mark.stacapi,
    pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH: `make setup` as root installs it"),
]


@pytest.fixture(scope="module")
def stack(stac_api: StacStack) -> StacStack:
    """The session's stack (restarted if an earlier test file stopped it); STAC Browser must be built."""
    found = stac_api if status(stac_api.state_dir).up else up(stac_api.data_dir, stac_api.state_dir)
    assert found.browser, "STAC Browser is not built: `make setup` runs scripts/stac-browser.sh"
    return found


@pytest.fixture(scope="module")
def http() -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # every URL here is loopback
    return session


def publish(app: str, workflow_dir: Path, stack: StacStack) -> list[str]:
    """`eopack publish` the run's output into its own collection; its stdout lines."""
    _, folder, collection = RUNS[app]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(
        [sys.executable, "-m", "eopack", "publish", str(workflow_dir / folder), "--stac-api", stack.api_url,
         "--collection", collection],
        cwd=ROOT, capture_output=True, text=True, env=env, check=False, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout.strip().splitlines()


def render(url: str, name: str) -> tuple[str, set[str]]:
    """Chromium, headless and offline but for loopback: (DOM after the scripts ran, hosts the page asked).

    Saves ``runs/browser-test/<name>.png``. The hosts are those of every request the page itself
    made (Chromium's own update/sign-in pings carry no page initiator and are left out).
    """
    SHOTS.mkdir(parents=True, exist_ok=True)
    work = SHOTS / f"{name}.chromium"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    assert CHROMIUM is not None
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={work / 'profile'}", "--no-proxy-server",
           "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",  # offline: no name resolves
           f"--log-net-log={work / 'net.json'}", "--virtual-time-budget=20000", "--window-size=1280,1000",
           f"--screenshot={SHOTS / f'{name}.png'}", "--dump-dom", url]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (SHOTS / f"{name}.png").stat().st_size > 10_000
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(url))
    requested = {
        urlsplit(url).hostname or "" for url, initiator in _requests(work / "net.json") if initiator == origin
    }
    shutil.rmtree(work / "profile", ignore_errors=True)
    return proc.stdout, requested


def _requests(netlog: Path) -> list[tuple[str, str | None]]:
    """(url, initiator) of every URL request in a Chromium net log."""
    text = netlog.read_text()
    try:
        log = json.loads(text)
    except ValueError:  # written while the browser quit: close the event list
        log = json.loads(text.rstrip().rstrip(",") + "]}")
    start = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    return [
        (e["params"]["url"], e["params"].get("initiator"))
        for e in log["events"]
        if e["type"] == start and "url" in e.get("params", {})
    ]


def tile(
    http: requests.Session, stack: StacStack, path: str, lonlat: tuple[float, float], **params: Any
) -> Any:
    """The RGBA pixel at ``lonlat`` of the PNG tile ``<tiles>/<path>/tiles/WebMercatorQuad/z/x/y.png``."""
    import morecantile

    tms = morecantile.tms.get("WebMercatorQuad")
    t = tms.tile(*lonlat, ZOOM)
    bounds, (x, y) = tms.xy_bounds(t), tms.xy(*lonlat)
    col = int((x - bounds.left) / (bounds.right - bounds.left) * 256)
    row = int((bounds.top - y) / (bounds.top - bounds.bottom) * 256)
    url = f"{stack.tiles_url}/{path}/tiles/WebMercatorQuad/{ZOOM}/{t.x}/{t.y}.png?{urlencode(params, doseq=True)}"
    answer = http.get(url, timeout=120)
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/png", answer.text[:500]
    assert "access-control-allow-origin" not in answer.headers  # no CORS * on tiles (issue 21)
    image = np.asarray(Image.open(io.BytesIO(answer.content)).convert("RGBA"))
    Image.fromarray(image).save(SHOTS / f"tile-{path.replace('/', '-')}.png")
    return image[row, col]


def field_lonlat() -> tuple[float, float]:
    """The centre of the sample scene's vegetated field (UTM in the generator's truth)."""
    from pyproj import Transformer

    from eopack_sample_data.s2 import TRUTH

    minx, miny, maxx, maxy = TRUTH.field.bbox
    lon, lat = Transformer.from_crs(TRUTH.epsg, 4326, always_xy=True).transform(
        (minx + maxx) / 2, (miny + maxy) / 2
    )
    return float(lon), float(lat)


@pytest.mark.workflow(RUNS["ndvi"][0])
def test_browser_shows_the_published_ndvi_and_its_tile_has_the_colormap_colour(
    workflow_dir: Path, stack: StacStack, http: requests.Session
) -> None:
    from rio_tiler.colormap import cmap

    from eopack_sample_data.s2 import TRUTH

    collection = RUNS["ndvi"][2]
    lines = publish("ndvi", workflow_dir, stack)
    page = browser_url(stack, collection)
    assert lines[-2:] == [f"{stack.api_url}/collections/{collection}", page]
    items = sorted(p.name for p in (workflow_dir / RUNS["ndvi"][1]).iterdir() if p.is_dir())
    assert len(items) == 6

    dom, hosts = render(str(page), "ndvi-collection")
    assert "NDVI" in dom and all(item in dom for item in items), dom[-3000:]
    assert hosts == {"127.0.0.1"}, f"the page fetched from {hosts}"

    clear = f"ndvi-{TRUTH.field_clear_dates[0]:%Y%m%d}"
    pixel = tile(http, stack, f"collections/{collection}/items/{clear}", field_lonlat(),
                 assets="ndvi", rescale="-1,1", colormap_name="rdylgn")  # fmt: skip
    # titiler rescales -1..1 to 0..255 and truncates to uint8, then looks the colour up
    index = int((TRUTH.field.ndvi_float32 + 1) / 2 * 255)
    assert index == 231
    assert tuple(pixel) == tuple(cmap.get("rdylgn")[index]), pixel


@pytest.mark.workflow(RUNS["cloudless-mosaic"][0])
def test_browser_shows_a_mosaic_item_and_the_mosaic_tile_is_true_colour(
    workflow_dir: Path, stack: StacStack, http: requests.Session
) -> None:
    from eopack_sample_data.s2 import TRUTH

    collection = RUNS["cloudless-mosaic"][2]
    lines = publish("cloudless-mosaic", workflow_dir, stack)
    assert lines[-1] == browser_url(stack, collection)
    first = sorted(p.name for p in (workflow_dir / RUNS["cloudless-mosaic"][1]).iterdir() if p.is_dir())[0]
    dom, hosts = render(str(browser_url(stack, collection, first)), "mosaic-item")
    assert first in dom and "median red reflectance" in dom, dom[-3000:]
    assert hosts == {"127.0.0.1"}, f"the page fetched from {hosts}"

    # the collection as one mosaic (titiler-pgstac searches it); reflectance 0..0.3 stretched to 0..255
    item = http.get(f"{stack.api_url}/collections/{collection}/items/{first}", timeout=30).json()
    band = item["assets"]["red"]["raster:bands"][0]
    scale, offset = band["scale"], band["offset"]
    low, high = (0 - offset) / scale, (0.3 - offset) / scale
    pixel = tile(http, stack, f"collections/{collection}", field_lonlat(),
                 assets=["red", "green", "blue"], rescale=f"{low:.0f},{high:.0f}")  # fmt: skip
    refl = TRUTH.field.reflectance
    expected = [(refl[b] - 0) / 0.3 * 255 for b in ("B04", "B03", "B02")]
    assert np.allclose(pixel[:3], expected, atol=1.5), (pixel, expected)
    assert pixel[1] > pixel[0] > pixel[2] and pixel[3] == 255  # green vegetation, opaque
