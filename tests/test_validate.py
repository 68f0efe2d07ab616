"""`eopack validate`: the contract of DESIGN.md §3, one line per violation, exit 1."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from eopack.package import EOAP_STRING_FORMAT, dump_yaml, list_packages, load_yaml, offline_schemas
from eopack_cli import Eopack

APPS = sorted(p.name for p in list_packages())


def test_repo_packages_are_valid(eopack: Eopack) -> None:
    proc = eopack("validate")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for app in APPS:
        assert f"ok {app}" in proc.stderr


@pytest.mark.parametrize("app", APPS)
def test_plain_cwltool_validates(app: str, root: Path, tmp_path: Path) -> None:
    path = root / "app-packages" / app / f"{app}.cwl"
    if EOAP_STRING_FORMAT in path.read_text():
        # The staging packages import the published eoap schema; offline, the same record from the
        # local copy (what `eopack validate` and the runners use).
        path = tmp_path / path.name
        dump_yaml(offline_schemas(load_yaml(root / "app-packages" / app / f"{app}.cwl")), path)
    proc = subprocess.run(
        [sys.executable, "-m", "cwltool", "--validate", str(path)],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "is valid CWL" in proc.stdout + proc.stderr


@pytest.fixture
def repo_copy(tmp_path: Path, root: Path) -> Path:
    """A copy of the repository layout, so packages can be broken without touching the real ones."""
    for part in ("app-packages", "tools", "containers", "pyproject.toml"):
        src = root / part
        if src.is_dir():
            shutil.copytree(src, tmp_path / part, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy(src, tmp_path / part)
    return tmp_path


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert re.search(old, text, flags=re.M), f"{old!r} not in {path}"
    path.write_text(re.sub(old, new, text, count=1, flags=re.M))


CASES = [
    (
        "clusterMaxCores:",
        "clusterMaxCore:",
        "convert-url: CommandLineTool 'convert' DaskGatewayRequirement: field 'clusterMaxCore' is the old name: "
        "rename it to 'clusterMaxCores'",
    ),
    (
        r"^s:softwareVersion: .*\n",
        "",
        "convert-url: s:softwareVersion: missing: add s:softwareVersion: MAJOR.MINOR.PATCH at the top of the document",
    ),
    (
        r'workerMemory: "1G"',
        'workerMemory: "1Gi"',
        "convert-url: CommandLineTool 'convert' DaskGatewayRequirement.workerMemory: '1Gi' has a unit that is not "
        "allowed: use a number with K, M, G, T (×1024) or KB, MB, GB, TB (×1000), e.g. '2G'",
    ),
    (
        r"^    label: Convert an image from a URL\n",
        "",
        "convert-url: Workflow: no label: add a non-empty 'label'",
    ),
    (
        r"^        doc: Runs the convert-url tool on one URL.\n",
        "",
        "convert-url: Workflow step 'convert': no doc: add a non-empty 'doc'",
    ),
    (
        r"^        coresMin: 1\n",
        "",
        "convert-url: CommandLineTool 'convert' requirements.ResourceRequirement: no coresMin: declare coresMin",
    ),
    (
        r"^    id: convert-url$",
        "    id: convert_url",
        "convert-url: Workflow: id is 'convert_url': set the Workflow id to 'convert-url' (the app name)",
    ),
    (
        r"^          prefix: --max-bytes$",
        "          prefix: --maxbytes",
        "convert-url: CommandLineTool 'convert' input 'max_bytes': prefix is '--maxbytes': use '--max-bytes'",
    ),
    (
        r"^s:softwareVersion: 1.0.0$",
        "s:softwareVersion: 1.0",
        "convert-url: s:softwareVersion: '1.0' is not semver: use MAJOR.MINOR.PATCH, e.g. 1.0.0",
    ),
]


# The platform metadata and CWL house style (issues 18 and 19): each finding names its check id.
STYLE_CASES = [
    (r"^s:publisher: \*eopack\n", "", "convert-url: s:publisher: missing: add s:publisher", "schema_org"),
    (r'^s:dateCreated: "2026-11-25"$', 's:dateCreated: "someday"', "convert-url: s:dateCreated: 'someday' is not a past ISO date", "metadata_date"),
    (r"^s:name: convert-url$", "s:name: convert", "convert-url: s:name: is 'convert': set it to 'convert-url'", "metadata_name"),
    (r"^    s:email: eopack@users.noreply.github.com$", "    s:email: someone@example.org", "convert-url: s:author: 'someone@example.org' is not an author in pyproject.toml", "metadata_project"),
    (r"^  - class: s:Person$", "  - class: s:Organization", "convert-url: s:author: an entry is a Organization", "metadata_author"),
    (r"^      fn:\n        type:\n          type: enum\n          symbols: \[resize\]\n        inputBinding:",
     "      fn:\n        doc: The operation.\n        type:\n          type: enum\n          symbols: [resize]\n        inputBinding:",
     "convert-url: CommandLineTool 'convert' input 'fn': repeats the Workflow input's doc: remove it", "cwl_doc_repeated"),
    (r"^      fn:\n        type:\n          type: enum\n          symbols: \[resize\]\n        inputBinding:",
     "      fn:\n        type:\n          type: enum\n          symbols: [resize, blur]\n        inputBinding:",
     "convert-url: CommandLineTool 'convert' input 'fn': symbols ['resize', 'blur'] differ from the Workflow's ['resize']", "cwl_enum"),
    (r"^        doc: The operation to perform on the image .*\n        type:\n          type: enum\n          symbols: \[resize\]\n",
     "        doc: The operation to perform; one of resize.\n        type: string\n",
     "convert-url: Workflow input 'fn': a fixed choice typed as string: type it as an enum", "cwl_enum"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("old", "new", "line", "check"),
    STYLE_CASES,
    ids=[c[3] + "-" + c[2].split(": ")[1][:20] for c in STYLE_CASES],
)
def test_style_and_metadata_findings_carry_their_check_id(
    eopack: Eopack, repo_copy: Path, old: str, new: str, line: str, check: str
) -> None:
    _edit(repo_copy / "app-packages/convert-url/convert-url.cwl", old, new)
    proc = eopack("validate", "convert-url", "--no-cwltool", cwd=repo_copy)
    assert proc.returncode == 1
    hits = [out for out in proc.stdout.splitlines() if out.startswith(line)]
    assert hits and all(out.endswith(f" [{check}]") for out in hits), proc.stdout


def test_a_file_without_format_is_a_finding(eopack: Eopack, repo_copy: Path) -> None:
    _edit(
        repo_copy / "app-packages/openeo-graph/openeo-graph.cwl",
        r"^        format: iana:application/json\n",
        "",
    )
    proc = eopack("validate", "openeo-graph", "--no-cwltool", cwd=repo_copy)
    assert proc.returncode == 1
    assert (
        "openeo-graph: Workflow input 'process_graph': File without format: add format: an IANA media type "
        "(iana:application/json) or an EDAM format [cwl_file_format]"
    ) in proc.stdout.splitlines()


@pytest.mark.parametrize(("old", "new", "line"), CASES, ids=[c[2].split(": ")[2][:40] for c in CASES])
def test_violation_is_one_clear_line(eopack: Eopack, repo_copy: Path, old: str, new: str, line: str) -> None:
    _edit(repo_copy / "app-packages/convert-url/convert-url.cwl", old, new)
    proc = eopack("validate", "convert-url", "--no-cwltool", cwd=repo_copy)
    assert proc.returncode == 1
    assert any(out.startswith(line) for out in proc.stdout.splitlines()), proc.stdout


def test_dask_under_requirements_is_refused_by_cwltool_and_us(eopack: Eopack, repo_copy: Path) -> None:
    cwl = repo_copy / "app-packages/convert-url/convert-url.cwl"
    _edit(
        cwl,
        r"^    hints:\n      calrissian:DaskGatewayRequirement:",
        "    hints: {}\n    x-moved:\n      calrissian:DaskGatewayRequirement:",
    )
    text = cwl.read_text().replace(
        "    requirements:\n      DockerRequirement:",
        "    requirements:\n      calrissian:DaskGatewayRequirement: {workerCores: 1, "
        "workerCoresLimit: 1, clusterMaxCores: 1, workerMemory: 1G, "
        "clusterMaxMemory: 1G}\n      DockerRequirement:",
        1,
    )
    cwl.write_text(text.replace("    x-moved:\n", "    s:x-moved:\n"))
    proc = eopack("validate", "convert-url", cwd=repo_copy)
    assert proc.returncode == 1
    assert "DaskGatewayRequirement is under requirements: move it to hints" in proc.stdout
    assert ": fix what cwltool --validate reports" in proc.stdout  # cwltool rejects it too


def test_version_must_match_the_tool(eopack: Eopack, repo_copy: Path) -> None:
    _edit(repo_copy / "tools/convert-url/pyproject.toml", r'^version = ".*"$', 'version = "9.9.9"')
    proc = eopack("validate", "convert-url", "--no-cwltool", cwd=repo_copy)
    assert proc.returncode == 1
    assert (
        "convert-url: tools/convert-url/pyproject.toml: version '9.9.9' differs from s:softwareVersion '1.0.0'"
        in proc.stdout
    )


def test_missing_dask_fields_each_named(eopack: Eopack, repo_copy: Path) -> None:
    _edit(repo_copy / "app-packages/convert-url/convert-url.cwl", r"^        clusterMaxMemory: .*\n", "")
    proc = eopack("validate", "convert-url", "--no-cwltool", cwd=repo_copy)
    assert "field 'clusterMaxMemory' is missing" in proc.stdout


def test_unknown_app_lists_available(eopack: Eopack) -> None:
    proc = eopack("validate", "no-such-app")
    assert proc.returncode == 2
    assert "No application package 'no-such-app'" in proc.stderr and "convert-url" in proc.stderr


@pytest.mark.parametrize("app", APPS)
def test_the_tool_reports_the_package_version(app: str, root: Path) -> None:
    """STAC ``processing:software`` uses the tool's VERSION, read from its installed metadata: it
    follows a version bump of ``pyproject.toml``, which `eopack validate` keeps equal to the CWL."""
    import importlib

    from eopack.package import find_package

    core = importlib.import_module(f"eopack_{app.replace('-', '_')}.core")
    assert find_package(app, root).version == core.VERSION
