"""The Calrissian runner up to the cluster boundary: command line, manifests, RBAC, the CWL it is given.

No Kubernetes can run here, so the manifests are validated offline against the Kubernetes OpenAPI
schemas (kubernetes-validate, strict), the RBAC is compared with what Calrissian's source calls, the
transformed package is validated by cwltool with Calrissian's extension schema, and the command line
is parsed by Calrissian's own argument parser (PyPI ``calrissian`` in an isolated venv under
``.cache/venvs``; its pins conflict with ours).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from ruamel.yaml import YAML

from eopack.commands import cli
from eopack.job import load_job
from eopack.k8s import CALRISSIAN_RULES, validate_manifests
from eopack.package import cwltool_validate, find_package, repo_root
from eopack.runners.base import RunOptions
from eopack.runners.calrissian import DEFAULT_GATEWAY_URL, plan, validate_with_extension

APP = "cloudless-mosaic"

# Seed 003 ("Direct Calrissian Command"): option -> value, in its order.
SEED_003_OPTIONS = {
    "--stdout": "/calrissian/results.json",
    "--stderr": "/calrissian/app.log",
    "--max-ram": "16G",
    "--max-cores": "8",
    "--tmp-outdir-prefix": "/calrissian/tmp/",
    "--outdir": "/calrissian/results",
    "--usage-report": "/calrissian/usage.json",
    "--tool-logs-basepath": "/calrissian/logs",
    "--pod-serviceaccount": "calrissian-sa",
    "--dask-gateway-url": "http://traefik-dask-gateway.eoap-dask-gateway.svc.cluster.local:80",
}


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`eopack run cloudless-mosaic --runner calrissian --dry-run` (the acceptance command)."""
    out = tmp_path_factory.mktemp("calrissian") / "run"
    result = CliRunner().invoke(
        cli, ["run", APP, "--runner", "calrissian", "--dry-run", "--outdir", str(out)]
    )
    assert result.exit_code == 0, result.output
    return out / ".eopack"


def _options(command: list[str]) -> dict[str, str]:
    pairs = {}
    for i, arg in enumerate(command):
        if arg in SEED_003_OPTIONS:
            pairs[arg] = command[i + 1]
    return pairs


def _manifests(meta: Path) -> list[dict[str, Any]]:
    return [d for d in YAML(typ="safe").load_all((meta / "manifests.yaml").read_text()) if d]


def test_dry_run_writes_the_run_files(dry_run: Path) -> None:
    assert {p.name for p in dry_run.iterdir()} >= {"command.txt", "manifests.yaml", f"{APP}.cwl", "job.yml"}


def test_command_line_is_seed_003s(dry_run: Path) -> None:
    text = (dry_run / "command.txt").read_text()
    command = [a for a in __import__("shlex").split(text.replace("\\\n", " "))]
    assert command[0] == "calrissian"
    options = _options(command)
    assert list(options) == list(SEED_003_OPTIONS)  # every option of the seed, in the seed's order
    # Same layout on the PVC; caps from the package (largest tool ramMax/coresMax); a tool identity.
    same = {
        k: v
        for k, v in SEED_003_OPTIONS.items()
        if k not in ("--max-ram", "--max-cores", "--pod-serviceaccount")
    }
    assert {k: options[k] for k in same} == same
    assert (options["--max-ram"], options["--max-cores"]) == ("8G", "4")
    assert options["--pod-serviceaccount"] == "calrissian-tools"
    entry = command.index(f"/etc/calrissian/input/{APP}.cwl#{APP}")
    assert command[entry + 1 :] == [
        "--start_date", "2024-06-01",
        "--end_date", "2024-07-31",
        "--aoi", "11.4,46.5,11.65,46.6",
        "--bands", "red", "--bands", "green", "--bands", "blue", "--bands", "nir",
        "--resolution", "20",
        "--input_catalog", "/calrissian/inputs/input_catalog",
    ]  # fmt: skip


def test_job_runs_the_same_command_with_the_job_order_configmap(dry_run: Path) -> None:
    objects = _manifests(dry_run)
    job = next(o for o in objects if o["kind"] == "Job")
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["calrissian"]
    command = (dry_run / "command.txt").read_text()
    args = container["args"]
    entry = args.index(f"/etc/calrissian/input/{APP}.cwl#{APP}")
    assert args[entry + 1 :] == ["/etc/calrissian/input/job.yml"]
    for option in args[:entry]:
        assert option in command
    order = next(
        o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"].endswith("-job-order")
    )
    assert set(order["data"]) == {f"{APP}.cwl", "job.yml"}
    assert YAML(typ="safe").load(order["data"]["job.yml"])["input_catalog"] == {
        "class": "Directory",
        "location": "/calrissian/inputs/input_catalog",
    }
    gateway = next(
        o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"].endswith("-dask-gateway")
    )
    assert json.loads(gateway["data"]["gateway.yaml"]) == {"gateway": {"address": DEFAULT_GATEWAY_URL}}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert mounts["/etc/dask"] == "dask-gateway" and mounts["/calrissian"] == "calrissian-volume"


def test_manifests_validate_against_kubernetes_schemas(dry_run: Path) -> None:
    from kubernetes_validate import utils

    objects = _manifests(dry_run)
    kinds = sorted(o["kind"] for o in objects)
    assert kinds == sorted(
        ["Namespace", "ServiceAccount", "ServiceAccount", "Role", "RoleBinding", "PersistentVolumeClaim",
         "ConfigMap", "ConfigMap", "Job"]
    )  # fmt: skip
    version = utils.latest_version()
    assert tuple(int(p) for p in version.split(".")[:2]) >= (1, 30), version
    assert validate_manifests(objects, version) == []
    # The validator does catch mistakes (strict mode refuses unknown fields).
    broken = json.loads(json.dumps(next(o for o in objects if o["kind"] == "Job")))
    broken["spec"]["template"]["spec"]["containers"][0]["imagePullPolice"] = "Always"
    assert validate_manifests([broken], version)


def test_rbac_grants_exactly_what_calrissian_calls(dry_run: Path) -> None:
    objects = _manifests(dry_run)
    assert not [o for o in objects if o["kind"] in ("ClusterRole", "ClusterRoleBinding", "Secret")]
    role = next(o for o in objects if o["kind"] == "Role")
    granted = {
        (g, r, v)
        for rule in role["rules"]
        for g in rule["apiGroups"]
        for r in rule["resources"]
        for v in rule["verbs"]
    }
    assert granted == {
        ("", "pods", "create"), ("", "pods", "get"), ("", "pods", "list"), ("", "pods", "watch"),
        ("", "pods", "delete"), ("", "pods/log", "get"),
        ("", "configmaps", "create"), ("", "configmaps", "get"), ("", "configmaps", "delete"),
    }  # fmt: skip
    assert granted == {(g, r, v) for g, r, verbs in CALRISSIAN_RULES for v in verbs}
    assert not any("*" in str(rule) or rule.get("resourceNames") == [] for rule in role["rules"])
    binding = next(o for o in objects if o["kind"] == "RoleBinding")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    job = next(o for o in objects if o["kind"] == "Job")
    pod = job["spec"]["template"]["spec"]
    assert [s["name"] for s in binding["subjects"]] == [pod["serviceAccountName"]]
    tools = next(
        o for o in objects if o["kind"] == "ServiceAccount" and o["metadata"]["name"] == "calrissian-tools"
    )
    assert tools["automountServiceAccountToken"] is False  # tool pods: no API access at all


def test_job_is_non_root_bounded_and_cleaned_up(dry_run: Path) -> None:
    job = next(o for o in _manifests(dry_run) if o["kind"] == "Job")
    spec = job["spec"]
    assert spec["ttlSecondsAfterFinished"] > 0 and spec["backoffLimit"] == 0
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    container = pod["containers"][0]
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["resources"]["limits"]["cpu"] and container["resources"]["limits"]["memory"]
    env = {e["name"]: e for e in container["env"]}
    assert env["CALRISSIAN_POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    pvc = next(o for o in _manifests(dry_run) if o["kind"] == "PersistentVolumeClaim")
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]


def test_transformed_package_has_the_requirement_and_validates(dry_run: Path) -> None:
    cwl = dry_run / f"{APP}.cwl"
    doc = YAML(typ="safe").load(cwl.read_text())
    tool = next(p for p in doc["$graph"] if p["class"] == "CommandLineTool")
    assert not [h for h in tool.get("hints") or [] if "DaskGatewayRequirement" in str(h.get("class"))]
    dask = [r for r in tool["requirements"] if str(r.get("class")).endswith("DaskGatewayRequirement")]
    assert dask and dask[0]["clusterMaxCores"] == 4
    # Plain cwltool refuses the unknown class under requirements; with Calrissian's schema it is valid.
    assert "DaskGatewayRequirement" in (cwltool_validate(cwl) or "")
    assert validate_with_extension(cwl, APP) is None


def test_flags_parse_to_the_job_order(dry_run: Path) -> None:
    """cwltool's per-input parser (Calrissian inherits it) turns the flags back into job.yml."""
    from cwltool.argparser import generate_parser
    from cwltool.context import LoadingContext
    from cwltool.load_tool import load_tool
    from cwltool.workflow import default_make_tool

    pkg = find_package(APP)
    tool = load_tool(
        f"{pkg.path.as_uri()}#{APP}", LoadingContext({"construct_tool_object": default_make_tool})
    )
    parser = generate_parser(argparse.ArgumentParser(prog=APP), tool, {}, [], False)
    command = __import__("shlex").split((dry_run / "command.txt").read_text().replace("\\\n", " "))
    flags = command[command.index(f"/etc/calrissian/input/{APP}.cwl#{APP}") + 1 :]
    parsed = {
        k: v for k, v in vars(parser.parse_args(flags)).items() if v not in (None, False) and k != "job_order"
    }
    job = YAML(typ="safe").load((dry_run / "job.yml").read_text())
    parsed["input_catalog"] = {k: parsed["input_catalog"][k] for k in ("class", "location")}
    parsed["input_catalog"]["location"] = parsed["input_catalog"]["location"].removeprefix("file://")
    assert {k: parsed[k] for k in job} == job
    # What the flags leave out is a Workflow default, as with the job file.
    assert set(parsed) - set(job) <= {"collection", "bands", "resolution", "dask_report"}


def test_dry_run_is_refused_by_runners_without_it() -> None:
    result = CliRunner().invoke(cli, ["run", "convert-url", "--dry-run"])
    assert result.exit_code == 2
    assert "no --dry-run" in result.output and "calrissian" in result.output


def test_without_a_cluster_the_error_is_one_actionable_line(root: Path, tmp_path: Path) -> None:
    env = {**os.environ, "KUBECONFIG": str(tmp_path / "missing-kubeconfig")}
    proc = subprocess.run(
        [
            str(Path(sys.executable).parent / "eopack"),
            "run",
            APP,
            "--runner",
            "calrissian",
            "--outdir",
            str(tmp_path / "r"),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=root,
        timeout=300,
    )
    assert proc.returncode == 1, proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if "error:" in ln]
    assert len(errors) == 1, proc.stderr
    assert "Kubernetes is not available" in errors[0] and "--dry-run" in errors[0]
    assert (tmp_path / "r" / ".eopack" / "manifests.yaml").exists()  # written before giving up


def test_gateway_and_runner_options_pass_through() -> None:
    pkg = find_package(APP)
    options = RunOptions(
        dask_gateway_url="http://gw.dask.svc:80",
        extra_args=["--namespace", "eo", "--max-ram", "16G", "--max-cores", "8", "--debug"],
    )
    the_plan = plan(pkg, load_job(pkg.default_job), "r1", options)
    assert the_plan.spec.namespace == "eo"
    assert all(o["metadata"].get("namespace") in (None, "eo") for o in the_plan.objects)
    opts = _options(the_plan.command)
    assert (opts["--max-ram"], opts["--max-cores"], opts["--dask-gateway-url"]) == (
        "16G",
        "8",
        "http://gw.dask.svc:80",
    )
    assert "--debug" in the_plan.command[: the_plan.command.index(f"/etc/calrissian/input/{APP}.cwl#{APP}")]


# --- Calrissian's own argument parser, in an isolated venv -------------------------------------

CALRISSIAN_PIN = "calrissian==0.18.1"  # newest on PyPI; the dask-gateway branch (0.19) is not published


def isolated_venv(name: str, requirements: list[str]) -> Path:
    """``.cache/venvs/<name>``, created with pip from PyPI on first use; skips when pip cannot install."""
    venv = repo_root() / ".cache" / "venvs" / name
    python = venv / "bin" / "python"
    marker = venv / ".installed"
    if marker.exists() and marker.read_text() == " ".join(requirements):
        return python
    base = os.environ.get("EOPACK_VENV_PYTHON") or sys.executable
    steps = [
        [base, "-m", "venv", "--clear", str(venv)],
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *requirements],
    ]
    for cmd in steps:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        if proc.returncode != 0:
            last = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
            pytest.skip(f"cannot install {' '.join(requirements)} in an isolated venv: {last[0]}")
    marker.write_text(" ".join(requirements))
    return python


PARSE = textwrap.dedent(
    """
    import json, sys
    from cwltool.argparser import arg_parser
    from calrissian.main import add_arguments
    parser = arg_parser()
    add_arguments(parser)
    known = {a for action in parser._actions for a in action.option_strings}
    added = []
    if "--dask-gateway-url" not in known:  # the dask-gateway branch's one new option
        parser.add_argument("--dask-gateway-url")
        added.append("--dask-gateway-url")
    args = parser.parse_args(sys.argv[1:])
    print(json.dumps({"args": {k: v for k, v in vars(args).items() if isinstance(v, (str, int, list))
                               or v is None}, "added": added}))
    """
)


def test_command_line_round_trips_through_calrissians_parser(dry_run: Path) -> None:
    python = isolated_venv("calrissian-0.18.1", [CALRISSIAN_PIN])
    command = __import__("shlex").split((dry_run / "command.txt").read_text().replace("\\\n", " "))
    proc = subprocess.run(
        [str(python), "-c", PARSE, *command[1:]], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    found = json.loads(proc.stdout)
    args = found["args"]
    assert found["added"] == ["--dask-gateway-url"]  # 0.18.1 has everything but the Dask option
    assert args["max_ram"] == "8G" and args["max_cores"] == "4"
    assert args["tmp_outdir_prefix"] == "/calrissian/tmp/" and args["outdir"] == "/calrissian/results"
    assert (
        args["usage_report"] == "/calrissian/usage.json" and args["tool_logs_basepath"] == "/calrissian/logs"
    )
    assert args["stdout"] == "/calrissian/results.json" and args["stderr"] == "/calrissian/app.log"
    assert args["pod_serviceaccount"] == "calrissian-tools"
    assert args["dask_gateway_url"] == DEFAULT_GATEWAY_URL
    assert args["workflow"] == f"/etc/calrissian/input/{APP}.cwl#{APP}"
    assert args["job_order"][:2] == ["--start_date", "2024-06-01"]
