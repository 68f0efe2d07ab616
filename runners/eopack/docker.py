"""Is there a Docker daemon we can use, and does it hold a package's image?"""

from __future__ import annotations

import shutil
import subprocess

__all__ = ["daemon_answers", "image_exists"]


def daemon_answers(timeout: float = 5.0) -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        proc = subprocess.run(
            ["docker", "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return False
    return proc.returncode == 0


def image_exists(ref: str, timeout: float = 10.0) -> bool:
    try:
        proc = subprocess.run(
            ["docker", "image", "inspect", ref], capture_output=True, timeout=timeout, check=False
        )
    except (subprocess.TimeoutExpired, FileNotFoundError):
        return False
    return proc.returncode == 0
