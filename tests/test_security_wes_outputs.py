"""Issue 21 #8: the WES client does not trust the paths a server reports for a run's outputs.

A malicious or broken server answered ``outputs: {"../../victim": {...}}``: the client deleted and
replaced files outside the run folder, and copied any local path the server named. The server is the
untrusted party here, so these tests hand ``fetch_outputs`` what such a server would report.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from eopack.errors import ServiceUnavailableError
from eopack.runners.wes import fetch_outputs

RUN_ID = "0123abcd"


@pytest.fixture
def server_run(tmp_path: Path) -> Path:
    """A Toil WES run's outputs folder: ``<work>/<run id>/outputs/`` with one result folder."""
    outputs = tmp_path / "work" / RUN_ID / "outputs"
    (outputs / "result").mkdir(parents=True)
    (outputs / "result" / "catalog.json").write_text("{}")
    return outputs


def _dir(path: Path) -> dict[str, str]:
    return {"class": "Directory", "location": path.as_uri(), "path": str(path)}


def test_a_climbing_key_deletes_and_writes_nothing_outside(tmp_path: Path, server_run: Path) -> None:
    run_dir = tmp_path / "home" / "runs" / "r1"
    run_dir.mkdir(parents=True)
    victim = tmp_path / "home" / "victim"
    victim.mkdir()
    (victim / "precious.txt").write_text("keep me")
    with pytest.raises(ServiceUnavailableError, match="outside"):
        fetch_outputs({"../../victim": _dir(server_run / "result")}, run_dir, RUN_ID)
    assert (victim / "precious.txt").read_text() == "keep me"
    assert list(run_dir.iterdir()) == []


def test_an_unknown_output_key_is_refused(tmp_path: Path, server_run: Path) -> None:
    with pytest.raises(ServiceUnavailableError, match="does not have"):
        fetch_outputs({"extra": _dir(server_run / "result")}, tmp_path, RUN_ID, known=["result"])


@pytest.mark.parametrize("where", ["elsewhere", "other-run", "symlink"])
def test_a_source_outside_this_runs_outputs_is_not_copied(
    tmp_path: Path, server_run: Path, where: str
) -> None:
    secret = tmp_path / "private"
    secret.mkdir()
    (secret / "id_rsa").write_text("PRIVATE")
    if where == "elsewhere":
        src = secret
    elif where == "other-run":
        src = tmp_path / "work" / "ffff0000" / "outputs" / "result"
        src.mkdir(parents=True)
    else:
        src = server_run / "linked"
        src.symlink_to(secret)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    with pytest.raises(ServiceUnavailableError, match=f"outside run {RUN_ID}"):
        fetch_outputs({"result": _dir(src)}, run_dir, RUN_ID, known=["result"])
    assert list(run_dir.iterdir()) == []


def test_symlinks_inside_an_output_are_copied_as_links_not_followed(tmp_path: Path, server_run: Path) -> None:
    (tmp_path / "private.txt").write_text("PRIVATE")
    (server_run / "result" / "leak.txt").symlink_to(tmp_path / "private.txt")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    copied = fetch_outputs({"result": _dir(server_run / "result")}, run_dir, RUN_ID, known=["result"])
    assert (run_dir / "result" / "catalog.json").read_text() == "{}"
    assert (run_dir / "result" / "leak.txt").is_symlink()
    assert copied["result"]["path"] == str(run_dir / "result")
