"""Issue 24 item 3: how a package's inputs reach Dask workers that run outside its container.

The rule (docs/packages.md, "Data locality"; eopack.locality): workers open Directory inputs
themselves, so in a container on a gateway a staged catalog reaches them only on a shared
filesystem (the tool maps its staging folder back to the host folder; eopack's own gateway shares
this machine's files), else it is refused in one line before any cluster exists; through a STAC API
the tool hands asset URLs to the graph. Either way the run gives the pixels of a local run. Every Dask package that reads a catalog is run both ways, in its image, on
the session gateway (local backend); test_gateway_slurm.py runs one of them on the Slurm backend.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from gateway_checks import (
    CATALOG_APPS,
    STAGED,
    _env,
    api_job,
    geozarr_by_url_is_refused_in_its_image,
    records,
    run_in_image_on_gateway,
)

from eopack.services.gateway import Gateway
from eopack.services.stac import StacStack
from eopack_cli import Eopack

pytestmark = [pytest.mark.gateway, pytest.mark.stacapi]

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("app", CATALOG_APPS)
def test_a_staged_catalog_in_a_container_runs_on_a_gateway_that_shares_the_files(
    eopack: Eopack,
    app: str,
    dask_gateway: Gateway,
    built_images: object,
    dask_local_runs: dict[str, Path],
    tmp_path: Path,
) -> None:
    """eopack's own gateway runs its workers on this machine's files: the tool maps the container's
    staging folder back to the host folder for the workers, and the pixels are a local run's."""
    job = ROOT / "app-packages" / app / "examples" / STAGED[app]
    log = run_in_image_on_gateway(eopack, app, job, dask_gateway, tmp_path / "run", dask_local_runs[app])
    host = (ROOT / "data" / "sample").resolve()
    assert re.search(
        rf"\d+ asset path\(s\) of /var/lib/cwl/stg[^ ]+/sample handed to the Dask workers as {host}", log
    )


def test_without_a_shared_filesystem_a_staged_catalog_is_refused_before_any_cluster(
    eopack: Eopack, dask_gateway: Gateway, built_images: object, tmp_path: Path
) -> None:
    """EOPACK_SHARED_FS=0: the site says its gateway's workers do not see this machine's files."""
    job = ROOT / "app-packages" / "ndvi" / "examples" / STAGED["ndvi"]
    before = set(records(dask_gateway))
    run_dir = tmp_path / "run"
    proc = eopack("run", "ndvi", str(job), "--outdir", str(run_dir), "-q", "--dask-gateway-url", dask_gateway.url,
                  env=_env(dask_gateway, {"EOPACK_SHARED_FS": "0"}))  # fmt: skip
    assert proc.returncode == 2, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if "error" in line]
    assert len(errors) == 1, proc.stderr
    assert "input 'input_catalog' is a local Directory" in errors[0]
    assert "cannot read where the container stages it" in errors[0] and "stac_api" in errors[0]
    assert "EOPACK_SHARED_FS=1" in errors[0] and "Traceback" not in proc.stderr
    assert set(records(dask_gateway)) == before  # no cluster was ever created
    assert not run_dir.exists() or not any(p.name != ".eopack" for p in run_dir.iterdir())


@pytest.mark.parametrize("app", CATALOG_APPS)
def test_through_the_stac_api_in_a_container_the_gateway_gives_the_local_pixels(
    eopack: Eopack,
    app: str,
    dask_gateway: Gateway,
    built_images: object,
    stac_api: StacStack,
    dask_local_runs: dict[str, Path],
    tmp_path: Path,
) -> None:
    job = api_job(app, stac_api.api_url, tmp_path)
    run_in_image_on_gateway(eopack, app, job, dask_gateway, tmp_path / "run", dask_local_runs[app])


def test_geozarrs_staged_store_in_a_container_on_a_gateway_is_refused_before_any_cluster(
    eopack: Eopack, dask_gateway: Gateway, built_images: object, tmp_path: Path
) -> None:
    """A Zarr store is opened at one path by the client and the workers: not mappable, even on
    eopack's own gateway (a shared filesystem). One line, exit 2, before any cluster."""
    job = ROOT / "app-packages" / "geozarr" / "examples" / "default.yml"
    before = set(records(dask_gateway))
    proc = eopack("run", "geozarr", str(job), "--outdir", str(tmp_path / "run"), "-q",
                  "--dask-gateway-url", dask_gateway.url, env=_env(dask_gateway))  # fmt: skip
    assert proc.returncode == 2, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and "input 'input_zarr' is a local Directory" in errors[0], proc.stderr
    assert errors[0].endswith("add --no-container.")
    assert set(records(dask_gateway)) == before


def test_geozarr_by_url_in_a_container_on_a_gateway_is_refused_by_the_tool_before_any_cluster(
    eopack: Eopack, dask_gateway: Gateway, built_images: object, tmp_path: Path
) -> None:
    """By URL the workers could read the product, but they also write the output store, a folder of
    the tool's container: the tool refuses in one line, where it used to fail late in a task."""
    geozarr_by_url_is_refused_in_its_image(eopack, dask_gateway, tmp_path)


def test_the_rule_refuses_directories_only_in_a_container_on_a_gateway() -> None:
    """A process graph (File) is read by the tool; a catalog (Directory) would be read by the workers."""
    from eopack.errors import GatewayInputsError
    from eopack.locality import check_gateway_inputs
    from eopack.package import find_package

    pkg = find_package("openeo-graph", ROOT)
    graph = {"class": "File", "location": "/data/ndvi.json"}
    by_url = {"process_graph": graph, "stac_api": "http://127.0.0.1:8089"}
    staged = {"process_graph": graph, "input_catalog": {"class": "Directory", "location": "/data/sample"}}
    # no error; the tool is told its paths are a container's (geozarr refuses on that)
    assert check_gateway_inputs(pkg, by_url, True, "http://127.0.0.1:8795") == {"EOPACK_CONTAINER_PATHS": "1"}
    assert (
        check_gateway_inputs(pkg, staged, False, "http://127.0.0.1:8795") == {}
    )  # host paths: workers open them
    check_gateway_inputs(pkg, staged, True, None)  # a local Dask cluster runs in the container
    with pytest.raises(GatewayInputsError) as err:
        check_gateway_inputs(pkg, staged, True, "http://127.0.0.1:8795")
    assert (err.value.input_id, err.value.kind, err.value.exit_code) == ("input_catalog", "Directory", 2)
    # on a shared filesystem the tool gets the host folder to map its staging folder back to
    shared = check_gateway_inputs(pkg, staged, True, "http://127.0.0.1:8795", shared=True)
    assert json.loads(shared["EOPACK_WORKER_PATHS"]) == ["/data/sample"]
    twice = {**staged, "input_catalog_2": {"class": "Directory", "location": "/elsewhere/sample"}}
    with pytest.raises(GatewayInputsError, match="input 'input_catalog_2'.*cannot be handed"):
        check_gateway_inputs(pkg, twice, True, "http://127.0.0.1:8795", shared=True)
    # geozarr's Zarr store is opened at one path by the client and the workers: never mapped
    zarr = {"input_zarr": {"class": "Directory", "location": "/data/product.zarr"}}
    with pytest.raises(GatewayInputsError, match="input 'input_zarr'.*; add --no-container"):
        check_gateway_inputs(find_package("geozarr", ROOT), zarr, True, "http://127.0.0.1:8795", shared=True)


def test_whether_the_workers_share_the_files() -> None:
    from eopack.locality import shared_filesystem

    assert shared_filesystem({}, own_gateway=True) and not shared_filesystem({}, own_gateway=False)
    assert shared_filesystem({"EOPACK_SHARED_FS": "1"}, own_gateway=False)
    assert not shared_filesystem({"EOPACK_SHARED_FS": "0"}, own_gateway=True)  # e.g. a port-forward
