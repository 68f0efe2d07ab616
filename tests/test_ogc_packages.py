"""ZOO-Project compatibility of every package (parametrized over ``list_packages()``, so new ones are in).

* ``eopack describe``: the OGC API Processes description cwl2ogc derives: ids, titles, input types
  and optionality, outputs, checked against the CWL itself.
* ``ap-validator`` (PyPI ``ogc-ap-validator``, in an isolated venv under ``.cache/venvs``: it is not in
  our lock, and 0.5.0 forgets to declare PyYAML, so it is installed beside it) reports ``valid``.
* The stage-in/stage-out wrapping ZOO's Calrissian runner performs (``eoap-cwlwrap``) gives a
  Workflow ``cwltool --validate`` accepts. The wrapping types staged inputs with the eoap
  ``string_format.yaml#URI`` schema, fetched from GitHub; offline, a local stand-in with the same
  ``URI`` record is served in its place (to cwl-utils through a fetcher, to cwltool by rewriting the
  URL in the wrapped file).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from ruamel.yaml import YAML

from eopack.commands import cli
from eopack.package import (
    EOAP_STRING_FORMAT,
    Package,
    as_list,
    cwltool_command,
    dump_yaml,
    list_packages,
    offline_schemas,
    short_id,
    staging_role,
)
from eopack.staging import shorten_ids
from tests.test_calrissian import isolated_venv

PACKAGES = list_packages()
IDS = [p.name for p in PACKAGES]

_CWL_TO_JSON = {"string": "string", "int": "integer", "long": "integer", "float": "number", "double": "number",
                "boolean": "boolean"}  # fmt: skip


@pytest.fixture(scope="module", params=PACKAGES, ids=IDS)
def package(request: pytest.FixtureRequest) -> Package:
    return request.param  # type: ignore[no-any-return]


def _description(pkg: Package) -> dict[str, Any]:
    result = CliRunner().invoke(cli, ["describe", pkg.name])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def test_describe_matches_the_cwl(package: Package) -> None:
    desc = _description(package)
    wf = package.workflow
    assert desc["id"] == package.name and desc["version"] == package.version
    assert desc["title"] == wf["label"] and desc["description"] == str(wf["doc"]).strip()
    assert "async-execute" in desc["jobControlOptions"]
    inputs = {short_id(i["id"]): i for i in as_list(wf.get("inputs"), "id")}
    assert list(desc["inputs"]) == list(inputs)
    for key, cwl in inputs.items():
        ogc = desc["inputs"][key]
        assert ogc["title"] == cwl["label"] and ogc["description"] == cwl["doc"], key
        typ = str(cwl["type"])
        optional = typ.endswith("?") or "default" in cwl
        assert (ogc["minOccurs"], ogc["maxOccurs"]) == (0 if optional else 1, 1), key
        base = typ.rstrip("?")
        schema = ogc["schema"]
        if isinstance(cwl["type"], dict) and cwl["type"].get("type") == "enum":  # a fixed choice
            assert schema["type"] == "string" and schema["enum"] == cwl["type"]["symbols"], key
        elif base in _CWL_TO_JSON:
            assert schema["type"] == _CWL_TO_JSON[base], key
        elif base.endswith("[]"):
            assert schema["type"] == "array" and schema["items"]["type"] == _CWL_TO_JSON[base[:-2]], key
        elif base.endswith("#URI"):  # the eoap URI record of the staging packages: a URI string
            assert (schema["type"], schema["format"]) == ("string", "uri"), key
        else:  # File / Directory: a reference (URI) or a STAC/GeoJSON document
            assert {"type": "string", "format": "uri"} in schema["oneOf"], key
        if "default" in cwl:
            assert schema["default"] == cwl["default"], key
    outputs = {short_id(o["id"]): o for o in as_list(wf.get("outputs"), "id")}
    assert list(desc["outputs"]) == list(outputs)
    for key, cwl in outputs.items():
        assert desc["outputs"][key]["title"] == cwl["label"]
        schema = desc["outputs"][key]["schema"]
        assert {"type": "string", "format": "uri"} in schema.get("oneOf", [schema])


def test_describe_convert_url_is_eoepcas_interface() -> None:
    """Seed 001's execute request (fn, url, size) is exactly what the description requires."""
    desc = _description(next(p for p in PACKAGES if p.name == "convert-url"))
    required = {k for k, v in desc["inputs"].items() if v["minOccurs"] == 1}
    assert required == {"fn", "url", "size"}
    assert all(desc["inputs"][k]["schema"]["type"] == "string" for k in required)


def test_ap_validator_passes(package: Package, tmp_path: Path) -> None:
    python = isolated_venv("ogc-ap-validator-0.5.0", ["ogc-ap-validator==0.5.0", "pyyaml"])
    path = package.path
    if EOAP_STRING_FORMAT in path.read_text():  # offline: the eoap URI schema from the local copy
        path = tmp_path / path.name
        dump_yaml(offline_schemas(package.copy_doc()), path)
    proc = subprocess.run(
        [str(python.parent / "ap-validator"), "--format", "json", "--detail", "errors", str(path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    report = json.loads(proc.stdout)
    assert report["valid"] is True, report
    assert not [i for i in report["issues"] if i["type"] == "error"], report


def test_eoap_validator_metadata_profile_has_no_error(package: Package, tmp_path: Path) -> None:
    """eoap-validator (PyPI, isolated venv) with the metadata and eoap-package profiles: 0 errors.

    eoap-validator 0.3.1 crashes on any hint cwl-utils does not know (rules.py reads ``hint.class_``
    of the plain mapping it keeps for ``calrissian:DaskGatewayRequirement``), so it reads a copy
    without that hint; every other line of the package is what it checks.
    """
    python = isolated_venv("eoap-validator-0.3.1", ["eoap-validator==0.3.1"])
    doc = YAML(typ="rt").load(package.path.read_text())
    for process in doc["$graph"]:
        hints = process.get("hints") or {}
        for key in [k for k in hints if str(k).endswith("DaskGatewayRequirement")]:
            del hints[key]
        if "hints" in process and not hints:
            del process["hints"]
    copy = tmp_path / package.path.name
    with copy.open("w") as handle:
        YAML(typ="rt").dump(doc, handle)
    proc = subprocess.run(
        [str(python.parent / "eoap-validator"), "--profile", "metadata", "--profile", "eoap-package",
         "--format", "json", f"{copy}#{package.name}"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    report = json.loads(proc.stdout)
    text = json.dumps(report)
    assert "TM.METADATA.MODEL" in text, "the metadata profile did not run"
    errors = [f for f in _findings(report) if f.get("severity") == "error" or f.get("status") == "failed"]
    if EOAP_STRING_FORMAT in package.path.read_text():
        # The staging packages import the published eoap schema, which this offline machine cannot
        # fetch, so the validator's CWL resolution is "blocked" (not failed); a local copy is no way
        # out: the eoap-package profile refuses local schema imports (EOAP.SCHEMA.LOCAL_IMPORT).
        blocked = [f for f in errors if f.get("rule_id") == "CWL.RESOLUTION" and f.get("status") == "blocked"]
        assert len(blocked) == 1, errors
        errors = [f for f in errors if f not in blocked]
    assert errors == [], errors
    if EOAP_STRING_FORMAT not in package.path.read_text():  # blocked resolution exits non-zero
        assert proc.returncode == 0, proc.stderr[-2000:]


def _findings(report: Any) -> list[dict[str, Any]]:
    """Every finding in eoap-validator's JSON report, wherever its version nests them."""
    if isinstance(report, dict):
        if "rule_id" in report:
            return [report]
        return [f for v in report.values() for f in _findings(v)]
    if isinstance(report, list):
        return [f for v in report for f in _findings(v)]
    return []


# --- eoap-cwlwrap --------------------------------------------------------------------------

URL = "https://raw.githubusercontent.com/eoap/schemas/main/string_format.yaml"

URI_RECORD = """\
# Offline stand-in for the eoap string_format schema: only the URI record the staging uses.
- type: record
  name: URI
  doc: A URI, carried as a string.
  fields:
  - name: value
    type: string
"""

STAGING = f"""\
cwlVersion: v1.2
$graph:
- class: CommandLineTool
  id: stage-in
  label: Stage in
  doc: Copies the STAC catalog at a URI into a local folder.
  requirements:
    SchemaDefRequirement:
      types: [{{$import: "{URL}"}}]
  baseCommand: [stage-in]
  inputs:
    reference:
      type: "{URL}#URI"
      inputBinding: {{valueFrom: $(self.value)}}
  outputs:
    staged:
      type: Directory
      outputBinding: {{glob: .}}
- class: CommandLineTool
  id: stage-in-file
  label: Stage in a file
  doc: Downloads the file at a URI.
  requirements:
    SchemaDefRequirement:
      types: [{{$import: "{URL}"}}]
  baseCommand: [stage-in]
  inputs:
    reference:
      type: "{URL}#URI"
      inputBinding: {{valueFrom: $(self.value)}}
  outputs:
    staged:
      type: File
      outputBinding: {{glob: "*"}}
- class: CommandLineTool
  id: stage-out
  label: Stage out
  doc: Uploads a folder and gives the URI of its STAC catalog.
  requirements:
    SchemaDefRequirement:
      types: [{{$import: "{URL}"}}]
    InlineJavascriptRequirement: {{}}
  baseCommand: [stage-out]
  inputs:
    bucket: string
    results:
      type: Directory
      inputBinding: {{position: 1}}
  outputs:
    catalog:
      type: "{URL}#URI"
      outputBinding:
        outputEval: '${{ return {{"value": "s3://" + inputs.bucket + "/catalog.json"}}; }}'
"""


@pytest.fixture(scope="module")
def staging(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("staging")
    (folder / "string_format.yaml").write_text(URI_RECORD)
    (folder / "staging.cwl").write_text(STAGING)
    return folder / "staging.cwl", folder / "string_format.yaml"


def test_eoap_cwlwrap_output_validates(package: Package, staging: tuple[Path, Path], tmp_path: Path) -> None:
    if staging_role(package.doc) is not None:
        pytest.skip("a staging component is what wraps, not what is wrapped (tests/test_staging.py)")
    import requests
    from cwl_utils.parser import cwl_v1_2, load_document_by_uri, save
    from eoap_cwlwrap import wrap
    from loguru import logger
    from schema_salad.fetcher import DefaultFetcher

    stage_file, local_schema = staging

    class Offline(DefaultFetcher):
        def fetch_text(self, url: str, content_types: list[str] | None = None) -> str:
            if url.split("#")[0] == URL:
                return local_schema.read_text()
            return super().fetch_text(url, content_types)

        def check_exists(self, url: str) -> bool:
            return url.split("#")[0] == URL or super().check_exists(url)

    def load(uri: str) -> Any:
        options = cwl_v1_2.LoadingOptions(fetcher=Offline({}, requests.Session()))
        return shorten_ids(load_document_by_uri(uri, loadingOptions=options))

    logger.disable("eoap_cwlwrap")
    stage_in = load(f"{stage_file.as_uri()}#stage-in")
    stage_out = load(f"{stage_file.as_uri()}#stage-out")
    processes = [shorten_ids(p) for p in load_document_by_uri(package.path.as_uri(), load_all=True)]
    app = next(p for p in processes if p.id == package.name)
    file_stage_in = load(f"{stage_file.as_uri()}#stage-in-file")
    main = wrap(
        workflow=app, directory_stage_in=stage_in, file_stage_in=file_stage_in, directory_stage_out=stage_out
    )
    wrapped = tmp_path / f"{package.name}-wrapped.cwl"
    with wrapped.open("w") as handle:
        YAML().dump(save([main, stage_in, file_stage_in, stage_out, *processes], relative_uris=False), handle)
    wrapped.write_text(wrapped.read_text().replace(URL, local_schema.as_uri()))

    doc = YAML(typ="safe").load(wrapped.read_text())
    orchestrator = next(p for p in doc["$graph"] if p["id"] == "main")
    steps = {s["id"]: s for s in orchestrator["steps"]}
    assert steps["app"]["run"] == f"#{package.name}"
    assert "stage_out_0" in steps  # the one Directory output is staged out
    directory_inputs = [
        i for i in as_list(package.workflow.get("inputs"), "id") if str(i["type"]).rstrip("?") == "Directory"
    ]
    assert len([s for s in steps if s.startswith("directory_stage_in")]) == len(directory_inputs)

    proc = subprocess.run(
        [*cwltool_command(), "--validate", "--disable-color", f"{wrapped}#main"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "is valid CWL" in proc.stdout + proc.stderr
