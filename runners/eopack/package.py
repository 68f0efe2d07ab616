"""Application packages on disk: find them, read them, check the contract (DESIGN.md §3).

A package is ``app-packages/<app>/<app>.cwl``: a ``$graph`` with one Workflow whose id is the app
name plus its CommandLineTools. Validation findings carry a stable check id so tests and CI can
assert on them, and print as ``app: where: what is wrong: how to fix``.
"""

from __future__ import annotations

import copy
import datetime as dt
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
    "EOAP_STRING_FORMAT",
    "METADATA_KEYS",
    "Finding",
    "Package",
    "as_list",
    "class_name",
    "cwltool_command",
    "find_package",
    "list_packages",
    "memory_bytes",
    "offline_loading_options",
    "offline_schemas",
    "repo_root",
    "service_state_dir",
    "staging_role",
    "tested_runners",
    "validate_package",
]

#: What eoap-validator's metadata profile (Transpiler-Mate's SoftwareApplication) requires.
METADATA_KEYS = (
    "s:name",
    "s:description",
    "s:dateCreated",
    "s:license",
    "s:softwareVersion",
    "s:softwareHelp",
    "s:publisher",
    "s:author",
)
DASK_CLASS = "DaskGatewayRequirement"
# The eoap string-format schema: eoap-cwlwrap recognises URI inputs/outputs by this exact name.
EOAP_STRING_FORMAT = "https://raw.githubusercontent.com/eoap/schemas/main/string_format.yaml"
URI_TYPE = f"{EOAP_STRING_FORMAT}#URI"
LOCAL_STRING_FORMAT = Path(__file__).parent / "schemas" / "eoap-string-format.yaml"
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


def _yaml(pure: bool = True) -> YAML:
    yaml = YAML(typ="safe", pure=pure)
    yaml.default_flow_style = False
    yaml.sort_base_mapping_type_on_output = False  # type: ignore[assignment]
    return yaml


def load_yaml(path: Path) -> Any:
    """Parse with libyaml's C parser (about 20x faster on a package: most of `eopack run`'s own time
    on a small job); scalars still resolve by ruamel's YAML 1.2 rules, as with the pure parser.
    libyaml's scanner is YAML 1.1 and refuses some 1.2 syntax (``[a:b]`` in a flow sequence): then
    the pure parser decides."""
    text = path.read_text()
    try:
        return _yaml(pure=False).load(text)
    except YAMLError:
        return _yaml().load(text)


def dump_yaml(doc: Any, path: Path) -> None:
    with path.open("w") as handle:
        _yaml().dump(doc, handle)


def offline_schemas(doc: Any) -> Any:
    """``doc`` with the published eoap schema URL pointed at the local copy (hosts may be offline).

    Only the copies eopack runs or validates are changed; the package keeps the published name,
    which is what eoap-cwlwrap and the platforms look for.
    """
    local = LOCAL_STRING_FORMAT.resolve().as_uri()  # once: resolving is a system call per path part

    def walk(node: Any) -> Any:
        if isinstance(node, str):
            return local + node[len(EOAP_STRING_FORMAT) :] if node.startswith(EOAP_STRING_FORMAT) else node
        if isinstance(node, Mapping):
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return walk(doc)


def offline_loading_options() -> Any:
    """cwl_utils loading options that read the eoap schema from the local copy, not the network."""
    import requests
    from cwl_utils.parser import cwl_v1_2
    from schema_salad.fetcher import DefaultFetcher

    class Offline(DefaultFetcher):
        def fetch_text(self, url: str, content_types: list[str] | None = None) -> str:
            if url.split("#")[0] == EOAP_STRING_FORMAT:
                return LOCAL_STRING_FORMAT.read_text()
            return str(super().fetch_text(url, content_types))

        def check_exists(self, url: str) -> bool:
            return url.split("#")[0] == EOAP_STRING_FORMAT or bool(super().check_exists(url))

    return cwl_v1_2.LoadingOptions(fetcher=Offline({}, requests.Session()))


def _type_name(value: Any) -> str:
    return str(value.get("type", "")) if isinstance(value, Mapping) else str(value)


def staging_role(doc: Mapping[str, Any]) -> str | None:
    """``stage-in`` / ``stage-out`` when the document's Workflow has the shape of that staging
    component (eoap-cwlwrap's component contracts), else None (an application package)."""
    flows = [p for p in (doc.get("$graph") or []) if p.get("class") == "Workflow"]
    if len(flows) != 1:
        return None
    inputs = [_type_name(i.get("type")) for i in as_list(flows[0].get("inputs"), "id")]
    outputs = [_type_name(o.get("type")) for o in as_list(flows[0].get("outputs"), "id")]
    if inputs.count(URI_TYPE) == 1 and outputs == ["Directory"]:
        return "stage-in"
    if outputs == [URI_TYPE] and [t.rstrip("?") for t in inputs].count("Directory") == 1:
        return "stage-out"
    return None


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
        return f"{self.app}: {self.where}: {self.problem}: {self.fix} [{self.check}]"


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
    for key in ("s:codeRepository", *METADATA_KEYS):
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
    if staging_role(pkg.doc) == "stage-out":
        return  # its one output is the URI of the staged-out catalog (checked by staging_role)
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
    if pkg.tools and not dask_seen and staging_role(pkg.doc) is None:  # staging runs no Dask
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


def _entries(section: Any) -> list[dict[str, Any]]:
    return [e for e in as_list(section) if isinstance(e, Mapping)]


def _check_metadata(pkg: Package, root: Path) -> Iterator[Finding]:
    """Platform metadata (eoap-validator's metadata profile), each value from one source."""
    doc = pkg.doc
    if doc.get("s:name") and doc["s:name"] != pkg.name:
        yield Finding(
            pkg.name,
            "metadata_name",
            "s:name",
            f"is {doc['s:name']!r}",
            f"set it to {pkg.name!r} (the app name)",
        )
    created = doc.get("s:dateCreated")
    if created:
        try:
            day = dt.date.fromisoformat(str(created))
        except ValueError:
            day = None
        if day is None or day > dt.date.today():
            yield Finding(
                pkg.name, "metadata_date", "s:dateCreated", f"{created!r} is not a past ISO date",
                'quote the day the package was created, e.g. "2026-11-25"',
            )  # fmt: skip
    repo = str(doc.get("s:codeRepository") or "")
    for entry in _entries(doc.get("s:softwareHelp")):
        url = str(entry.get("s:url") or "")
        if not url.startswith(repo or "https://"):
            yield Finding(
                pkg.name, "metadata_help", "s:softwareHelp", f"s:url {url!r} is not under s:codeRepository",
                f"point s:url at the package's documentation under {repo or 's:codeRepository'}",
            )  # fmt: skip
    for entry in _entries(doc.get("s:author")):
        missing = [k for k in ("s:givenName", "s:familyName", "s:email", "s:affiliation") if not entry.get(k)]
        if class_name(entry) != "Person" or missing:
            yield Finding(
                pkg.name, "metadata_author", "s:author",
                f"an entry is a {class_name(entry) or 'thing'} missing {', '.join(missing) or 'nothing'}",
                "give each author as class: s:Person with s:givenName, s:familyName, s:email, s:affiliation",
            )  # fmt: skip
    publisher = doc.get("s:publisher")
    if publisher and (not isinstance(publisher, Mapping) or not publisher.get("s:name")):
        yield Finding(
            pkg.name, "metadata_publisher", "s:publisher", "is not one organisation with a name",
            "give class: s:Organization with s:name",
        )  # fmt: skip
    pyproject = root / "pyproject.toml"
    if not pyproject.is_file() or pkg.path.parent.parent != root / "app-packages":
        return
    project = tomllib.loads(pyproject.read_text()).get("project", {})
    license_id = project.get("license")
    if (
        isinstance(license_id, str)
        and doc.get("s:license")
        and doc["s:license"] != f"https://spdx.org/licenses/{license_id}"
    ):
        yield Finding(
            pkg.name, "metadata_project", "s:license", f"{doc['s:license']!r} differs from pyproject.toml's {license_id!r}",
            f"use https://spdx.org/licenses/{license_id} (one license for the project)",
        )  # fmt: skip
    emails = {a.get("email") for a in project.get("authors", []) if isinstance(a, Mapping)}
    for entry in _entries(doc.get("s:author")):
        if emails and entry.get("s:email") not in emails:
            yield Finding(
                pkg.name, "metadata_project", "s:author",
                f"{entry.get('s:email')!r} is not an author in pyproject.toml",
                f"use one of {', '.join(sorted(str(e) for e in emails))} (one author list for the project)",
            )  # fmt: skip


def _base_type(typ: Any) -> str:
    """``File?`` -> ``File``; ``File[]`` -> ``File``; an enum -> ``enum``; a record -> its type."""
    if isinstance(typ, Mapping):
        if typ.get("type") == "array":
            return _base_type(typ.get("items"))
        return str(typ.get("type", ""))
    if isinstance(typ, list):
        named = [_base_type(t) for t in typ if t != "null"]
        return named[0] if len(named) == 1 else ""
    return str(typ).rstrip("?").removesuffix("[]")


_CHOICE_WORDS = re.compile(r"\b(one of|supported values?|either)\b", re.IGNORECASE)


def _check_style(pkg: Package) -> Iterator[Finding]:
    """CWL house style (STYLE.md): formats on Files, enums for fixed choices, one doc per value."""
    processes = [("Workflow", pkg.workflow)] if pkg.workflow else []
    processes += [(f"CommandLineTool {short_id(t.get('id', '?'))!r}", t) for t in pkg.tools]
    for where, process in processes:
        for kind in ("inputs", "outputs"):
            for entry in as_list(process.get(kind), "id"):
                name = short_id(entry["id"])
                base = _base_type(entry.get("type"))
                if base == "File" and not entry.get("format"):
                    yield Finding(
                        pkg.name, "cwl_file_format", f"{where} {kind[:-1]} {name!r}", "File without format",
                        "add format: an IANA media type (iana:application/json) or an EDAM format",
                    )  # fmt: skip
                if base == "string" and kind == "inputs" and _CHOICE_WORDS.search(str(entry.get("doc", ""))):
                    yield Finding(
                        pkg.name, "cwl_enum", f"{where} input {name!r}", "a fixed choice typed as string",
                        "type it as an enum (type: {type: enum, symbols: [...]}) so engines and platforms check it",
                    )  # fmt: skip
    # Tool inputs fed straight from the Workflow input of the same name take that input's label and
    # doc; a second copy on the tool drifts (STYLE.md).
    wf_inputs = {short_id(i["id"]): i for i in as_list(pkg.workflow.get("inputs"), "id")}
    tools = {short_id(t.get("id", "")): t for t in pkg.tools}
    for step in as_list(pkg.workflow.get("steps"), "id"):
        tool = tools.get(short_id(str(step.get("run", ""))).lstrip("#"))
        if tool is None:
            continue
        fed = {
            short_id(e["id"]): short_id(str(e.get("source", "")))
            for e in as_list(step.get("in"), "id", "source")
        }
        where = f"CommandLineTool {short_id(tool.get('id', '?'))!r}"
        for entry in as_list(tool.get("inputs"), "id"):
            name = short_id(entry["id"])
            if fed.get(name) != name or name not in wf_inputs:
                continue
            repeated = [f for f in ("label", "doc") if entry.get(f)]
            if repeated:
                yield Finding(
                    pkg.name, "cwl_doc_repeated", f"{where} input {name!r}",
                    f"repeats the Workflow input's {' and '.join(repeated)}",
                    "remove it: the Workflow input documents this value once",
                )  # fmt: skip
            wf_type, tool_type = wf_inputs[name].get("type"), entry.get("type")
            both_enums = _base_type(wf_type) == "enum" and _base_type(tool_type) == "enum"
            if both_enums and _symbols(wf_type) != _symbols(tool_type):
                yield Finding(
                    pkg.name, "cwl_enum", f"{where} input {name!r}",
                    f"symbols {_symbols(tool_type)} differ from the Workflow's {_symbols(wf_type)}",
                    "keep one list of choices: use the same symbols",
                )  # fmt: skip


def _symbols(typ: Any) -> list[str]:
    if isinstance(typ, list):
        typ = next((t for t in typ if t != "null"), {})
    return [short_id(s) for s in (typ.get("symbols") or [])] if isinstance(typ, Mapping) else []


def cwltool_command() -> list[str]:
    """The cwltool next to this interpreter, so the venv's engine is used even when it is not on PATH.

    (``python -m cwltool --validate`` exits 0 even when validation fails, so the script is preferred.)
    """
    local = Path(sys.executable).parent / "cwltool"
    return [str(local)] if local.exists() else ["cwltool"]


def cwltool_validate(path: Path) -> str | None:
    """Run ``cwltool --validate``; return its last error line, or None when valid.

    A document that imports the eoap schema is validated as a copy pointing at the local schema.
    """
    if EOAP_STRING_FORMAT in path.read_text():
        import tempfile

        with tempfile.TemporaryDirectory(prefix="eopack-validate-") as tmp:
            copy_path = Path(tmp) / path.name
            dump_yaml(offline_schemas(load_yaml(path)), copy_path)
            return _cwltool_validate(copy_path)
    return _cwltool_validate(path)


def _cwltool_validate(path: Path) -> str | None:
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
    for check in (_check_document, _check_workflow, _check_tools, _check_style):
        findings.extend(check(pkg))
    findings.extend(_check_layout(pkg, root or repo_root()))
    findings.extend(_check_metadata(pkg, root or repo_root()))
    return findings
