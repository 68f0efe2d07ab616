"""openeo-graph against the generated sample data, whose ground truth is known exactly.

Also pins the facts about the openEO libraries this package relies on (what the parser hands to
``load_collection``; that integer input gives a wrong NDVI), so an upgrade that changes them fails here.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import xarray as xr
from rasterio.windows import from_bounds

from eopack_eo_common.errors import ToolInputError
from eopack_eo_common.s2 import DEFAULT_MASKED_CLASSES
from eopack_eo_common.stac import validate_tree
from eopack_openeo_graph.cli import main
from eopack_openeo_graph.core import GraphJob, parse, run, supported_processes
from eopack_openeo_graph.graph import GraphInputError, parse_process_graph
from eopack_openeo_graph.load import CollectionLoader, bbox_lonlat, parse_collection_map, temporal_range
from eopack_openeo_graph.processes import build_registry, check_supported
from eopack_sample_data.s2 import TRUTH

EXAMPLES = Path(__file__).resolve().parents[3] / "app-packages" / "openeo-graph" / "examples"


def _graph(name: str) -> dict[str, Any]:
    return json.loads((EXAMPLES / f"{name}.json").read_text())


def _write(tmp_path: Path, doc: Any, name: str = "graph.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    return path


def _run(tmp_path: Path, doc: Any, catalog: Path, **kw: Any) -> Path:
    job = GraphJob.from_args(process_graph=_write(tmp_path, doc), input_catalog=catalog.parent, **kw)
    return run(job, tmp_path / "out")


# ---- the graph document ----------------------------------------------------------------------------


def test_envelope_and_bare_flat_graph_are_both_accepted() -> None:
    doc = _graph("ndvi")
    wrapped, bare = parse_process_graph(doc), parse_process_graph(doc["process_graph"])
    assert wrapped.flat_graph == bare.flat_graph
    assert wrapped.process_ids == {
        "load_collection", "reduce_dimension", "array_element", "subtract", "add", "divide", "save_result"
    }  # fmt: skip
    assert (
        "$.process_graph.reducedimension1.arguments.reducer.process_graph.divide1.process_id",
        "divide",
    ) in (wrapped.processes)


@pytest.mark.parametrize(
    ("edit", "path", "problem"),
    [
        (lambda g: g["saveresult1"].pop("result"), "$.process_graph", 'exactly one node must have "result": true; found none'),
        (lambda g: g["loadcollection1"].update(result=True), "$.process_graph", "found loadcollection1, saveresult1"),
        (lambda g: g["loadcollection1"].update(process_id="load collection"), "$.process_graph.loadcollection1.process_id", "expected a process id"),
        (lambda g: g["loadcollection1"].update(arguments=[1]), "$.process_graph.loadcollection1.arguments", "expected an object"),
        (
            lambda g: g["reducedimension1"]["arguments"]["reducer"]["process_graph"]["divide1"]["arguments"]["y"].update(from_node="nope"),
            "$.process_graph.reducedimension1.arguments.reducer.process_graph.divide1.arguments.y.from_node",
            "refers to node 'nope'",
        ),
        (
            lambda g: g["reducedimension1"]["arguments"]["reducer"]["process_graph"]["divide1"].pop("result"),
            "$.process_graph.reducedimension1.arguments.reducer.process_graph",
            'exactly one node must have "result": true',
        ),
    ],
)  # fmt: skip
def test_structural_errors_name_the_json_path(edit: Any, path: str, problem: str) -> None:
    doc = copy.deepcopy(_graph("ndvi"))
    edit(doc["process_graph"])
    with pytest.raises(GraphInputError) as exc:
        parse_process_graph(doc, "g.json")
    assert exc.value.path == path
    assert problem in exc.value.problem
    assert str(exc.value).startswith(f"process graph g.json is invalid at {path}: ")


def test_json_syntax_error_names_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{"process_graph": {"a": {"process_id": "pi",}}}')
    with pytest.raises(
        GraphInputError, match=r"invalid at \$: not JSON: Expecting property name .*\(line 1, column 45\)"
    ):
        GraphJob.from_args(process_graph=path, input_catalog=tmp_path)


def test_unsupported_process_is_named_with_the_supported_ones() -> None:
    supported = supported_processes()
    assert {"load_collection", "save_result", "ndvi", "median", "mask", "filter_temporal", "and"} <= set(
        supported
    )
    assert "load_stac" not in supported and "run_udf" not in supported
    doc = copy.deepcopy(_graph("ndvi"))
    doc["process_graph"]["loadcollection1"]["process_id"] = "load_stac"
    with pytest.raises(ToolInputError) as exc:
        check_supported(parse_process_graph(doc), supported)
    message = str(exc.value)
    assert message.startswith(
        "process 'load_stac' at $.process_graph.loadcollection1.process_id is not supported"
    )
    assert f"supported: {', '.join(supported)}" in message


def test_collection_map() -> None:
    assert parse_collection_map("X=y") == {"SENTINEL2_L2A": "sentinel-2-l2a", "X": "y"}
    with pytest.raises(ToolInputError, match="must look like OPENEO_ID=stac-collection-id"):
        parse_collection_map("SENTINEL2_L2A")


# ---- facts about the libraries -----------------------------------------------------------------------


def _load_kwargs(doc: dict[str, Any]) -> dict[str, Any]:
    graph = parse(parse_process_graph(doc))
    (node,) = [n for n, d in graph.G.nodes(data=True) if d["process_id"] == "load_collection"]
    return dict(graph.G.nodes[node]["resolved_kwargs"])


def test_parser_hands_load_collection_a_bbox_with_wkt_and_utc_datetimes() -> None:
    from openeo_pg_parser_networkx.pg_schema import BoundingBox, TemporalInterval

    kwargs = _load_kwargs(_graph("ndvi"))
    extent, interval = kwargs["spatial_extent"], kwargs["temporal_extent"]
    assert isinstance(extent, BoundingBox) and extent.crs.startswith("GEOGCRS[")
    assert isinstance(interval, TemporalInterval)
    assert interval.start.root.utcoffset() == dt.timedelta(0)
    assert bbox_lonlat(extent) == (11.4, 46.5, 11.5, 46.6)
    first, last = temporal_range(interval)
    assert (first, last) == (
        dt.datetime(2024, 6, 1, tzinfo=dt.UTC),
        dt.datetime(2024, 6, 30, tzinfo=dt.UTC) - dt.timedelta(microseconds=1),
    )
    assert type(first) is dt.datetime  # not pendulum's subclass


def test_bbox_in_utm_is_converted_to_degrees() -> None:
    west, south, east, north = bbox_lonlat(
        {"west": 684000, "south": 5156000, "east": 686000, "north": 5158000, "crs": 32632}
    )
    assert 11.39 < west < east < 11.43 and 46.53 < south < north < 46.56


def test_integer_input_gives_a_wrong_ndvi_in_the_library() -> None:
    """Why load_collection always hands float32 over: uint16 B08 - B04 wraps where red > nir."""
    from eopack_openeo_graph.processes import library_processes

    ndvi = library_processes()["ndvi"]
    dn = xr.DataArray(
        np.array([[[[1400]], [[5000]]], [[[3000]], [[2000]]]], dtype="uint16").transpose(1, 0, 2, 3),
        dims=("bands", "t", "y", "x"),
        coords={"bands": ["red", "nir"]},
    )
    wrong = ndvi(dn).values.ravel()
    right = ndvi(dn.astype("float32")).values.ravel()
    np.testing.assert_allclose(right, [(5000 - 1400) / 6400, (2000 - 3000) / 5000], rtol=1e-6)
    assert wrong[1] > 0 > right[1]  # the wrapped difference turns water/soil into "vegetation"


# ---- running graphs on the sample data ---------------------------------------------------------------


def test_loaded_cube_is_float32_t_bands_y_x_with_scl(sample_catalog: Path) -> None:
    loader = CollectionLoader(input_catalog=sample_catalog.parent)
    cube = loader.load_collection(
        "SENTINEL2_L2A",
        {"west": 11.4, "south": 46.5, "east": 11.5, "north": 46.6},
        ["2024-06-01", "2024-06-10"],
        ["nir", "SCL"],
    )
    assert cube.dims == ("t", "bands", "y", "x") and cube.dtype == np.float32
    assert list(cube["bands"].values) == ["nir", "SCL"]
    x0, y0, x1, y1 = TRUTH.field.bbox
    field = cube.sel(x=slice(x0 + 100, x1 - 100), y=slice(y1 - 100, y0 + 100)).isel(t=0).compute()
    np.testing.assert_allclose(field.sel(bands="nir"), TRUTH.field.reflectance["B08"], atol=1e-6)
    assert (field.sel(bands="SCL") == TRUTH.field.scl).all()
    assert loader.loaded[0].collection == "sentinel-2-l2a" and loader.loaded[0].resolution == TRUTH.resolution


def test_seed_graph_gives_the_exact_field_ndvi_and_valid_stac(sample_catalog: Path, tmp_path: Path) -> None:
    catalog = _run(tmp_path, _graph("ndvi"), sample_catalog)
    report = validate_tree(catalog.parent)
    assert report.ok, report.errors
    june = [d for d in TRUTH.dates if d.month == 6]
    assert report.documents == 1 + len(june)
    clear = next(d for d in TRUTH.field_clear_dates if d.month == 6)
    with rasterio.open(catalog.parent / f"openeo-{clear:%Y%m%d}" / "data.tif") as src:
        x0, y0, x1, y1 = TRUTH.field.bbox
        field = src.read(
            1, window=from_bounds(x0 + 100, y0 + 100, x1 - 100, y1 - 100, transform=src.transform)
        )
        assert src.crs.to_epsg() == TRUTH.epsg and src.dtypes[0] == "float32"
    np.testing.assert_allclose(field, TRUTH.field.ndvi_float32, rtol=0, atol=1e-6)
    item = json.loads((catalog.parent / f"openeo-{clear:%Y%m%d}" / f"openeo-{clear:%Y%m%d}.json").read_text())
    assert item["properties"]["datetime"].startswith(f"{clear:%Y-%m-%d}")
    assert item["assets"]["data"]["roles"] == ["data"]


def _reference_median(out: Path, catalog: Path) -> np.ndarray:
    """The median example with plain numpy on the tile-0 COGs: DN -> reflectance, SCL mask, nanmedian."""
    with rasterio.open(out) as src:
        bounds, shape = src.bounds, src.shape
    layers = []
    for when in [d for d in TRUTH.dates if d.month == 6]:
        folder = (
            catalog.parent / TRUTH.collection_id / f"S2B_MSIL2A_{when:%Y%m%dT%H%M%S}_T{TRUTH.tiles[0].name}"
        )
        bands = {}
        for name in ("B04", "B08", "SCL"):
            with rasterio.open(folder / f"{name}.tif") as src:
                window = from_bounds(*bounds, transform=src.transform)
                bands[name] = src.read(1, window=window.round_offsets().round_lengths())
        assert bands["SCL"].shape == shape
        red, nir = (np.where(bands[b] == 0, np.nan, bands[b] * np.float32(TRUTH.scale) + np.float32(TRUTH.offset)).astype("float32") for b in ("B04", "B08"))  # fmt: skip
        ndvi = (nir - red) / (nir + red)
        layers.append(np.where(np.isin(bands["SCL"], DEFAULT_MASKED_CLASSES), np.nan, ndvi))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN pixels (cloudy on every date)
        return np.nanmedian(np.stack(layers), axis=0).astype("float32")


def test_median_example_equals_a_numpy_reference(sample_catalog: Path, tmp_path: Path) -> None:
    catalog = _run(tmp_path, _graph("median-ndvi"), sample_catalog)
    assert validate_tree(catalog.parent).ok
    out = catalog.parent / "openeo-result" / "data.tif"
    with rasterio.open(out) as src:
        got = src.read(1)
    expected = _reference_median(out, sample_catalog)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6, equal_nan=True)
    # The trap date (a cloud over the whole field) is masked, so the field is exact, not cloud-white.
    with rasterio.open(out) as src:
        x0, y0, x1, y1 = TRUTH.field.bbox
        field = src.read(
            1, window=from_bounds(x0 + 100, y0 + 100, x1 - 100, y1 - 100, transform=src.transform)
        )
    np.testing.assert_allclose(field, TRUTH.field.ndvi_float32, rtol=0, atol=1e-6)
    item = json.loads((catalog.parent / "openeo-result" / "openeo-result.json").read_text())
    assert item["properties"]["datetime"] is None and item["properties"]["start_datetime"]


def test_netcdf_and_graph_without_save_result(sample_catalog: Path, tmp_path: Path) -> None:
    doc = _graph("ndvi")
    doc["process_graph"]["saveresult1"]["arguments"]["format"] = "netCDF"
    (tmp_path / "nc").mkdir()
    catalog = _run(tmp_path / "nc", doc, sample_catalog)
    data = xr.open_dataarray(catalog.parent / "openeo-result" / "result.nc", engine="scipy")
    assert data.sizes["t"] == 3 and data.dtype == np.float32
    bare = _graph("ndvi")["process_graph"]
    del bare["saveresult1"]
    bare["reducedimension1"]["result"] = True
    (tmp_path / "bare").mkdir()
    catalog = _run(tmp_path / "bare", bare, sample_catalog)
    assert sorted(p.name for p in catalog.parent.glob("openeo-*/data.tif")) == ["data.tif"] * 3


def test_input_errors_leave_no_output(sample_catalog: Path, tmp_path: Path) -> None:
    doc = _graph("ndvi")
    doc["process_graph"]["loadcollection1"]["arguments"]["id"] = "LANDSAT8_L2"
    with pytest.raises(ToolInputError, match=r"unknown collection 'LANDSAT8_L2'; available: SENTINEL2_L2A \(-> sentinel-2-l2a\), sentinel-2-l2a"):  # fmt: skip
        _run(tmp_path, doc, sample_catalog)
    doc = _graph("ndvi")
    doc["process_graph"]["saveresult1"]["arguments"]["format"] = "JPEG"
    with pytest.raises(
        ToolInputError, match="save_result format 'JPEG' is not supported; use one of GTiff, netCDF"
    ):
        _run(tmp_path, doc, sample_catalog)
    doc = _graph("ndvi")
    doc["process_graph"]["reducedimension1"]["arguments"]["reducer"]["process_graph"]["arrayelement1"]["arguments"]["label"] = "B99"  # fmt: skip
    with pytest.raises(ToolInputError, match="process 'array_element' failed"):
        _run(tmp_path, doc, sample_catalog)
    assert not list((tmp_path / "out").iterdir())


def test_cli_prints_one_line_and_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = _graph("ndvi")
    doc["process_graph"]["reducedimension1"]["process_id"] = "reduce_everything"
    code = main(["--process-graph", str(_write(tmp_path, doc)), "--input-catalog", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert err[0].startswith(
        "openeo-graph: error: process 'reduce_everything' at $.process_graph.reducedimension1.process_id"
    )


def test_registry_uses_our_io_processes() -> None:
    registry = build_registry({"load_collection": lambda id: id, "save_result": lambda data: True})
    assert registry["load_collection"].implementation(id="X") == "X"
    assert registry["and"].spec["id"] == "and"


def test_stand_in_for_a_missing_stac_validator(monkeypatch: pytest.MonkeyPatch) -> None:
    """The container's lock lacks stac-validator; only load_stac (not offered) would use it."""
    import importlib.util
    import sys

    from eopack_openeo_graph import processes

    monkeypatch.delitem(sys.modules, "stac_validator", raising=False)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    processes._stand_in_for_stac_validator()
    stand_in = sys.modules["stac_validator"]
    monkeypatch.delitem(sys.modules, "stac_validator")
    with pytest.raises(ImportError, match="only openEO load_stac needs it"):
        stand_in.stac_validator.StacValidate("x")
