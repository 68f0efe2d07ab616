"""What every runner shares: options in, one ``RunResult`` out, and the run-directory layout.

A run directory (default ``runs/<app>/<UTC timestamp>/``) holds the results under the output id
(``converted_image/catalog.json``) and, under ``.eopack/``, what was run: the transformed package,
the job order, the exact command, the engine's log and its output JSON.
"""

from __future__ import annotations

import datetime as dt
import enum
import importlib
import json
import shlex
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol

from ..errors import UnknownRunnerError
from ..package import Package, as_list, class_name, dump_yaml, load_yaml, short_id

__all__ = [
    "REGISTRY",
    "RunOptions",
    "RunResult",
    "RunStatus",
    "Runner",
    "collect_outputs",
    "default_run_dir",
    "docker_to_hint",
    "get_runner",
    "load_job",
    "tee_process",
    "tool_commands",
    "tool_errors",
    "write_run_copy",
]


class RunStatus(enum.Enum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    KILLED = "killed"
    LOST = "lost"
    ERROR = "error"


@dataclass(frozen=True)
class RunResult:
    """The outcome of one run, the same shape for every runner."""

    status: RunStatus
    exit_code: int
    run_dir: Path
    outputs: Mapping[str, Any] = field(default_factory=dict)
    catalog: Path | None = None
    errors: tuple[str, ...] = ()
    log: Path | None = None

    @property
    def ok(self) -> bool:
        return self.status is RunStatus.SUCCEEDED


@dataclass
class RunOptions:
    """Options every runner understands; runner-specific ones go in ``extra_args``."""

    outdir: Path | None = None
    no_container: bool = False
    dask_gateway_url: str | None = None
    extra_args: Sequence[str] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    quiet: bool = False


class Runner(Protocol):
    name: str

    def available(self) -> tuple[bool, str]:
        """(usable here, reason when not)."""

    def run(self, package: Package, job: Path, options: RunOptions) -> RunResult: ...


def _factory(module: str, cls: str) -> Callable[[], Runner]:
    def make() -> Runner:
        return getattr(importlib.import_module(f"eopack.runners.{module}"), cls)()

    return make


REGISTRY: dict[str, Callable[[], Runner]] = {
    "cwltool": _factory("cwltool", "CwltoolRunner"),
}


def get_runner(name: str) -> Runner:
    if name not in REGISTRY:
        raise UnknownRunnerError(name, sorted(REGISTRY))
    return REGISTRY[name]()


def default_run_dir(root: Path, app: str) -> Path:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    return root / "runs" / app / stamp


def load_job(path: Path) -> dict[str, Any]:
    """Read a job order; relative File/Directory locations are made absolute (we run from a copy)."""
    job = load_yaml(path) or {}
    if not isinstance(job, dict):
        raise ValueError(f"job file {path} must be a mapping of input ids to values")

    def fix(value: Any) -> Any:
        if isinstance(value, dict) and value.get("class") in {"File", "Directory"}:
            for key in ("location", "path"):
                if key in value and "://" not in str(value[key]) and not str(value[key]).startswith("/"):
                    value[key] = str((path.parent / value[key]).resolve())
            return value
        if isinstance(value, list):
            return [fix(v) for v in value]
        return value

    return {k: fix(v) for k, v in job.items()}


def write_run_copy(
    run_dir: Path, package: Package, doc: dict[str, Any], job: Mapping[str, Any]
) -> tuple[Path, Path]:
    """Write the transformed package and the job next to the results, so the run can be repeated."""
    meta = run_dir / ".eopack"
    meta.mkdir(parents=True, exist_ok=True)
    cwl, job_file = meta / f"{package.name}.cwl", meta / "job.yml"
    dump_yaml(doc, cwl)
    dump_yaml(dict(job), job_file)
    return cwl, job_file


def docker_to_hint(doc: dict[str, Any]) -> None:
    """cwltool refuses ``--no-container`` while DockerRequirement is a requirement (exit 33)."""
    for tool in doc.get("$graph", []):
        reqs = as_list(tool.get("requirements"))
        docker = [r for r in reqs if class_name(r) == "DockerRequirement"]
        if docker:
            tool["requirements"] = [r for r in reqs if class_name(r) != "DockerRequirement"]
            tool["hints"] = as_list(tool.get("hints")) + docker


def tee_process(
    cmd: Sequence[str],
    log_path: Path,
    env: Mapping[str, str] | None,
    quiet: bool,
    stdout_path: Path | None = None,
) -> int:
    """Run ``cmd``; stderr goes to the terminal and ``log_path``, stdout to ``stdout_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_path.write_text("$ " + shlex.join(cmd) + "\n")
    with log_path.open("a") as log, stdout_path.open("w") if stdout_path else open("/dev/null", "w") as out:
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.PIPE, text=True, env=dict(env) if env else None
        )
        assert proc.stderr is not None

        def pump(stream: IO[str]) -> None:
            for line in stream:
                log.write(line)
                if not quiet:
                    sys.stderr.write(line)

        thread = threading.Thread(target=pump, args=(proc.stderr,), daemon=True)
        thread.start()
        try:
            code = proc.wait()
        except KeyboardInterrupt:
            proc.terminate()
            code = proc.wait()
        thread.join()
    return code


def tool_errors(log_path: Path, tools: Sequence[str]) -> tuple[str, ...]:
    """The one-line errors the tools printed (``<tool>: error: ...``), for the user's summary."""
    if not log_path.exists():
        return ()
    marks = tuple(f"{t}: error:" for t in tools)
    found, engine = [], []
    for line in log_path.read_text(errors="replace").splitlines():
        text = line.strip()
        for mark in marks:
            if mark in text:
                found.append(text[text.index(mark) :])
        if text.startswith("ERROR ") and "Output is missing expected field" not in text:
            engine.append(text)
    # The tool's own line says what to fix; the engine's first error is the fallback.
    return tuple(dict.fromkeys(found)) or tuple(engine[:1])


def collect_outputs(
    package: Package, outputs: Mapping[str, Any], run_dir: Path
) -> tuple[dict[str, Any], Path | None]:
    """Move each Directory output to ``run_dir/<output id>`` and find the STAC catalog."""
    moved: dict[str, Any] = {}
    catalog = None
    for key, value in outputs.items():
        if isinstance(value, dict) and value.get("class") == "Directory":
            src = Path(value.get("path") or value["location"].removeprefix("file://"))
            dst = run_dir / key
            if src.resolve() != dst.resolve():
                if dst.exists():
                    shutil.rmtree(dst)
                src.rename(dst)
            value = {**value, "location": dst.as_uri(), "path": str(dst), "basename": key}
            value.pop("listing", None)
            if catalog is None and (dst / "catalog.json").exists():
                catalog = dst / "catalog.json"
        moved[key] = value
    (run_dir / ".eopack" / "outputs.json").write_text(json.dumps(moved, indent=2))
    return moved, catalog


def tool_commands(package: Package) -> list[str]:
    out = []
    for tool in package.tools:
        base = tool.get("baseCommand")
        first = base[0] if isinstance(base, list) and base else base
        out.append(str(first or short_id(tool.get("id", ""))))
    return out
