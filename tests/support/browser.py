"""Debian's chromium, headless, as a test's browser: the DOM after load and a screenshot."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

__all__ = ["chromium", "dump_dom", "screenshot"]

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run"]


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def dump_dom(url: str, timeout: float = 90) -> str:
    exe = chromium()
    assert exe, "chromium is not installed (make setup installs Debian's chromium)"
    proc = subprocess.run(
        [exe, *FLAGS, "--dump-dom", url], capture_output=True, text=True, timeout=timeout, check=False
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def screenshot(url: str, out: Path, size: str = "1200,2400", timeout: float = 90) -> Path:
    exe = chromium()
    assert exe, "chromium is not installed (make setup installs Debian's chromium)"
    out.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [exe, *FLAGS, f"--screenshot={out}", f"--window-size={size}", url],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert proc.returncode == 0 and out.exists(), proc.stderr[-2000:]
    return out
