"""The README works for a newcomer: its commands run in a plain shell after `make demo`.

Every command of the README's ``bash`` blocks is either run here for real — in a plain shell: a
clean environment with the system PATH (plus ``~/.local/bin``, where bootstrap puts uv when not
root), from the repository root — or listed in EXEMPT with the reason. The code map names every
top-level folder and every role of the runner side, and each of them exists.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from eopack.scaffold import find_uv

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PLAIN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# Commands not run here, and why (each must still be in the README: a stale entry fails).
EXEMPT = {
    "make demo": "the quick start itself: it made the environment these commands run in",
    "make test": "the quick start itself: it runs this test",
    "uv run eopack new water-mask --dask": "changes the workspace (pyproject, uv.lock); tests/test_scaffold.py runs it in a copy",
}


def fenced(text: str, lang: str) -> list[str]:
    return re.findall(rf"(?ms)^```{lang}\n(.*?)^```", text)


def commands(block: str) -> list[str]:
    """The command lines of a block, without comments."""
    found = []
    for line in block.splitlines():
        command = re.sub(r"\s+#.*$", "", line).strip()
        if command and not command.startswith("#"):
            found.append(command)
    return found


def readme_commands() -> list[str]:
    return [c for block in fenced(README.read_text(), "bash") for c in commands(block)]


def plain_env() -> dict[str, str]:
    home = os.environ.get("HOME", "/root")
    return {"HOME": home, "LANG": "C.UTF-8", "PATH": f"{home}/.local/bin:{PLAIN_PATH}"}


def test_quick_start_is_two_commands() -> None:
    quick = README.read_text().split("## Quick start", 1)[1].split("\n## ", 1)[0]
    assert [c for block in fenced(quick, "bash") for c in commands(block)] == ["make demo", "make test"]


def test_every_exemption_is_still_in_the_readme() -> None:
    assert set(EXEMPT) <= set(readme_commands())


def test_uv_is_on_a_plain_shells_path() -> None:
    proc = subprocess.run(
        ["bash", "-c", "command -v uv"], env=plain_env(), capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, (
        "uv is not on a plain shell's PATH: `make setup` (scripts/bootstrap.sh) puts it there"
    )


@pytest.mark.parametrize("command", [c for c in readme_commands() if c not in EXEMPT])
def test_readme_command_works_in_a_plain_shell(command: str) -> None:
    proc = subprocess.run(
        ["bash", "-c", command],
        cwd=ROOT,
        env=plain_env(),
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert proc.returncode == 0, f"`{command}` exited {proc.returncode}:\n{proc.stderr[-3000:]}"
    if command.startswith("uv run eopack run "):
        lines = proc.stdout.strip().splitlines()
        if "--publish" in command:  # then the collection's URL (and its STAC Browser page, when built)
            urls = [line for line in lines if line.startswith("http://127.0.0.1:")]
            assert urls and urls == lines[-len(urls) :], proc.stdout
            assert urls[0].endswith("/collections/ndvi"), proc.stdout
            lines = lines[: -len(urls)]
        catalog = Path(next(line for line in reversed(lines) if line.endswith("catalog.json")))
        assert catalog.is_file(), proc.stdout


@pytest.fixture(scope="module", autouse=True)
def stop_what_the_readme_started() -> Iterator[None]:
    """`eopack stac up` in the README starts the default stack; stop it after, unless it ran before."""
    was_up = _stac_up()
    yield
    if not was_up and _stac_up():
        subprocess.run(["bash", "-c", "uv run eopack stac down"], cwd=ROOT, env=plain_env(), check=False)


def _stac_up() -> bool:
    proc = subprocess.run(
        ["bash", "-c", "uv run eopack stac status"],
        cwd=ROOT,
        env=plain_env(),
        capture_output=True,
        check=False,
    )
    return proc.returncode == 0


def test_eopack_new_finds_the_uv_bootstrap_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("UV", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert find_uv(tmp_path) is None
    uv = tmp_path / ".cache" / "uv" / "bin" / "uv"
    uv.parent.mkdir(parents=True)
    uv.write_text("#!/bin/sh\n")
    uv.chmod(0o755)
    assert find_uv(tmp_path) == str(uv)
    monkeypatch.setenv("UV", "/nonexistent/uv")  # a stale $UV is passed over
    assert find_uv(tmp_path) == str(uv)


def code_map() -> tuple[set[str], set[str]]:
    """(top-level entries, runner-side entries) named in the README's code map."""
    section = README.read_text().split("## Code map", 1)[1].split("\n## ", 1)[0]
    top, runner = fenced(section, "")[:2]
    first = {line.split()[0].split("/")[0] for line in top.splitlines() if line.strip()}
    roles = {line.split()[0].rstrip("/") for line in runner.splitlines() if line.strip()}
    return first, roles


def test_code_map_names_every_top_level_folder() -> None:
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    folders = {path.split("/")[0] for path in tracked.splitlines() if "/" in path}
    named, _ = code_map()
    assert folders <= named, f"not in the README's code map: {sorted(folders - named)}"
    assert all((ROOT / name).exists() for name in named)


def test_code_map_names_the_runner_sides_roles() -> None:
    _, roles = code_map()
    assert {
        "commands",
        "runners",
        "clients",
        "services",
        "job.py",
        "package.py",
        "dask.py",
        "errors.py",
    } <= roles
    missing = [r for r in roles if not (ROOT / "runners" / "eopack" / r).exists()]
    assert not missing, f"the code map names what does not exist: {missing}"
