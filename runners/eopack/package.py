"""Application packages on disk: find them, read them, check the contract (DESIGN.md §3).

A package is ``app-packages/<app>/<app>.cwl``: a ``$graph`` with one Workflow whose id is the app
name plus its CommandLineTools. Validation findings carry a stable check id so tests and CI can
assert on them, and print as ``app: where: what is wrong: how to fix``.
"""

from __future__ import annotations

import copy
import os
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import semver
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from .errors import PackageNotFoundError

__all__ = [
    "DASK_CLASS",
    "Finding",
    "Package",
    "as_list",
    "class_name",
    "cwltool_command",
    "find_package",
    "list_packages",
    "memory_bytes",
    "repo_root",
    "service_state_dir",
    "tested_runners",
    "validate_package",
]

DASK_CLASS = "DaskGatewayRequirement"
DASK_FIELDS = ("workerCores", "workerCoresLimit", "clusterMaxCores", "workerMemory", "clusterMaxMemory")
# Memory strings of the Dask requirement, parsed exactly as the tools parse them (eo-common's
# dask_cluster.parse_memory; tests/test_memory_units.py feeds both the same table): K/M/G/T ×1024,
# KB/MB/GB/TB ×1000, any case, a bare number is bytes; Kubernetes' Gi/Mi are refused.
_MEMORY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*$")
_MEMORY_UNITS = {
    "": 1,
    "K": 1024,
    "M": 1024**2,
    "G": 1024**3,
    "T": 1024**4,
    "KB": 1000,
    "MB": 1000**2,
    "GB": 1000**3,
    "TB": 1000**4,
}


def memory_bytes(value: str | int) -> int:
    """Bytes in a memory string; ``Gi`` and friends are refused with the allowed units.

    >>> memory_bytes("2G"), memory_bytes("2GB"), memory_bytes("512m"), memory_bytes(1024)
    (2147483648, 2000000000, 536870912, 1024)
    """
    if isinstance(value, int):
        return value
    match = _MEMORY.match(str(value))
    unit = match.group(2).upper() if match else None
    if match is None or unit not in _MEMORY_UNITS:
        raise ValueError(
            f"memory {value!r} must be a number with one of the units K, M, G, T (×1024) "
            "or KB, MB, GB, TB (×1000), e.g. '2G'"
        )
    return int(float(match.group(1)) * _MEMORY_UNITS[unit])


def repo_root() -> Path:
    """The eopack checkout: ``$EOPACK_HOME``, else the nearest parent with ``app-packages/``."""
    if os.environ.get("EOPACK_HOME"):
        return Path(os.environ["EOPACK_HOME"]).resolve()
    for base in (Path.cwd(), *Path.cwd().parents, Path(__file__).resolve().parents[2]):
        if (base / "app-packages").is_dir():
            return base
    return Path(__file__).resolve().parents[2]


def service_state_dir(name: str, env: str) -> Path:
    """A local service's state dir: ``$<env>`` when set, else ``<repo>/runs/services/<name>`` (not in git)."""
    value = os.environ.get(env)
    return Path(value) if value else repo_root() / "runs" / "services" / name


def tested_runners(app: str, root: Path) -> list[str]:
    """Runners an end-to-end test runs ``app`` on, from the pytest-workflow files
    ``tests/workflows/<app>/test_<runner>.yml`` (job files beside them are not tests).

    The runner is read from each ``eopack run APP ... [--runner R]`` command (no ``--runner``:
    cwltool); a file whose commands call a script instead counts for the runner in its name.
    """
    found: set[str] = set()
    for path in sorted((root / "tests" / "workflows" / app).glob("test_*.yml")):
        try:
            entries = load_yaml(path) or []
        except (OSError, YAMLError):  # a broken test file covers nothing; pytest-workflow reports it
            continue
        in_file: set[str] = set()
        for entry in entries if isinstance(entries, list) else []:
            words = str(entry.get("command", "") if isinstance(entry, dict) else "").split()
            for i in range(len(words) - 2):
                if words[i : i + 3] != ["eopack", "run", app]:
                    continue
                rest = words[i + 3 :]
                runner = "cwltool"
                for j, word in enumerate(rest):
                    if word == "--runner" and j + 1 < len(rest):
                        runner = rest[j + 1]
                    elif word.startswith("--runner="):
                        runner = word.partition("=")[2]
                in_file.add(runner)
        found |= in_file or {path.stem.removeprefix("test_")}
    return sorted(found)


def _yaml() -> YAML:
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    yaml.sort_base_mapping_type_on_output = False  # type: ignore[assignment]
    return yaml


def load_yaml(path: Path) -> Any:
    with path.open() as handle:
        return _yaml().load(handle)


def dump_yaml(doc: Any, path: Path) -> None:
    with path.open("w") as handle:
        _yaml().dump(doc, handle)


def class_name(entry: Mapping[str, Any]) -> str:
    """``calrissian:DaskGatewayRequirement`` and the full IRI both become ``DaskGatewayRequirement``."""
    return str(entry.get("class", "")).rsplit("#", 1)[-1].rsplit(":", 1)[-1]


def as_list(section: Any, key: str = "class", value_key: str = "type") -> list[dict[str, Any]]:
    """CWL allows a map or a list for requirements, inputs, outputs and steps; always give a list.

    >>> as_list({"fn": "string"}, "id")
    [{'type': 'string', 'id': 'fn'}]
    """
    if section is None:
        return []
    if isinstance(section, Mapping):
        out = []
        for name, value in section.items():
            entry = dict(value) if isinstance(value, Mapping) else {value_key: value}
            entry.setdefault(key, name)
            out.append(entry)
        return out
    return [dict(entry) for entry in section]


def short_id(value: str) -> str:
    """``#convert/results`` or ``file.cwl#convert-url/fn`` -> last path part."""
    return str(value).rsplit("#", 1)[-1].rsplit("/", 1)[-1]


@dataclass(frozen=True)
class Finding:
    """One contract violation: stable ``check`` id, the place, the problem and the fix."""

    app: str
    check: str
    where: str
    problem: str
    fix: str

    def __str__(self) -> str:
        return f"{self.app}: {self.where}: {self.problem}: {self.fix}"


@dataclass
class Package:
    """A CWL application package file and what the rest of eopack needs to know about it."""

    name: str
    path: Path

    @cached_property
    def doc(self) -> dict[str, Any]:
        return load_yaml(self.path)

    def copy_doc(self) -> dict[str, Any]:
        return copy.deepcopy(self.doc)

    @property
    def graph(self) -> list[dict[str, Any]]:
        return list(self.doc.get("$graph") or [])

    @property
    def workflows(self) -> list[dict[str, Any]]:
        return [p for p in self.graph if p.get("class") == "Workflow"]

    @property
    def workflow(self) -> dict[str, Any]:
        flows = self.workflows
        return flows[0] if flows else {}

    @property
    def tools(self) -> list[dict[str, Any]]:
        return [p for p in self.graph if p.get("class") == "CommandLineTool"]

    @property
    def version(self) -> str:
        return str(self.doc.get("s:softwareVersion", ""))

    @property
    def label(self) -> str:
        return str(self.workflow.get("label", ""))

    @property
    def home(self) -> Path:
        return self.path.parent

    @property
    def default_job(self) -> Path:
        return self.home / "examples" / "default.yml"

    def images(self) -> list[str]:
        """Every ``dockerPull`` of the package's tools."""
        out = []
        for tool in self.tools:
            for req in as_list(tool.get("requirements")) + as_list(tool.get("hints")):
                if class_name(req) == "DockerRequirement" and req.get("dockerPull"):
                    out.append(str(req["dockerPull"]))
        return out


def list_packages(root: Path | None = None) -> list[Package]:
    base = (root or repo_root()) / "app-packages"
    return (
        [
            Package(d.name, d / f"{d.name}.cwl")
            for d in sorted(base.iterdir())
            if (d / f"{d.name}.cwl").is_file()
        ]
        if base.is_dir()
        else []
    )


def find_package(name_or_path: str, root: Path | None = None) -> Package:
    """Resolve an app name (``convert-url``) or a path to a ``.cwl`` file."""
    candidate = Path(name_or_path)
    if candidate.suffix == ".cwl" and candidate.is_file():
        return Package(candidate.stem, candidate.resolve())
    if candidate.is_dir() and (candidate / f"{candidate.name}.cwl").is_file():
        return Package(candidate.name, (candidate / f"{candidate.name}.cwl").resolve())
    for pkg in list_packages(root):
        if pkg.name == name_or_path:
            return pkg
    raise PackageNotFoundError(name_or_path, [p.name for p in list_packages(root)])


# ---------------------------------------------------------------------------------------------
# The contract, checked in code.


def _check_described(pkg: Package, what: str, entry: Mapping[str, Any]) -> Iterator[Finding]:
    for field in ("label", "doc"):
        if not str(entry.get(field) or "").strip():
            yield Finding(pkg.name, f"cwl_{field}", what, f"no {field}", f"add a non-empty '{field}'")


def _check_document(pkg: Package) -> Iterator[Finding]:
    doc = pkg.doc
    if doc.get("cwlVersion") != "v1.2":
        yield Finding(
            pkg.name, "cwl_version", "cwlVersion", f"is {doc.get('cwlVersion')!r}", "set cwlVersion: v1.2"
        )
    version = pkg.version
    if not version:
        yield Finding(
            pkg.name,
            "software_version",
            "s:softwareVersion",
            "missing",
            "add s:softwareVersion: MAJOR.MINOR.PATCH at the top of the document",
        )
    elif not semver.Version.is_valid(version):
        yield Finding(
            pkg.name,
            "software_version",
            "s:softwareVersion",
            f"{version!r} is not semver",
            "use MAJOR.MINOR.PATCH, e.g. 1.0.0",
        )
    for key in ("s:author", "s:license", "s:codeRepository"):
        if not doc.get(key):
            yield Finding(pkg.name, "schema_org", key, "missing", f"add {key} at the top of the document")
    if "$graph" not in doc:
        yield Finding(
            pkg.name,
            "cwl_graph",
            "document",
            "no $graph",
            "put one Workflow and its CommandLineTools under $graph",
        )
        return
    flows = pkg.workflows
    if len(flows) != 1:
        yield Finding(
            pkg.name,
            "cwl_workflow",
            "$graph",
            f"has {len(flows)} Workflows",
            "keep exactly one Workflow per file",
        )
    if flows and short_id(flows[0].get("id", "")) != pkg.name:
        yield Finding(
            pkg.name,
            "cwl_workflow_id",
            "Workflow",
            f"id is {flows[0].get('id')!r}",
            f"set the Workflow id to {pkg.name!r} (the app name)",
        )


def _check_workflow(pkg: Package) -> Iterator[Finding]:
    wf = pkg.workflow
    if not wf:
        return
    yield from _check_described(pkg, "Workflow", wf)
    for kind in ("inputs", "outputs", "steps"):
        for entry in as_list(wf.get(kind), "id"):
            yield from _check_described(pkg, f"Workflow {kind[:-1]} {short_id(entry['id'])!r}", entry)
    outputs = as_list(wf.get("outputs"), "id")
    directories = [o for o in outputs if str(o.get("type", "")).rstrip("?") == "Directory"]
    if len(outputs) != 1 or len(directories) != 1:
        yield Finding(
            pkg.name,
            "output_directory",
            "Workflow outputs",
            f"{len(outputs)} output(s), {len(directories)} of type Directory",
            "declare exactly one output of type Directory holding a STAC catalog",
        )


def _memory_ok(value: str) -> bool:
    try:
        memory_bytes(value)
    except ValueError:
        return False
    return True


def _check_dask(pkg: Package, where: str, tool: Mapping[str, Any]) -> Iterator[Finding]:
    in_reqs = [r for r in as_list(tool.get("requirements")) if class_name(r) == DASK_CLASS]
    hints = [r for r in as_list(tool.get("hints")) if class_name(r) == DASK_CLASS]
    if in_reqs:
        yield Finding(
            pkg.name,
            "dask_hint",
            f"{where} requirements",
            f"{DASK_CLASS} is under requirements",
            "move it to hints (cwltool and Toil reject unknown requirements; "
            "the Calrissian runner moves it back)",
        )
    for hint in hints + in_reqs:
        if "clusterMaxCore" in hint:
            yield Finding(
                pkg.name,
                "dask_field",
                f"{where} {DASK_CLASS}",
                "field 'clusterMaxCore' is the old name",
                "rename it to 'clusterMaxCores'",
            )
        for field in DASK_FIELDS:
            if field not in hint:
                yield Finding(
                    pkg.name,
                    "dask_field",
                    f"{where} {DASK_CLASS}",
                    f"field {field!r} is missing",
                    f"add {field} (all of {', '.join(DASK_FIELDS)} are required)",
                )
        for field in ("workerMemory", "clusterMaxMemory"):
            value = str(hint.get(field, ""))
            if value and not value.startswith("$") and not _memory_ok(value):
                yield Finding(
                    pkg.name,
                    "dask_memory",
                    f"{where} {DASK_CLASS}.{field}",
                    f"{value!r} has a unit that is not allowed",
                    "use a number with K, M, G, T (×1024) or KB, MB, GB, TB (×1000), e.g. '2G'",
                )
        for field in ("workerCores", "workerCoresLimit", "clusterMaxCores"):
            cores = hint.get(field)
            if cores is not None and not (isinstance(cores, int) or str(cores).startswith("$")):
                yield Finding(
                    pkg.name,
                    "dask_cores",
                    f"{where} {DASK_CLASS}.{field}",
                    f"{cores!r} is not an integer or expression",
                    "give a whole number of cores",
                )


def _check_tools(pkg: Package) -> Iterator[Finding]:
    if not pkg.tools:
        yield Finding(
            pkg.name,
            "cwl_tool",
            "$graph",
            "no CommandLineTool",
            "add the tool(s) the Workflow runs under $graph",
        )
    dask_seen = False
    for tool in pkg.tools:
        where = f"CommandLineTool {short_id(tool.get('id', '?'))!r}"
        yield from _check_described(pkg, where, tool)
        reqs = {class_name(r): r for r in as_list(tool.get("requirements"))}
        hints = {class_name(r): r for r in as_list(tool.get("hints"))}
        docker = reqs.get("DockerRequirement")
        if not docker or not docker.get("dockerPull"):
            moved = " (it is a hint)" if "DockerRequirement" in hints else ""
            yield Finding(
                pkg.name,
                "tool_docker",
                f"{where} requirements",
                f"no DockerRequirement.dockerPull{moved}",
                f"add DockerRequirement with dockerPull: eopack/{pkg.name}:{pkg.version or 'VERSION'}",
            )
        res = reqs.get("ResourceRequirement") or {}
        for field in ("coresMin", "ramMin"):
            if field not in res:
                yield Finding(
                    pkg.name,
                    "tool_resources",
                    f"{where} requirements.ResourceRequirement",
                    f"no {field}",
                    f"declare {field} so schedulers can rely on it",
                )
        dask_seen = dask_seen or DASK_CLASS in hints or DASK_CLASS in reqs
        yield from _check_dask(pkg, where, tool)
    if pkg.tools and not dask_seen:
        yield Finding(
            pkg.name,
            "dask_hint",
            "hints",
            f"no {DASK_CLASS}",
            f"add calrissian:{DASK_CLASS} with {', '.join(DASK_FIELDS)} under the tool's hints",
        )


def _check_layout(pkg: Package, root: Path) -> Iterator[Finding]:
    """nf-core style: one name derived everywhere (STYLE.md)."""
    if pkg.path.name != f"{pkg.name}.cwl" or pkg.path.parent.name != pkg.name:
        return  # a loose .cwl file given by path: only the document rules apply
    expected = {
        "layout_examples": (pkg.default_job, "add examples/default.yml, the job `eopack run` uses"),
        "layout_tool": (
            root / "tools" / pkg.name / "pyproject.toml",
            f"create tools/{pkg.name}/ (eopack new)",
        ),
        "layout_container": (
            root / "containers" / pkg.name / "Dockerfile",
            f"create containers/{pkg.name}/Dockerfile",
        ),
    }
    for check, (path, fix) in expected.items():
        if not path.exists():
            yield Finding(pkg.name, check, str(path.relative_to(root)), "missing", fix)
    pyproject = root / "tools" / pkg.name / "pyproject.toml"
    if pyproject.exists():
        project = tomllib.loads(pyproject.read_text()).get("project", {})
        if project.get("version") != pkg.version:
            yield Finding(
                pkg.name,
                "version_match",
                f"tools/{pkg.name}/pyproject.toml",
                f"version {project.get('version')!r} differs from s:softwareVersion {pkg.version!r}",
                "keep both equal (one version per app)",
            )
        if pkg.name not in project.get("scripts", {}):
            yield Finding(
                pkg.name,
                "layout_script",
                f"tools/{pkg.name}/pyproject.toml",
                f"no console script {pkg.name!r}",
                f"add [project.scripts] {pkg.name} = ...",
            )
    for tool in pkg.tools:
        where = f"CommandLineTool {short_id(tool.get('id', '?'))!r}"
        base = tool.get("baseCommand")
        first = base[0] if isinstance(base, list) and base else base
        if first != pkg.name:
            yield Finding(
                pkg.name,
                "tool_command",
                f"{where} baseCommand",
                f"is {base!r}",
                f"use the app's console script {pkg.name!r}",
            )
        for inp in as_list(tool.get("inputs"), "id"):
            prefix = (inp.get("inputBinding") or {}).get("prefix")
            want = "--" + short_id(inp["id"]).replace("_", "-")
            if prefix is not None and prefix != want:
                yield Finding(
                    pkg.name,
                    "tool_flag",
                    f"{where} input {short_id(inp['id'])!r}",
                    f"prefix is {prefix!r}",
                    f"use {want!r} (the input id in kebab-case)",
                )


def cwltool_command() -> list[str]:
    """The cwltool next to this interpreter, so the venv's engine is used even when it is not on PATH.

    (``python -m cwltool --validate`` exits 0 even when validation fails, so the script is preferred.)
    """
    local = Path(sys.executable).parent / "cwltool"
    return [str(local)] if local.exists() else ["cwltool"]


def cwltool_validate(path: Path) -> str | None:
    """Run ``cwltool --validate``; return its last error line, or None when valid."""
    proc = subprocess.run(
        [*cwltool_command(), "--validate", "--disable-color", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode == 0:
        return None
    lines = [ln.rstrip() for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip()]
    start = next((i for i, ln in enumerate(lines) if ln.startswith("ERROR")), None)
    if start is None:
        return lines[-1].strip() if lines else "cwltool --validate failed"
    # cwltool nests "file:line:col: checking ..." lines; the innermost one and its continuation
    # lines carry the actual problem. Join them into one line.
    body = lines[start + 1 :] or lines[start : start + 1]
    located = [i for i, ln in enumerate(body) if _LOCATION.match(ln.strip())]
    tail = body[located[-1] :] if located else body
    return " ".join(part.strip() for part in tail)


_LOCATION = re.compile(r"^\S+:\d+:\d+:")


def validate_package(pkg: Package, root: Path | None = None, run_cwltool: bool = True) -> list[Finding]:
    """Every contract violation of one package; an empty list means it is valid."""
    findings: list[Finding] = []
    try:
        pkg.doc  # noqa: B018 - parse errors are findings, not crashes
    except Exception as err:
        return [Finding(pkg.name, "yaml", str(pkg.path), f"cannot be parsed ({err})", "fix the YAML syntax")]
    if run_cwltool:
        error = cwltool_validate(pkg.path)
        if error:
            findings.append(
                Finding(
                    pkg.name, "cwltool_validate", str(pkg.path), error, "fix what cwltool --validate reports"
                )
            )
    for check in (_check_document, _check_workflow, _check_tools):
        findings.extend(check(pkg))
    findings.extend(_check_layout(pkg, root or repo_root()))
    return findings
