"""The real ``eopack`` CLI as the tests run it (the ``eopack`` fixture of tests/conftest.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

__all__ = ["VENV_BIN", "Eopack"]

VENV_BIN = Path(sys.executable).parent


class Eopack:
    """The real ``eopack`` CLI as a user runs it: the venv first on PATH, from the repository root.

    Loopback URLs are allowed (the tests' image server) unless ``allow_private=False``; ``env``
    adds or overrides variables.
    """

    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd

    def env(self, extra: Mapping[str, str] | None = None, allow_private: bool = True) -> dict[str, str]:
        env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}"}
        if allow_private:
            env["EOPACK_ALLOW_PRIVATE_URLS"] = "1"
        return {**env, **(extra or {})}

    def __call__(
        self,
        *args: str | Path,
        env: Mapping[str, str] | None = None,
        timeout: float = 900,
        cwd: Path | None = None,
        allow_private: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "eopack", *map(str, args)],
            capture_output=True,
            text=True,
            env=self.env(env, allow_private),
            cwd=cwd or self.cwd,
            timeout=timeout,
            check=False,
        )

    def popen(
        self, *args: str, env: Mapping[str, str] | None = None, allow_private: bool = True
    ) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "eopack", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.env(env, allow_private),
            cwd=self.cwd,
            # A user's Ctrl-C must reach it even when the suite itself runs in the background of a
            # non-interactive shell, which starts its children with SIGINT ignored (inherited).
            preexec_fn=_default_sigint,
        )


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
