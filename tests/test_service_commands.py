"""The six services share one command builder: the same up/down/status [--json] and the same exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from eopack.commands import cli
from eopack.services import _proc

SERVICES = ("docker", "gateway", "registry", "slurm", "stac", "wes")


def test_every_service_has_up_down_status() -> None:
    for name in SERVICES:
        group = cli.get_command(None, name)  # type: ignore[arg-type]
        assert group is not None and {"up", "down", "status"} <= set(group.commands), name  # type: ignore[attr-defined]
        status = group.commands["status"]  # type: ignore[attr-defined]
        assert "as_json" in {p.name for p in status.params}, name


@pytest.mark.parametrize("name", [s for s in SERVICES if s != "docker"])
def test_status_of_a_service_that_is_down_is_json_with_up_false_and_exit_3(name: str, tmp_path: Path) -> None:
    args = ["--port", str(_proc.free_port())] if name == "registry" else ["--state-dir", str(tmp_path / name)]
    proc = subprocess.run(
        [sys.executable, "-m", "eopack", name, "status", "--json", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "SLURM_CONF": str(tmp_path / "none.conf")},
        check=False,
    )
    assert proc.returncode == 3, proc.stderr
    assert json.loads(proc.stdout)["up"] is False
