"""``eopack new APP``: a new application package that passes ``eopack validate`` and its tests at once.

Like ``nf-core modules create``: one name derived everywhere (STYLE.md). The Dockerfile is the
repository's template (containers/convert-url/Dockerfile with its ``ARG APP`` line changed), so the
container tests' "only ARG APP differs" rule holds for new packages too.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from string import Template

from .console import notice
from .errors import EopackError

__all__ = ["NewPackage", "create"]

_NAME = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")


class ScaffoldError(EopackError):
    exit_code = 2


@dataclass(frozen=True)
class NewPackage:
    app: str
    dask: bool

    @property
    def module(self) -> str:
        return "eopack_" + self.app.replace("-", "_")

    @property
    def files(self) -> dict[str, str]:
        values = {
            "app": self.app,
            "module": self.module,
            "title": self.app.replace("-", " ").capitalize(),
            "cores": "4" if self.dask else "1",
            "memory": '"2G"',
            "maxmem": '"8G"' if self.dask else '"2G"',
            "today": dt.date.today().isoformat(),
        }
        core = _CORE_DASK if self.dask else _CORE_NUMPY
        out = {
            f"app-packages/{self.app}/{self.app}.cwl": _CWL,
            f"app-packages/{self.app}/examples/default.yml": _JOB,
            f"tools/{self.app}/pyproject.toml": _PYPROJECT,
            f"tools/{self.app}/src/{self.module}/__init__.py": _INIT,
            f"tools/{self.app}/src/{self.module}/py.typed": "",
            f"tools/{self.app}/src/{self.module}/cli.py": _CLI,
            f"tools/{self.app}/src/{self.module}/core.py": core,
            f"tools/{self.app}/tests/test_core.py": _TEST,
            f"tests/workflows/{self.app}/test_cwltool.yml": _WORKFLOW_TEST,
        }
        return {path: Template(text).substitute(values) for path, text in out.items()}


def _register(root: Path, pkg: NewPackage) -> None:
    """Add the tool to the root dev group and workspace sources, so `uv sync` installs it."""
    pyproject = root / "pyproject.toml"
    text = pyproject.read_text()
    dist = f"eopack-{pkg.app}"
    if f'"{dist}"' in text:
        return
    # The dev group's eo-common line may carry extras and a comment ("eopack-eo-common[pc]",  # ...).
    dep = re.search(r'^    "eopack-eo-common(\[[^\]]*\])?",[^\n]*\n', text, re.MULTILINE)
    anchor_src = "eopack-eo-common = { workspace = true }\n"
    if dep is None or anchor_src not in text:
        raise ScaffoldError(
            f"cannot find the eopack-eo-common entries in {pyproject} to add {dist} next to them; "
            "add it to the dev dependency group and to tool.uv.sources by hand"
        )
    text = text[: dep.end()] + f'    "{dist}",\n' + text[dep.end() :]
    text = text.replace(anchor_src, anchor_src + f"{dist} = {{ workspace = true }}\n", 1)
    pyproject.write_text(text)


def create(root: Path, app: str, dask: bool = False, install: bool = True) -> list[Path]:
    """Write the package's files under ``root``; refuse to overwrite anything."""
    if not _NAME.match(app):
        raise ScaffoldError(
            f"app name must be kebab-case like 'water-mask' (lowercase letters, digits, dashes); got {app!r}"
        )
    pkg = NewPackage(app, dask)
    targets = {root / path: text for path, text in pkg.files.items()}
    targets[root / "containers" / app / "Dockerfile"] = _dockerfile(root, app)
    existing = [p for p in targets if p.exists()] + [p for p in (root / "tools" / app,) if p.exists()]
    if existing:
        raise ScaffoldError(
            f"{existing[0].relative_to(root)} already exists; choose another name or remove it"
        )
    for path, text in targets.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    _register(root, pkg)
    if install:
        uv = find_uv(root)
        if uv is None:
            notice("uv not found: run `uv lock && uv sync` yourself to install the new tool")
        else:
            notice("installing the new tool into the workspace (uv lock && uv sync)")
            for cmd in ([uv, "lock"], [uv, "sync", "--frozen"]):
                if subprocess.run(cmd, cwd=root, check=False).returncode != 0:
                    raise ScaffoldError(f"`{' '.join(cmd)}` failed; fix the message above and run it again")
    return sorted(targets)


def find_uv(root: Path) -> str | None:
    """uv: the one running us (``uv run`` sets $UV), the one on PATH, or the one bootstrap installed."""
    for candidate in (os.environ.get("UV"), shutil.which("uv"), str(root / ".cache" / "uv" / "bin" / "uv")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def _dockerfile(root: Path, app: str) -> str:
    template = root / "containers" / "convert-url" / "Dockerfile"
    if not template.exists():
        raise ScaffoldError(f"the Dockerfile template {template} is missing")
    text = template.read_text().replace("ARG APP=convert-url\n", f"ARG APP={app}\n")
    header = [
        f"# eopack/{app}: the container of app-packages/{app}, from the one template (only ARG APP differs)."
    ]
    body = text.split("\n")
    start = next(i for i, line in enumerate(body) if line and not line.startswith("#"))
    return "\n".join(header + body[start:])


_CWL = """cwlVersion: v1.2
$$namespaces:
  s: https://schema.org/
  calrissian: https://calrissian-cwl.github.io/schema#
$$schemas:
  - http://schema.org/version/9.0/schemaorg-current-http.rdf

s:softwareVersion: 0.1.0
s:name: $app
s:description: $title (created by `eopack new`; describe what it does).
s:dateCreated: "$today"
s:license: https://spdx.org/licenses/Apache-2.0
s:codeRepository: https://github.com/eopack/eopack
s:softwareHelp:
  - class: s:CreativeWork
    s:name: $app manual
    s:url: https://github.com/eopack/eopack/tree/main/app-packages/$app
# Project-wide values (author, publisher, license) have one source: the root pyproject.toml
# ([project] authors and license); `eopack validate` checks these equal (check metadata_project).
s:author:
  - class: s:Person
    s:givenName: eopack
    s:familyName: maintainers
    s:email: eopack@users.noreply.github.com
    s:affiliation: &eopack
      class: s:Organization
      s:name: eopack developers
      s:url: https://github.com/eopack
s:publisher: *eopack

$$graph:
  - class: Workflow
    id: $app
    label: $title
    doc: A constant raster over an area of interest, written as a COG with a STAC catalog. Replace with your processing.
    inputs:
      aoi:
        label: Area of interest
        doc: west,south,east,north in degrees (EPSG:4326).
        type: string
      value:
        label: Value
        doc: The value every pixel gets.
        type: float
        default: 1.0
      resolution:
        label: Resolution
        doc: Pixel size in metres.
        type: float
        default: 100
    outputs:
      results:
        label: Results
        doc: Folder with catalog.json and one item with the COG.
        type: Directory
        outputSource: run_tool/results
    steps:
      run_tool:
        label: Run the tool
        doc: Runs the $app tool.
        run: "#$app-tool"
        in:
          aoi: aoi
          value: value
          resolution: resolution
        out: [results]

  - class: CommandLineTool
    id: $app-tool
    label: $app tool
    doc: Writes the raster and its STAC catalog into its working directory.
    baseCommand: $app
    requirements:
      DockerRequirement:
        dockerPull: eopack/$app:0.1.0
      ResourceRequirement:
        coresMin: 1
        coresMax: $cores
        ramMin: 512
        ramMax: 2048
      EnvVarRequirement:
        envDef:
          # Dask's scratch space must be in the job's own temporary folder, not a shared /tmp.
          DASK_TEMPORARY_DIRECTORY: $$(runtime.tmpdir)
    hints:
      calrissian:DaskGatewayRequirement:
        workerCores: 1
        workerCoresLimit: 1
        clusterMaxCores: $cores
        workerMemory: $memory
        clusterMaxMemory: $maxmem
    inputs:  # label and doc live on the Workflow inputs that feed these (check cwl_doc_repeated)
      aoi:
        type: string
        inputBinding: {prefix: --aoi}
      value:
        type: float
        inputBinding: {prefix: --value}
      resolution:
        type: float
        inputBinding: {prefix: --resolution}
    outputs:
      results:
        label: Results folder
        doc: The tool's working directory with catalog.json.
        type: Directory
        outputBinding:
          glob: .
"""

_JOB = """# The default job of $app (used by `eopack run $app`).
aoi: "11.4,46.5,11.5,46.6"
value: 1.5
resolution: 100
"""

_PYPROJECT = """[project]
name = "eopack-$app"
# Must equal s:softwareVersion in app-packages/$app/$app.cwl (checked by `eopack validate`).
version = "0.1.0"
description = "$title"
requires-python = ">=3.12"
dependencies = [
    "eopack-eo-common[load]",
    "numpy>=1.26",
    "rasterio>=1.3",
]

[project.scripts]
$app = "$module.cli:main"

[tool.uv.sources]
eopack-eo-common = { workspace = true }

[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[tool.hatch.build.targets.wheel]
packages = ["src/$module"]
"""

_INIT = '''"""$app: $title."""

__all__ = ["cli", "core"]
'''

_CLI = '''"""Command line of $app; flags mirror the CWL input ids (snake_case -> kebab-case)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from eopack_eo_common.cli import run_main, setup_logging

from .core import run

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="$app", description="$title")
    parser.add_argument("--aoi", required=True, help="west,south,east,north in degrees (EPSG:4326)")
    parser.add_argument("--value", type=float, default=1.0, help="pixel value (default 1.0)")
    parser.add_argument("--resolution", type=float, default=100.0, help="pixel size in metres (default 100)")
    parser.add_argument("--outdir", type=Path, default=Path("."), help="where the results go (default: .)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser


def _body(argv: Sequence[str] | None) -> None:
    args = _parser().parse_args(argv)
    setup_logging(args.verbose)
    print(run(args.aoi, args.value, args.resolution, args.outdir))


def main(argv: Sequence[str] | None = None) -> int:
    return run_main("$app", _body, argv)


if __name__ == "__main__":
    sys.exit(main())
'''

_CORE_HEAD = '''"""$title: a constant raster over the AOI in its UTM zone, as a COG with a STAC catalog."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import numpy as np
import pystac
import rasterio
from rasterio.warp import transform_bounds

from eopack_eo_common.errors import ToolInputError
from eopack_eo_common.output import staged_output
from eopack_eo_common.raster import write_cog
from eopack_eo_common.search import parse_bbox
from eopack_eo_common.stac import save_catalog

__all__ = ["run"]


def _utm(west: float, south: float, east: float, north: float) -> int:
    zone = int((west + east) / 2 // 6 + 31)
    return (32600 if (south + north) / 2 >= 0 else 32700) + zone


def run(aoi: str, value: float, resolution: float, outdir: Path) -> Path:
    """Write the raster and its catalog into ``outdir``; return the catalog path."""
    if not resolution > 0:
        raise ToolInputError(f"resolution must be a positive number of metres; got {resolution!r}")
    bbox = parse_bbox(aoi)
    epsg = _utm(*bbox)
    left, bottom, right, top = transform_bounds("EPSG:4326", f"EPSG:{epsg}", *bbox, densify_pts=21)
    width, height = math.ceil((right - left) / resolution), math.ceil((top - bottom) / resolution)
    transform = rasterio.Affine(resolution, 0, left, 0, -resolution, top)
    pixels = _compute(value, (height, width))
    with staged_output(outdir) as stage:
        folder = stage / "result"
        folder.mkdir()
        write_cog(folder / "data.tif", pixels, transform, f"EPSG:{epsg}")
        west, south, east, north = bbox
        geometry = {"type": "Polygon", "coordinates": [[[west, south], [east, south], [east, north],
                                                         [west, north], [west, south]]]}
        item = pystac.Item("result", geometry, list(bbox), dt.datetime.now(dt.UTC).replace(microsecond=0), {})
        item.add_asset("data", pystac.Asset(str(folder / "data.tif"), media_type=pystac.MediaType.COG,
                                            roles=["data"]))
        catalog = pystac.Catalog("$app", "$title")
        catalog.add_item(item)
        save_catalog(catalog, stage)
    return outdir / "catalog.json"
'''

_CORE_NUMPY = (
    _CORE_HEAD
    + """

def _compute(value: float, shape: tuple[int, int]) -> np.ndarray:
    return np.full(shape, value, dtype="float32")
"""
)

_CORE_DASK = (
    _CORE_HEAD
    + '''

def _compute(value: float, shape: tuple[int, int]) -> np.ndarray:
    """Computed on the Dask cluster the package's DaskGatewayRequirement asks for (or a local one)."""
    import dask.array as da

    from eopack_eo_common.dask_cluster import dask_client

    with dask_client():
        return da.full(shape, value, dtype="float32", chunks=512).compute()
'''
)

_TEST = '''"""Unit tests of $app."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio

from eopack_eo_common.errors import ToolInputError
from eopack_eo_common.stac import validate_tree
from $module.core import run


def test_raster_has_the_value_and_valid_stac(tmp_path: Path) -> None:
    catalog = run("11.4,46.5,11.5,46.6", 2.5, 200, tmp_path)
    with rasterio.open(tmp_path / "result" / "data.tif") as src:
        assert src.crs.to_epsg() == 32632
        np.testing.assert_array_equal(src.read(1), 2.5)
    assert validate_tree(catalog.parent).ok


def test_bad_bbox_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(ToolInputError, match="bbox must be west,south,east,north"):
        run("11.5,46.5,11.4,46.6", 1, 100, tmp_path)
    assert list(tmp_path.iterdir()) == []
'''

_WORKFLOW_TEST = """# $app through `eopack run --runner cwltool` (created by `eopack new`).
- name: $app cwltool default job
  tags: [$app, cwltool]
  command: eopack run $app --outdir out -q
  files:
    - path: out/results/catalog.json
    - path: out/results/result/data.tif
    - path: out/results/result/result.json
      contains: ['"type": "Feature"']
"""
