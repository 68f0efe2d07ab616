"""`eopack new`: a scaffolded package validates, runs and passes its own tests right away."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PY = Path(sys.executable)


def _copy_repo(root: Path, dest: Path) -> Path:
    """The repository's files as git knows them (tracked and untracked-but-not-ignored)."""
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    for name in files:
        src = root / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


def _env(repo: Path, app: str, bin_dir: Path) -> dict[str, str]:
    """The new tool is not installed in this venv: a shim on PATH runs it from the copy's source."""
    module = "eopack_" + app.replace("-", "_")
    src = repo / "tools" / app / "src"
    bin_dir.mkdir(exist_ok=True)
    shim = bin_dir / app
    # cwltool gives tools a clean environment, so the shim carries its own PYTHONPATH.
    shim.write_text(f'#!/bin/sh\nPYTHONPATH="{src}" exec "{PY}" -m {module}.cli "$@"\n')
    shim.chmod(0o755)
    return {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{PY.parent}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(src),
    }


def _run(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, env=env, check=False)


@pytest.mark.parametrize("dask", [True, False], ids=["dask", "numpy"])
def test_new_package_validates_runs_and_passes_its_tests(root: Path, tmp_path: Path, dask: bool) -> None:
    repo = _copy_repo(root, tmp_path / "repo")
    app = "water-mask"
    made = _run([str(PY), "-m", "eopack", "new", app, "--no-install", *(["--dask"] if dask else [])], repo)
    assert made.returncode == 0, made.stderr
    assert f"app-packages/{app}/{app}.cwl" in made.stdout and f"containers/{app}/Dockerfile" in made.stdout
    assert f'"eopack-{app}",' in (repo / "pyproject.toml").read_text()

    env = _env(repo, app, tmp_path / "bin")
    valid = _run([str(PY), "-m", "eopack", "validate", app], repo, env)
    assert valid.returncode == 0, valid.stdout + valid.stderr

    unit = _run(
        [
            str(PY),
            "-m",
            "pytest",
            f"tools/{app}/tests",
            "-q",
            "-p",
            "no:cacheprovider",
            "-o",
            "addopts=--import-mode=importlib",
        ],
        repo,
        env,
    )
    assert unit.returncode == 0 and "2 passed" in unit.stdout, unit.stdout[-2000:] + unit.stderr[-2000:]

    run = _run([str(PY), "-m", "eopack", "run", app, "--outdir", "out", "-q", "--no-container"], repo, env)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip().endswith("out/results/catalog.json")
    assert (repo / "out" / "results" / "result" / "data.tif").exists()

    if dask:  # its pytest-workflow test, the way the suite runs them (git-tracked files only)
        _run(["git", "init", "-q"], repo)
        _run(["git", "add", "-A"], repo)
        flow = _run(
            [
                str(PY),
                "-m",
                "pytest",
                f"tests/workflows/{app}",
                "--git-aware",
                "-q",
                "-p",
                "no:cacheprovider",
                "-o",
                "addopts=",
            ],
            repo,
            env,
        )
        assert flow.returncode == 0, flow.stdout[-3000:]


def test_existing_or_bad_names_are_refused(root: Path, tmp_path: Path) -> None:
    repo = _copy_repo(root, tmp_path / "repo")
    again = _run([str(PY), "-m", "eopack", "new", "ndvi", "--no-install"], repo)
    assert again.returncode == 2 and "already exists; choose another name" in again.stderr
    bad = _run([str(PY), "-m", "eopack", "new", "Water_Mask", "--no-install"], repo)
    assert bad.returncode == 2 and "app name must be kebab-case" in bad.stderr
