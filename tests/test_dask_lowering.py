"""Runner-side DaskGatewayRequirement: evaluation, lowering on a copy, and what the tool receives."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from eopack.dask import DaskRequirement, evaluate, lower, memory_bytes, to_requirement
from eopack.errors import PackageInvalidError
from eopack.package import as_list, class_name, find_package

ECHO = Path(__file__).parent / "data/packages/dask-echo/dask-echo.cwl"  # a test package


@pytest.mark.parametrize(
    ("text", "expected"), [("2G", 2 * 1024**3), ("2GB", 2 * 10**9), ("512M", 512 * 1024**2)]
)
def test_memory_units(text: str, expected: int) -> None:
    assert memory_bytes(text) == expected


@pytest.mark.parametrize(
    "text", ["2Gi", "lots", "2Mi"]
)  # "2g", "2 G": accepted as by the tools (test_memory_units)
def test_memory_units_refused_with_the_allowed_ones(text: str) -> None:
    with pytest.raises(ValueError, match=r"K, M, G, T \(×1024\) or KB, MB, GB, TB \(×1000\)"):
        memory_bytes(text)


@pytest.mark.parametrize(
    ("req", "workers"),
    [
        (DaskRequirement(1, 1, 4, "2G", "8G"), 4),
        (DaskRequirement(2, 2, 8, "4G", "8G"), 2),
        (DaskRequirement(1, 2, 8, "1G", "64G"), 4),
        (DaskRequirement(4, 4, 2, "1G", "1G"), 1),
    ],
)
def test_scale_formula(req: DaskRequirement, workers: int) -> None:
    assert req.workers == workers


def _tool(pkg):
    return next(t for t in pkg.copy_doc()["$graph"] if t["class"] == "CommandLineTool")


def test_expressions_referencing_inputs_are_evaluated() -> None:
    pkg = find_package(str(ECHO))
    req = evaluate(pkg, _tool(pkg), {"workers": 5})
    assert req == DaskRequirement(
        worker_cores=5,
        worker_cores_limit=1,
        cluster_max_cores=10,
        worker_memory="3G",
        cluster_max_memory="12G",
    )
    assert req.workers == 4  # min(10 // 1, 12G // 3G)


def test_arithmetic_without_node_matches_the_javascript_engine() -> None:
    """The Python fast path for one-operator expressions gives what node gives, or steps aside."""
    from cwl_utils.expression import do_eval

    from eopack.dask import _arithmetic

    js = [{"class": "InlineJavascriptRequirement"}]
    inputs = {"w": 3, "f": 1.5, "z": 0, "s": "2", "b": True}
    cases = ["$(inputs.w * 2)", "$(inputs.w / 2)", "$(8 / inputs.w)", "$(inputs.f * 4)", "$(inputs.w - 2.5)"]
    cases += ["$(2 + inputs.w)", "$( inputs.w*inputs.f )", "$(inputs.f - inputs.f)"]
    for expr in cases:
        assert _arithmetic(expr, inputs) == do_eval(expr, inputs, js, None, None, {}), expr
        assert type(_arithmetic(expr, inputs)) is type(do_eval(expr, inputs, js, None, None, {})), expr
    # not numbers, a division by zero, anything longer: left to node
    for expr in ["$(inputs.s * 2)", "$(inputs.b + 1)", "$(inputs.w / inputs.z)", "$(inputs.w * 2 + 1)"]:
        assert _arithmetic(expr, inputs) is None, expr


def test_defaults_apply_when_the_job_omits_inputs() -> None:
    pkg = find_package(str(ECHO))
    assert evaluate(pkg, _tool(pkg), {}).cluster_max_cores == 6


def test_bad_evaluated_memory_is_reported() -> None:
    pkg = find_package(str(ECHO))
    with pytest.raises(PackageInvalidError, match="'4Gi'"):
        evaluate(pkg, _tool(pkg), {"memory": "4Gi"})


def test_lowering_edits_a_copy_only() -> None:
    pkg = find_package(str(ECHO))
    before = hashlib.sha256(ECHO.read_bytes()).hexdigest()
    doc = pkg.copy_doc()
    lowered = lower(pkg, doc, {"workers": 2}, gateway_url="http://127.0.0.1:8000")
    tool = next(t for t in doc["$graph"] if t["class"] == "CommandLineTool")
    env = next(r for r in as_list(tool["requirements"]) if class_name(r) == "EnvVarRequirement")["envDef"]
    values = {e["envName"]: e["envValue"] for e in env}
    assert values["DASK_GATEWAY_WORKER_CORES"] == "2"
    assert values["DASK_GATEWAY_CLUSTER_MAX_CORES"] == "4"
    assert values["DASK_GATEWAY_URL"] == "http://127.0.0.1:8000"
    assert lowered["echo"].workers == 4
    assert hashlib.sha256(ECHO.read_bytes()).hexdigest() == before
    assert pkg.doc != doc


def test_existing_env_vars_of_the_tool_are_kept() -> None:
    pkg = find_package("convert-url")
    doc = pkg.copy_doc()
    lower(pkg, doc, {})
    tool = next(t for t in doc["$graph"] if t["class"] == "CommandLineTool")
    env = next(r for r in as_list(tool["requirements"]) if class_name(r) == "EnvVarRequirement")
    names = [e["envName"] for e in as_list(env["envDef"], "envName", "envValue")]
    assert "DASK_TEMPORARY_DIRECTORY" in names and "DASK_GATEWAY_WORKER_MEMORY" in names


def test_calrissian_copy_has_it_under_requirements() -> None:
    pkg = find_package("convert-url")
    doc = to_requirement(pkg.copy_doc())
    tool = next(t for t in doc["$graph"] if t["class"] == "CommandLineTool")
    assert any(class_name(r) == "DaskGatewayRequirement" for r in as_list(tool["requirements"]))
    assert not any(class_name(h) == "DaskGatewayRequirement" for h in as_list(tool.get("hints")))


def test_the_tool_receives_the_lowered_variables_through_cwltool(tmp_path: Path) -> None:
    """End to end through real cwltool: the values reach the tool's environment."""
    job = tmp_path / "job.yml"
    job.write_text("workers: 2\nmemory: 1G\n")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "eopack",
            "run",
            str(ECHO),
            str(job),
            "--outdir",
            str(tmp_path / "run"),
            "--no-container",
            "--dask-gateway-url",
            "http://127.0.0.1:1/gw",
            "-q",
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    lines = (tmp_path / "run/result/env.txt").read_text().splitlines()
    assert lines == [
        "DASK_GATEWAY_CLUSTER_MAX_CORES=4",
        "DASK_GATEWAY_CLUSTER_MAX_RAM=12G",
        "DASK_GATEWAY_URL=http://127.0.0.1:1/gw",
        "DASK_GATEWAY_WORKER_CORES=2",
        "DASK_GATEWAY_WORKER_CORES_LIMIT=1",
        "DASK_GATEWAY_WORKER_MEMORY=1G",
    ]
    assert "Dask for echo: 4 worker(s) × 2 core(s)" in proc.stderr
    assert "running without containers (--no-container given)" in proc.stderr
