"""Issue 21 #17: service state is private, and stays private.

``stack.json``/``wes.json``/passwords are written by ``write_secret``: mode 600 on every write, even
when someone made the file world-readable, and a symlink planted in its place is replaced, never
followed. The WES server and workers create run folders, job stores and logs with umask 077.
"""

from __future__ import annotations

import os
import stat
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from eopack.services import _proc, wes
from eopack.services.base import write_secret


def test_a_world_readable_state_file_is_made_private_again(tmp_path: Path) -> None:
    state = tmp_path / "stack.json"
    state.write_text("{}")
    state.chmod(0o644)
    write_secret(state, '{"password": "x"}')
    assert stat.S_IMODE(state.stat().st_mode) == 0o600
    assert state.read_text() == '{"password": "x"}'


def test_a_planted_symlink_is_replaced_not_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("victim's")
    victim.chmod(0o644)
    state = tmp_path / "state" / "stack.json"
    state.parent.mkdir()
    state.symlink_to(victim)
    write_secret(state, "secret")
    assert victim.read_text() == "victim's" and stat.S_IMODE(victim.stat().st_mode) == 0o644
    assert not state.is_symlink() and state.read_text() == "secret"
    assert [p.name for p in state.parent.iterdir()] == ["stack.json"], "no temporary file left"


def test_spawned_services_get_the_umask_asked_for(tmp_path: Path) -> None:
    pid = _proc.spawn(
        [sys.executable, "-c", "import time; open('made', 'w').close(); time.sleep(30)"],
        log=tmp_path / "log", cwd=tmp_path, umask=wes.PRIVATE_UMASK,
    )  # fmt: skip
    try:
        assert _proc.wait_until(lambda: (tmp_path / "made").exists(), 10)
        status = Path(f"/proc/{pid}/status").read_text()
        assert "Umask:\t0077" in status
        assert stat.S_IMODE((tmp_path / "made").stat().st_mode) == 0o600
    finally:
        _proc.stop_pid(pid)
        time.sleep(0.1)


def test_the_wes_server_and_workers_start_with_a_private_umask(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, Any] = {}

    def spawn(cmd: list[str], **kwargs: Any) -> int:  # the process start is the boundary observed
        seen[Path(cmd[0]).name] = kwargs.get("umask")
        return os.getpid()

    monkeypatch.setattr(_proc, "spawn", spawn)
    layout = wes._Layout(tmp_path)
    layout.root.mkdir(exist_ok=True)
    layout.broker_file.write_text("redis://x\n")
    wes._start_worker(layout, tmp_path / "venv", 1)
    wes._start_server(layout, tmp_path / "venv", wes._State())
    assert seen == {"celery": 0o077, "toil": 0o077}


def test_the_wes_state_folders_are_private_after_up_writes_them(tmp_path: Path) -> None:
    layout = wes._Layout(tmp_path / "wes")
    layout.root.mkdir(mode=0o755)
    (layout.root / "workflows").mkdir(mode=0o755)  # a state dir made by an older eopack
    state = wes._State(password="p", redis_password="r", redis_port=1, api_port=2)
    wes._write_files(layout, state)
    for folder in (layout.root, layout.workflows, layout.work, layout.logs):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    for secret in (layout.password_file, layout.htpasswd, layout.broker_file, layout.redis_conf):
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600, secret
