"""Process plumbing shared by the local services: pid files, ports, readiness, logs, clean stops.

Every service eopack starts (STAC API, Dask Gateway, Slurm, WES, ...) keeps its state in one directory
and must be stoppable and checkable by a later, unrelated ``eopack`` process. So nothing here keeps
handles in memory: a service is identified by its pid file, its port, and the paths in its command line.
Only Linux is supported (``/proc`` is read to name the owner of a port and to find leftovers).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..clients.http import LOOPBACK, http_status
from ..errors import ServiceUnavailableError

__all__ = [
    "LOOPBACK",
    "ProcInfo",
    "as_user",
    "ensure_port_free",
    "free_port",
    "http_status",
    "mentions",
    "pid_alive",
    "port_in_use",
    "port_owner",
    "proc_info",
    "processes_under",
    "read_pid",
    "run_checked",
    "spawn",
    "stop_pid",
    "tail",
    "wait_until",
]


@dataclass(frozen=True)
class ProcInfo:
    """What ``/proc`` says about a process: enough to tell ours from someone else's."""

    pid: int
    name: str
    cmdline: str
    cwd: str | None


# ------------------------------------------------------------------ processes


def read_pid(path: Path) -> int | None:
    """The pid on the first line of a pid file, or None when the file is missing or garbled."""
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def pid_alive(pid: int | None) -> bool:
    """True for a running process; a zombie waiting to be reaped counts as gone (its port is free)."""
    if not pid or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by another user (e.g. postgres while we are not root)
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")


def proc_info(pid: int) -> ProcInfo | None:
    """Name, command line and working directory of a live process (None if gone or a zombie)."""
    if not pid_alive(pid):
        return None
    base = Path(f"/proc/{pid}")
    try:
        name = (base / "comm").read_text().strip()
        cmdline = (base / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return None
    try:
        cwd: str | None = os.readlink(base / "cwd")
    except OSError:
        cwd = None
    return ProcInfo(pid, name, cmdline, cwd)


def processes_under(path: Path) -> list[ProcInfo]:
    """Live processes whose command line or working directory mentions ``path``.

    A service started from a state directory leaves this fingerprint on every process it forks
    (postgres backends chdir into their data dir, nginx workers inherit the master's cwd), so this
    is how ``down`` proves nothing is left, even when a pid file was lost.
    """
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        info = proc_info(int(entry.name))
        if info is not None and mentions(info, path):
            found.append(info)
    return found


def mentions(info: ProcInfo, path: Path) -> bool:
    """True when the process runs inside ``path`` or names it (or a file under it) on its command line."""
    root = str(path.resolve())
    if info.cwd is not None and (info.cwd == root or info.cwd.startswith(root + "/")):
        return True
    return any(arg == root or arg.startswith(root + "/") for arg in info.cmdline.split())


def spawn(
    cmd: Sequence[str],
    *,
    log: Path,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    pid_file: Path | None = None,
    umask: int = -1,
) -> int:
    """Start a long-running command detached in its own session, output appended to ``log``.

    ``umask`` (e.g. ``0o077``) sets the files it creates private to its owner; -1 keeps ours.

    Its own session means the caller's Ctrl-C does not reach it and ``stop_pid`` can signal the
    whole process group (uvicorn reloaders, gunicorn workers) at once.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as sink:
        proc = subprocess.Popen(
            list(cmd),
            cwd=cwd,
            env=dict(env) if env is not None else None,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            umask=umask,
        )
    if pid_file is not None:
        pid_file.write_text(f"{proc.pid}\n")
    return proc.pid


def _gone(pid: int) -> bool:
    """True once ``pid`` has exited; reaps it first if it is our own child, so no zombie lingers."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)
    return not pid_alive(pid)


def stop_pid(
    pid: int | None, *, timeout: float = 10.0, group: bool = True, sig: int = signal.SIGTERM
) -> bool:
    """Ask a process (and its group) to stop, escalate to SIGKILL after ``timeout``; True if it is gone."""
    if not pid_alive(pid):
        return True
    assert pid is not None
    target_group = group and _is_group_leader(pid)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, sig) if target_group else os.kill(pid, sig)
    if wait_until(lambda: _gone(pid), timeout):
        return True
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL) if target_group else os.kill(pid, signal.SIGKILL)
    return wait_until(lambda: _gone(pid), 5.0)


def _is_group_leader(pid: int) -> bool:
    try:
        return os.getpgid(pid) == pid
    except ProcessLookupError:
        return False


def as_user(cmd: Sequence[str], user: str | None) -> list[str]:
    """Prefix ``cmd`` with ``runuser`` when we are root and it must run as ``user`` (e.g. postgres)."""
    if user is None or os.geteuid() != 0 or pwd.getpwuid(os.geteuid()).pw_name == user:
        return list(cmd)
    return ["runuser", "-u", user, "--", *cmd]


def run_checked(
    cmd: Sequence[str],
    *,
    service: str,
    what: str,
    log: Path,
    fix: str,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 120.0,
) -> str:
    """Run a short command, keep its output in ``log``, return stdout; fail as ServiceUnavailableError.

    The error carries the last lines of output, because "initdb failed" alone helps nobody.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    try:
        proc = subprocess.run(
            list(cmd),
            env=dict(env) if env is not None else None,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError as exc:
        raise ServiceUnavailableError(service, f"{what}: {exc.filename} not found", fix) from exc
    except subprocess.TimeoutExpired as exc:
        raise ServiceUnavailableError(service, f"{what}: no answer after {timeout:.0f} s", fix) from exc
    with log.open("a") as sink:
        sink.write(f"$ {' '.join(cmd)}\n{proc.stdout}{proc.stderr}")
    if proc.returncode != 0:
        last = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
        raise ServiceUnavailableError(
            service, f"{what} failed (exit {proc.returncode}): {last or 'no output'}; log: {log}", fix
        )
    return proc.stdout


def tail(path: Path, lines: int = 15) -> str:
    """The last lines of a log file, for error messages ('' when it does not exist)."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


# ------------------------------------------------------------------ ports and readiness


def port_in_use(port: int, host: str = LOOPBACK) -> bool:
    """True when something accepts TCP connections on ``host:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def free_port(host: str = LOOPBACK) -> int:
    """A port the kernel says is free right now (for tests that must not collide with defaults)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _listening_inodes(port: int) -> set[str]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(fields[9])
    return inodes


def port_owner(port: int) -> ProcInfo | None:
    """The process listening on ``port`` (None when unknown: nobody, or not ours to inspect)."""
    targets = {f"socket:[{inode}]" for inode in _listening_inodes(port)}
    if not targets:
        return None
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in (entry / "fd").iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd) in targets:
                        return proc_info(int(entry.name))
    return None


def ensure_port_free(service: str, port: int, option: str, host: str = LOOPBACK) -> None:
    """Fail before starting anything when another program already listens where ``service`` would."""
    if not port_in_use(port, host):
        return
    owner = port_owner(port)
    who = f"pid {owner.pid} ({owner.cmdline[:80]})" if owner else "another process"
    raise ServiceUnavailableError(
        service,
        f"port {port} on {host} is already in use by {who}",
        f"Stop that process or choose another port with {option}.",
    )


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` seconds pass; return its last value."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
