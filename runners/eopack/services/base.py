"""The one lifecycle base of every local service: state dir, 0600 JSON state, pids, rollback, sweep.

Every service (stac, gateway, slurm, wes, docker, registry) keeps everything in one state dir and is
driven by later, unrelated ``eopack`` processes, so nothing is kept in memory:

* ``JsonState``: a dataclass saved as JSON with mode 600 (it may hold passwords) and loaded leniently
  (unknown keys ignored, a missing or broken file is ``None``);
* ``owned_pid``: the pid from a pid file, only while that process still runs from the state dir
  (a recycled pid is not ours);
* ``Rollback``: what a failed ``up`` started is stopped again, newest first, so no half service stays;
* ``sweep``: after a stop, kill what is left under the state dir and prove nothing survived.

Process plumbing (spawn, stop, ports, /proc) is in ``_proc``; no click here (commands are in
``eopack.commands.services``).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import asdict, fields
from pathlib import Path
from types import TracebackType
from typing import Self

from ..console import Progress
from ..errors import ServiceUnavailableError
from . import _proc

__all__ = [
    "JsonState",
    "Progress",
    "Rollback",
    "nginx",
    "nginx_command",
    "owned_pid",
    "quiet",
    "sweep",
    "write_secret",
]


def quiet(_message: str) -> None:
    """The progress callback that says nothing."""


def write_secret(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by its owner only (mode 600 before any byte is written).

    A new file beside it, then an atomic rename: whatever ``path`` was (a file someone made
    world-readable, a planted symlink) is replaced, never followed, and the mode is 600 every time.
    """
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # mode 600, O_EXCL
    try:
        with os.fdopen(fd, "w") as out:
            out.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class JsonState:
    """Mixin for a ``@dataclass`` remembered between commands as a 0600 JSON file."""

    @classmethod
    def load(cls, path: Path) -> Self | None:
        try:
            raw = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(raw, dict):
            return None
        known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        return cls(**{k: v for k, v in raw.items() if k in known})

    def save(self, path: Path) -> None:
        write_secret(path, json.dumps(asdict(self), indent=2) + "\n")  # type: ignore[call-overload]


def owned_pid(pid_file: Path, root: Path) -> int | None:
    """The pid in ``pid_file`` while that process runs from ``root`` (its cwd or command line names it)."""
    pid = _proc.read_pid(pid_file)
    info = _proc.proc_info(pid) if pid else None
    return pid if info is not None and _proc.mentions(info, root) else None


class Rollback:
    """``with Rollback() as started: started.add(pid)``: on any exception, undo what was added.

    Undo runs newest first (a proxy before the server behind it): a pid is stopped and its pid
    file, when given, removed (so the next ``status`` does not trust it); ``callback`` registers
    any other stop (``pg_ctl stop``). On success nothing is undone.
    """

    def __init__(self) -> None:
        self._undo: list[Callable[[], object]] = []

    def add(self, pid: int, pid_file: Path | None = None) -> int:
        def stop() -> None:
            _proc.stop_pid(pid)
            if pid_file is not None:
                pid_file.unlink(missing_ok=True)

        self._undo.append(stop)
        return pid

    def callback(self, undo: Callable[[], object]) -> None:
        self._undo.append(undo)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if kind is None:
            return
        for undo in reversed(self._undo):
            undo()


def sweep(
    service: str,
    root: Path,
    leftovers: Callable[[], Iterable[_proc.ProcInfo]],
    keep: Callable[[_proc.ProcInfo], bool] = lambda _p: False,
) -> None:
    """After a stop: kill what ``leftovers()`` finds of the service at ``root`` (except ``keep``) and
    fail if any survived. Nothing to do when ``root`` does not exist (never started there)."""
    if not root.exists():
        return
    for proc in list(leftovers()):
        if not keep(proc):
            _proc.stop_pid(proc.pid, timeout=2, group=False, sig=signal.SIGKILL)
    still = [p for p in leftovers() if not keep(p)]
    if still:
        names = ", ".join(f"{p.pid} {p.name}" for p in still)
        raise ServiceUnavailableError(service, f"processes survived the stop: {names}", "Kill them by pid.")


def nginx() -> Path | None:
    """The nginx binary (PATH, else Debian's /usr/sbin/nginx, which a non-root PATH may lack)."""
    found = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if Path(p).exists()), None)
    return Path(found) if found else None


def nginx_command(binary: Path, prefix: Path, conf: Path, error_log: Path) -> list[str]:
    """nginx with everything under ``prefix`` (temp files, pid) and its own config and error log."""
    return [str(binary), "-p", str(prefix), "-e", str(error_log), "-c", str(conf)]
