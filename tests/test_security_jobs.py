"""Issue 21 #15: bad job files end with exit 2 and one line that says what is wrong."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = """\
cwlVersion: v1.2
$graph:
  - class: Workflow
    id: t
    inputs:
      n: {type: int}
      label: {type: "string?"}
    outputs: {}
    steps:
      s: {run: "#tool", in: {n: n}, out: []}
  - class: CommandLineTool
    id: tool
    baseCommand: echo
    inputs:
      n: {type: int, inputBinding: {position: 1}}
    outputs: {}
"""


def _run(tmp_path: Path, app: str, job_text: str) -> subprocess.CompletedProcess[str]:
    job = tmp_path / "job.yml"
    job.write_text(job_text)
    return subprocess.run(
        [sys.executable, "-m", "eopack", "run", app, str(job), "--no-container", "--outdir", str(tmp_path / "run")],
        capture_output=True, text=True, check=False, cwd=ROOT, timeout=300,
    )  # fmt: skip


def _error_lines(proc: subprocess.CompletedProcess[str]) -> list[str]:
    return [ln for ln in proc.stderr.splitlines() if ln.startswith("eopack: error:")]


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("n: [1\n", "is not valid YAML at line 2"),
        ("- 1\n- 2\n", "holds a list"),
        ("just text\n", "holds a str"),
    ],
)
def test_bad_yaml_and_non_mappings_are_one_line(tmp_path: Path, text: str, says: str) -> None:
    (tmp_path / "t.cwl").write_text(PACKAGE)
    proc = _run(tmp_path, str(tmp_path / "t.cwl"), text)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert len(_error_lines(proc)) == 1 and says in _error_lines(proc)[0], proc.stderr


def test_a_misspelled_input_is_an_error_naming_the_known_ones(tmp_path: Path) -> None:
    """`max_byte` for convert-url's `max_bytes` used to be ignored silently (the run went on)."""
    proc = _run(tmp_path, "convert-url", "url: https://example.com/a.tif\nmax_byte: 1000\n")
    assert proc.returncode == 2, proc.stderr
    [line] = _error_lines(proc)
    assert "unknown input(s) max_byte" in line and "max_bytes" in line
    assert not (tmp_path / "run" / ".eopack").exists(), "nothing may run for a wrong job"


def test_a_missing_required_input_is_named(tmp_path: Path) -> None:
    (tmp_path / "t.cwl").write_text(PACKAGE)
    proc = _run(tmp_path, str(tmp_path / "t.cwl"), "label: x\n")
    assert proc.returncode == 2
    [line] = _error_lines(proc)
    assert "lacks required input(s) n" in line and "label, n" in line


def test_a_mistyped_input_shows_the_engines_useful_line(tmp_path: Path) -> None:
    """cwltool's "Workflow error, try again with --debug" was shown without the line saying why."""
    (tmp_path / "t.cwl").write_text(PACKAGE)
    proc = _run(tmp_path, str(tmp_path / "t.cwl"), "n: abc\n")
    assert proc.returncode == 2, proc.stderr
    summary = proc.stderr.splitlines()[-2:]
    assert "Invalid job input record: the 'n' field is not valid because" in summary[0], summary
    assert "is not int" in summary[0]
