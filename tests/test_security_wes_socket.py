"""Issue 21 #4a: no local user reaches the Toil WES server except through nginx's basic auth.

The attack: ``toil server`` (gunicorn) listened on a loopback TCP port with no authentication, so any
local user could POST a run and execute as the service user. Now it listens on a unix socket in a
mode-700 folder: the test looks for any TCP port the server's processes listen on, and tries the
direct POST as another user (``nobody``).
"""

from __future__ import annotations

import contextlib
import os
import stat
import subprocess
from pathlib import Path

import pytest

from eopack.clients.wes import API_PATH
from eopack.services import _proc, wes

pytestmark = pytest.mark.wes


def _tree(pid: int) -> set[int]:
    """``pid`` and all its descendants."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        current = todo.pop()
        found.add(current)
        todo += children.get(current, [])
    return found


def _tcp_listening(pids: set[int]) -> list[str]:
    """Every TCP socket in LISTEN state that one of ``pids`` holds, as ``address:port``."""
    listening = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A":
                listening[f"socket:[{fields[9]}]"] = fields[1]
    held = []
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    if (target := os.readlink(fd)) in listening:
                        held.append(listening[target])
    return held


# A direct POST of a run to the server's socket, as the attacker would send it.
ATTACK = f"""
import socket, sys
body = b"--x\\r\\nContent-Disposition: form-data; name=\\"workflow_url\\"\\r\\n\\r\\nx.cwl\\r\\n--x--\\r\\n"
s = socket.socket(socket.AF_UNIX)
try:
    s.connect(sys.argv[1])
except PermissionError:
    print("refused"); sys.exit(0)
s.sendall(b"POST {API_PATH}/runs HTTP/1.0\\r\\nContent-Type: multipart/form-data; boundary=x\\r\\n"
          + b"Content-Length: " + str(len(body)).encode() + b"\\r\\n\\r\\n" + body)
print(s.recv(200)); sys.exit(1)
"""


def test_the_wes_server_has_no_tcp_port_and_its_socket_refuses_other_users(
    wes_service: wes.WesService,
) -> None:
    layout = wes._Layout(wes_service.state_dir)
    server = wes._pid(layout, "server")
    assert server is not None
    pids = _tree(server)
    assert len(pids) >= 2  # the gunicorn arbiter and its workers
    assert _tcp_listening(pids) == [], "toil server listens on TCP: any local user can POST runs"
    # It does answer on its socket (so the test above looked at the right processes) ...
    assert wes.unix_http_status(layout.api_socket, f"{API_PATH}/service-info") == 200
    assert stat.S_IMODE(layout.sock_dir.stat().st_mode) == 0o700
    assert layout.sock_dir.stat().st_uid == os.geteuid()
    # ... and through nginx only with the password.
    assert _proc.http_status(wes_service.url + "/service-info") == 401
    python = "/usr/bin/python3"  # nobody cannot run the root-owned pyenv/venv interpreters
    if os.geteuid() != 0 or not Path(python).exists():
        pytest.skip("trying the socket as another user needs root (to become nobody) and /usr/bin/python3")
    proc = subprocess.run(
        [python, "-c", ATTACK, str(layout.api_socket)],
        user=65534,
        group=65534,
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert proc.returncode == 0 and proc.stdout.strip() == "refused", proc.stdout + proc.stderr
