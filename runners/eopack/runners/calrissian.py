"""Run a package with Calrissian on Kubernetes: the command line, the manifests, and (with a cluster) the run.

Calrissian (≥ 0.19, Terradue's dask-gateway branch) executes each CWL step as a pod and, for a tool
with ``calrissian:DaskGatewayRequirement`` under **requirements**, creates a Dask Gateway cluster for
it; as a *hint* it crashes (DESIGN.md §3). So the run copy has the requirement moved to
``requirements`` (``eopack.dask.to_requirement``), is checked with cwltool plus the extension schema
(``EXTENSION_SCHEMA``: plain ``cwltool --validate`` rejects the unknown class there), and is given to
Calrissian with the ``#<app>`` entry point.

A run directory gets, under ``.eopack/``: the transformed package, ``job.yml`` (local files mapped
onto the PVC), ``command.txt`` (the ``calrissian`` command line as in seed 003, inputs as
``--<input> value``) and ``manifests.yaml`` (``kubectl apply -f`` ready). ``--dry-run`` stops there.
Otherwise, when a kubeconfig cluster answers, kubectl applies them, copies local inputs onto the PVC,
follows the Job's log and copies the results back.

Runner options go after ``--``: ``--namespace NS`` (default ``eopack``), ``--image IMAGE``,
``--storage SIZE``, ``--storage-class NAME``, ``--max-ram 16G``, ``--max-cores 8``; anything else is
passed to calrissian itself (e.g. ``--debug``).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shlex
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from io import StringIO
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.scalarstring import LiteralScalarString

from ..console import notice
from ..dask import to_requirement
from ..errors import EopackError, PackageInvalidError, ServiceUnavailableError
from ..k8s import DEFAULT_IMAGE, HELPER_SELECTOR, INPUT_MOUNT, MOUNT, JobSpec, helper_pod, manifests
from ..package import DASK_CLASS, Package, as_list, class_name, repo_root, short_id
from .base import (
    RunOptions,
    RunResult,
    RunStatus,
    check_inputs,
    collect_outputs,
    default_run_dir,
    load_job,
    tee_process,
    tool_commands,
    tool_errors,
)

__all__ = [
    "DASK_REQUIREMENT_IRI",
    "DEFAULT_GATEWAY_URL",
    "EXTENSION_SCHEMA",
    "CalrissianPlan",
    "CalrissianRunner",
    "cluster_answers",
    "input_flags",
    "plan",
    "validate_with_extension",
]

DASK_REQUIREMENT_IRI = "https://calrissian-cwl.github.io/schema#DaskGatewayRequirement"
# The in-cluster gateway of the eoap dev platform, the one seed 003 uses.
DEFAULT_GATEWAY_URL = "http://traefik-dask-gateway.eoap-dask-gateway.svc.cluster.local:80"

# The extension as a Schema Salad record (fields as documented by calrissian-cwl.github.io,
# "experimental/dask-gateway"): what lets cwltool-based engines accept the class under requirements.
EXTENSION_SCHEMA = """\
$base: https://calrissian-cwl.github.io/schema#
$namespaces:
  cwl: https://w3id.org/cwl/cwl#
$graph:
- $import: https://w3id.org/cwl/CommonWorkflowLanguage.yml
- name: DaskGatewayRequirement
  type: record
  extends: cwl:ProcessRequirement
  inVocab: false
  doc: The tool needs a Dask cluster, created through Dask Gateway for the duration of the step.
  fields:
    class:
      type: string
      jsonldPredicate: {_id: "@type", _type: "@vocab"}
    workerCores: {type: [int, cwl:Expression]}
    workerCoresLimit: {type: [int, cwl:Expression]}
    workerMemory: {type: [string, cwl:Expression]}
    clusterMaxCores: {type: [int, cwl:Expression]}
    clusterMaxMemory: {type: [string, cwl:Expression]}
"""

# Where Calrissian writes, on the PVC (seed 003's layout).
PATHS = {
    "stdout": f"{MOUNT}/results.json",
    "stderr": f"{MOUNT}/app.log",
    "tmp": f"{MOUNT}/tmp/",  # noqa: S108 - on the PVC, not the host
    "outdir": f"{MOUNT}/results",
    "usage": f"{MOUNT}/usage.json",
    "logs": f"{MOUNT}/logs",
    "inputs": f"{MOUNT}/inputs",
}


class CalrissianUsageError(EopackError):
    exit_code = 2

    def __init__(self, what: str, fix: str) -> None:
        self.what, self.fix = what, fix
        super().__init__(f"Runner 'calrissian': {what}. {fix}")


def _yaml() -> YAML:
    yaml = YAML()
    yaml.default_flow_style = False
    yaml.width = 4096
    return yaml


def _literal(value: Any) -> Any:
    """Multi-line strings as ``|`` blocks, so the ConfigMap's package stays readable."""
    if isinstance(value, str) and "\n" in value:
        return LiteralScalarString(value)
    if isinstance(value, dict):
        return {k: _literal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_literal(v) for v in value]
    return value


def dump(doc: Any) -> str:
    buf = StringIO()
    _yaml().dump(doc, buf)
    return buf.getvalue()


def dump_all(docs: Sequence[Any]) -> str:
    buf = StringIO()
    _yaml().dump_all([_literal(d) for d in docs], buf)
    return buf.getvalue()


def validate_with_extension(cwl: Path, entry: str) -> str | None:
    """``cwltool --validate FILE#ENTRY`` with the Calrissian extension schema; None when valid.

    Runs in a child interpreter because cwltool keeps schemas in module-global caches. The entry
    point matters: without ``#<app>`` cwltool loads the ``$graph``'s tools one by one without the
    custom schema and reports the class as an undefined reference.
    """
    proc = subprocess.run(
        [sys.executable, "-m", "eopack.runners.calrissian", "validate", f"{cwl}#{entry}"],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode == 0:
        return None
    lines = [ln.strip() for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip()]
    return " ".join(lines[-3:]) or f"cwltool --validate failed (exit {proc.returncode})"


def _cwltool_validate_main(target: str) -> int:
    import cwltool.main
    import cwltool.process

    def register() -> None:
        for version in ("v1.0", "v1.1", "v1.2"):
            cwltool.process.use_custom_schema(
                version, "https://calrissian-cwl.github.io/schema", EXTENSION_SCHEMA
            )
        if DASK_REQUIREMENT_IRI not in cwltool.process.supportedProcessRequirements:
            cwltool.process.supportedProcessRequirements.append(DASK_REQUIREMENT_IRI)

    return int(cwltool.main.main(["--validate", "--disable-color", target], custom_schema_callback=register))


def _is_local(value: Mapping[str, Any]) -> bool:
    location = str(value.get("location") or value.get("path") or "")
    return location.startswith("file://") or "://" not in location


def map_local_inputs(job: Mapping[str, Any]) -> tuple[dict[str, Any], list[tuple[Path, str]]]:
    """Local File/Directory inputs moved onto the PVC (``/calrissian/inputs/<id>``): the new job and
    the ``(local path, PVC path)`` pairs to copy. A cluster cannot read this machine's disk."""
    staged: list[tuple[Path, str]] = []

    def move(key: str, value: Any, index: int | None) -> Any:
        if isinstance(value, dict) and value.get("class") in {"File", "Directory"} and _is_local(value):
            local = Path(str(value.get("path") or value["location"]).removeprefix("file://"))
            target = f"{PATHS['inputs']}/{key}" + (f"/{index}" if index is not None else "")
            if value["class"] == "File":
                target = f"{target}/{local.name}"
            staged.append((local, target))
            return {"class": value["class"], "location": target}
        return value

    out: dict[str, Any] = {}
    for key, value in job.items():
        if isinstance(value, list):
            out[key] = [move(key, v, i) for i, v in enumerate(value)]
        else:
            out[key] = move(key, value, None)
    return out, staged


def input_flags(pkg: Package, job: Mapping[str, Any]) -> list[str]:
    """The job as ``--<input> value`` (cwltool's per-input flags, which Calrissian inherits).

    Arrays repeat the flag, booleans are bare flags, File/Directory give their location, unset
    inputs are left out so the Workflow's defaults apply.
    """
    flags: list[str] = []
    for inp in as_list(pkg.workflow.get("inputs"), "id"):
        key = short_id(inp["id"])
        value = job.get(key)
        if value is None or value is False:
            continue
        values = value if isinstance(value, list) else [value]
        if value is True:
            flags.append(f"--{key}")
            continue
        for item in values:
            if isinstance(item, dict) and item.get("class") in {"File", "Directory"}:
                item = item.get("location") or item.get("path")
            elif isinstance(item, dict | list):
                raise CalrissianUsageError(
                    f"input {key!r} is a record, which has no command-line form",
                    "Pass the job file instead (the Job in manifests.yaml does).",
                )
            flags += [f"--{key}", str(item)]
    return flags


def _resource_caps(pkg: Package) -> tuple[str, str]:
    """(--max-ram, --max-cores): the largest ramMax/coresMax of the tools, so any one step fits."""
    ram, cores = 0, 0
    for tool in pkg.tools:
        for req in as_list(tool.get("requirements")):
            if class_name(req) == "ResourceRequirement":
                r = req.get("ramMax", req.get("ramMin"))
                c = req.get("coresMax", req.get("coresMin"))
                ram = max(ram, int(r) if isinstance(r, int | float) else 0)
                cores = max(cores, int(c) if isinstance(c, int | float) else 0)
    ram = ram or 4096
    return (f"{ram // 1024}G" if ram % 1024 == 0 else f"{ram}Mi"), str(cores or 1)


def _has_dask(pkg: Package) -> bool:
    return any(
        class_name(e) == DASK_CLASS
        for tool in pkg.tools
        for e in as_list(tool.get("hints")) + as_list(tool.get("requirements"))
    )


@dataclass(frozen=True)
class CalrissianPlan:
    """What a run is made of; the runner writes it, tests inspect it."""

    command: list[str]  # `calrissian ... <cwl>#<app> --<input> value ...`
    job_args: list[str]  # the Job's args: the same options, the job file instead of the flags
    spec: JobSpec
    objects: list[dict[str, Any]]
    doc: dict[str, Any]
    job: dict[str, Any]
    staged: list[tuple[Path, str]] = field(default_factory=list)


def _runner_options(extra: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(prog="eopack run --runner calrissian --", add_help=False)
    parser.add_argument("--namespace", default="eopack")
    parser.add_argument("--image", default=DEFAULT_IMAGE)
    parser.add_argument("--storage", default="10Gi")
    parser.add_argument("--storage-class")
    parser.add_argument("--max-ram")
    parser.add_argument("--max-cores")
    return parser.parse_known_args(list(extra))


def plan(
    pkg: Package, job: Mapping[str, Any], run_id: str, options: RunOptions, token: str = ""
) -> CalrissianPlan:
    """Build the command line, the Job and its companions for one run (no I/O).

    ``token`` makes the Kubernetes names unique to this run (``run_id`` is the --outdir basename,
    which two runs may share).
    """
    opts, passthrough = _runner_options(options.extra_args)
    gateway = options.dask_gateway_url or os.environ.get("EOPACK_DASK_GATEWAY_URL")
    if _has_dask(pkg) and not gateway:
        gateway = DEFAULT_GATEWAY_URL
    max_ram, max_cores = _resource_caps(pkg)
    doc = to_requirement(pkg.copy_doc())
    pvc_job, staged = map_local_inputs(job)
    cwl_path = f"{INPUT_MOUNT}/{pkg.name}.cwl"
    tool_sa = "calrissian-tools"
    options_args = [
        "--stdout", PATHS["stdout"],
        "--stderr", PATHS["stderr"],
        "--max-ram", opts.max_ram or max_ram,
        "--max-cores", opts.max_cores or max_cores,
        "--tmp-outdir-prefix", PATHS["tmp"],
        "--outdir", PATHS["outdir"],
        "--usage-report", PATHS["usage"],
        "--tool-logs-basepath", PATHS["logs"],
        "--pod-serviceaccount", tool_sa,
    ]  # fmt: skip
    if gateway:
        options_args += ["--dask-gateway-url", gateway]
    options_args += passthrough
    entry = f"{cwl_path}#{pkg.name}"
    command = ["calrissian", *options_args, entry, *input_flags(pkg, pvc_job)]
    job_args = [*options_args, entry, f"{INPUT_MOUNT}/job.yml"]
    spec = JobSpec(
        app=pkg.name,
        run_id=run_id,
        namespace=opts.namespace,
        args=job_args,
        package_cwl=dump(doc),
        job_yaml=dump(pvc_job),
        dask_gateway_url=gateway,
        image=opts.image,
        storage=opts.storage,
        storage_class=opts.storage_class,
        tool_service_account=tool_sa,
        token=token,
    )
    return CalrissianPlan(command, job_args, spec, manifests(spec), doc, pvc_job, staged)


def format_command(command: Sequence[str]) -> str:
    """One option per line, as in seed 003, and still one pasteable shell command."""
    lines, i = [command[0]], 1
    while i < len(command):
        if command[i].startswith("--") and i + 1 < len(command) and not command[i + 1].startswith("--"):
            lines.append(f"{shlex.quote(command[i])} {shlex.quote(command[i + 1])}")
            i += 2
        else:
            lines.append(shlex.quote(command[i]))
            i += 1
    return " \\\n    ".join(lines) + "\n"


def kubectl() -> str | None:
    return shutil.which("kubectl")


def cluster_answers(timeout: int = 5) -> tuple[bool, str]:
    """(a cluster answers through the current kubeconfig, why not)."""
    exe = kubectl()
    if not exe:
        return False, "kubectl not found on PATH"
    proc = subprocess.run(
        [exe, "version", f"--request-timeout={timeout}s", "-o", "json"],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode == 0 and "serverVersion" in proc.stdout:
        return True, ""
    last = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()][-1:] or ["no server version"]
    return False, f"no Kubernetes cluster answers through the kubeconfig ({last[0].strip()[:160]})"


class CalrissianRunner:
    """The ``calrissian`` runner; ``dry_run`` (set by ``eopack run --dry-run``) writes without applying."""

    name = "calrissian"

    def __init__(self) -> None:
        self.dry_run = False

    def available(self) -> tuple[bool, str]:
        return cluster_answers()

    def run(self, package: Package, job_path: Path, options: RunOptions) -> RunResult:
        if options.no_container:
            raise CalrissianUsageError(
                "--no-container is not possible", "Calrissian always runs each step in its image; drop it."
            )
        job = load_job(job_path)
        check_inputs(package, job, job_path)
        run_dir = (options.outdir or default_run_dir(repo_root(), package.name)).resolve()
        the_plan = plan(package, job, run_dir.name, options, token=secrets.token_hex(3))
        meta = run_dir / ".eopack"
        meta.mkdir(parents=True, exist_ok=True)
        cwl = meta / f"{package.name}.cwl"
        cwl.write_text(the_plan.spec.package_cwl)
        error = validate_with_extension(cwl, package.name)
        if error:
            raise PackageInvalidError(
                package.name, [f"the Calrissian copy fails cwltool --validate: {error}"]
            )
        (meta / "job.yml").write_text(the_plan.spec.job_yaml)
        (meta / "command.txt").write_text(format_command(the_plan.command))
        manifest_file = meta / "manifests.yaml"
        manifest_file.write_text(dump_all(the_plan.objects))
        for local, target in the_plan.staged:
            notice(f"local input {local} goes to the PVC at {target}")
        if the_plan.spec.dask_gateway_url == DEFAULT_GATEWAY_URL:
            notice(f"Dask Gateway {DEFAULT_GATEWAY_URL} (seed 003's); set --dask-gateway-url for yours")
        if self.dry_run or options.print_command:
            notice(
                f"dry run: `kubectl apply -f {manifest_file}` runs it; the command is in {meta / 'command.txt'}"
            )
            return RunResult(
                RunStatus.NOT_RUN, 0, run_dir, log=manifest_file, command=shlex.join(the_plan.command)
            )
        ok, why = cluster_answers()
        if not ok:
            raise ServiceUnavailableError(
                "Kubernetes",
                why,
                f"Point KUBECONFIG at a cluster, or add --dry-run to only write {manifest_file.name}.",
            )
        return _KubectlRun(package, the_plan, run_dir, manifest_file, options.quiet).execute()


class _KubectlRun:
    """Apply, stage, follow, fetch: the part only a real cluster exercises."""

    def __init__(self, pkg: Package, the_plan: CalrissianPlan, run_dir: Path, manifests: Path, quiet: bool):
        self.pkg, self.plan, self.run_dir, self.manifests, self.quiet = (
            pkg,
            the_plan,
            run_dir,
            manifests,
            quiet,
        )
        self.ns = the_plan.spec.namespace
        self.name = the_plan.spec.name
        self.log = run_dir / ".eopack" / "calrissian.log"

    def kubectl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([kubectl() or "kubectl", "-n", self.ns, *args], capture_output=True, text=True)
        if check and proc.returncode != 0:
            last = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
            raise ServiceUnavailableError(
                "Kubernetes", f"`kubectl {' '.join(args[:3])}` failed: {last[0]}", ""
            )
        return proc

    def helper_pod(self, suffix: str) -> str:
        """A pod mounting the run's PVC, for kubectl cp in and out (the Job's pod cannot be used)."""
        pod = helper_pod(self.plan.spec, suffix)
        name = str(pod["metadata"]["name"])
        path = self.run_dir / ".eopack" / f"{suffix}-pod.json"
        path.write_text(json.dumps(pod))
        self.kubectl("apply", "-f", str(path))
        self.kubectl("wait", "--for=condition=Ready", f"pod/{name}", "--timeout=300s")
        return name

    def execute(self) -> RunResult:
        objects = self.plan.objects
        job_obj = objects[-1]
        others = self.run_dir / ".eopack" / "setup.yaml"
        others.write_text(dump_all(objects[:-1]))
        subprocess.run([kubectl() or "kubectl", "apply", "-f", str(others)], check=True, capture_output=True)
        # Helper pods left by a killed client ended by their deadline; remove them now.
        self.kubectl(
            "delete", "pod", "-l", HELPER_SELECTOR, "--field-selector=status.phase!=Running",
            "--wait=false", check=False,
        )  # fmt: skip
        if self.plan.staged:
            pod = self.helper_pod("stage-in")
            try:
                for local, target in self.plan.staged:
                    parent = target.rsplit("/", 1)[0]
                    self.kubectl("exec", pod, "--", "mkdir", "-p", parent)
                    self.kubectl("cp", str(local), f"{pod}:{target}")
            finally:
                self.kubectl("delete", "pod", pod, "--wait=false", check=False)
        job_file = self.run_dir / ".eopack" / "job.json"
        job_file.write_text(json.dumps(job_obj))
        self.kubectl("apply", "-f", str(job_file))
        notice(f"Job {self.ns}/{self.name} submitted; following its log")
        code = tee_process(
            [
                kubectl() or "kubectl",
                "-n",
                self.ns,
                "logs",
                "-f",
                f"job/{self.name}",
                "--pod-running-timeout=10m",
            ],
            self.log,
            None,
            self.quiet,
        )
        done = self.kubectl(
            "wait", "--for=condition=complete", f"job/{self.name}", "--timeout=60s", check=False
        )
        if done.returncode != 0 or code != 0:
            return RunResult(
                RunStatus.FAILED,
                1,
                self.run_dir,
                errors=tool_errors(self.log, tool_commands(self.pkg)),
                log=self.log,
            )
        return self.fetch()

    def fetch(self) -> RunResult:
        out = self.run_dir / ".eopack" / "out"
        pod = self.helper_pod("fetch")
        try:
            self.kubectl("cp", f"{pod}:{PATHS['outdir']}", str(out))
            for key in ("stdout", "usage"):
                self.kubectl(
                    "cp", f"{pod}:{PATHS[key]}", str(self.run_dir / ".eopack" / Path(PATHS[key]).name)
                )
        finally:
            self.kubectl("delete", "pod", pod, "--wait=false", check=False)
        raw = json.loads((self.run_dir / ".eopack" / "results.json").read_text() or "{}")
        text = (
            json.dumps(raw)
            .replace(f"file://{PATHS['outdir']}", out.as_uri())
            .replace(PATHS["outdir"], str(out))
        )
        outputs, catalog = collect_outputs(self.pkg, json.loads(text), self.run_dir)
        shutil.rmtree(out, ignore_errors=True)
        return RunResult(RunStatus.SUCCEEDED, 0, self.run_dir, outputs, catalog, log=self.log)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "validate":
        sys.exit(_cwltool_validate_main(sys.argv[2]))
    sys.exit("usage: python -m eopack.runners.calrissian validate FILE.cwl#ENTRY")
