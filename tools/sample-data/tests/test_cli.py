"""The command line: the catalog path on the last stdout line, exit 2 and one line for bad input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from eopack_sample_data.cli import main

SMALL = ["--tile-size", "120", "--resolution", "100"]


@pytest.mark.parametrize(
    "argv",
    [
        ["--months", "0"],
        ["--tiles", "1"],
        ["--tile-size", "10"],
        ["--resolution", "30"],
        ["--start", "2024-6"],
        ["--months", "two"],
        ["--colour", "blue"],
    ],
)
def test_bad_arguments_exit_2_with_one_line(
    argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--out", str(tmp_path / "x"), *argv]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("eopack-sample-data: error: "), captured.err
    assert not (tmp_path / "x").exists()


def test_prints_the_catalog_path_last(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "sample"
    assert main(["--out", str(out), "--months", "1", *SMALL]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip().splitlines()[-1] == str(out / "catalog.json")
    assert "date 1/3" in captured.err  # progress goes to stderr
    assert main(["--out", str(out), "--months", "1", *SMALL]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == str(out / "catalog.json")


def test_console_script_runs_relative_to_cwd(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "eopack_sample_data.cli", "--months", "1", *SMALL],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    catalog = Path(result.stdout.strip().splitlines()[-1])
    assert catalog == tmp_path / "data" / "sample" / "catalog.json" and catalog.exists()


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    assert "--tile-size" in capsys.readouterr().out
