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
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any, Protocol

from .. import usage
from ..clients import docker
from ..console import notice
from ..dask import lower
from ..errors import UnknownRunnerError
from ..job import check_inputs, load_job, loopback_urls
from ..locality import check_gateway_inputs, shared_filesystem
from ..package import (
    Package,
    as_list,
    class_name,
    dump_yaml,
    load_yaml,
    offline_schemas,
    repo_root,
    service_state_dir,
    short_id,
)
from ..tool_env import ASSET_ENV, DASK_SECRET_ENV, SECRET_ENV, SETTINGS_ENV
from . import secret_files
from .engine import check_engine, engine_env, use_archives

__all__ = [
    "FORWARDED_ENV",
    "REGISTRY",
    "Prepared",
    "RunOptions",
    "RunResult",
    "RunStatus",
    "Runner",
    "collect_outputs",
    "container_decision",
    "default_run_dir",
    "docker_to_hint",
    "execute",
    "finish",
    "get_runner",
    "load_job",
    "loopback_urls",
    "prepare",
    "shell_command",
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
    NOT_RUN = "not run"  # --print-command / --dry-run: prepared and written, nothing executed


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
    command: str | None = None  # the equivalent plain command line, for ``--print-command``

    @property
    def ok(self) -> bool:
        """No failure: the run succeeded, or it was only prepared (``NOT_RUN``)."""
        return self.status in (RunStatus.SUCCEEDED, RunStatus.NOT_RUN)


@dataclass
class RunOptions:
    """Options every runner understands; runner-specific ones go in ``extra_args``."""

    outdir: Path | None = None
    no_container: bool = False
    dask_gateway_url: str | None = None
    extra_args: Sequence[str] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    quiet: bool = False
    print_command: bool = False  # prepare the run directory and return the command without running it
    engine: str = "docker"  # the container engine: docker, podman or singularity (runners/engine.py)


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
    "calrissian": _factory("calrissian", "CalrissianRunner"),
    "toil": _factory("toil", "ToilRunner"),
    "toil-slurm": _factory("toil", "ToilSlurmRunner"),
    "toil-htcondor": _factory("toil", "ToilHTCondorRunner"),
    "wes": _factory("wes", "WesRunner"),
}


def get_runner(name: str) -> Runner:
    if name not in REGISTRY:
        raise UnknownRunnerError(name, sorted(REGISTRY))
    return REGISTRY[name]()


def default_run_dir(root: Path, app: str) -> Path:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    return root / "runs" / app / stamp


def write_run_copy(
    run_dir: Path, package: Package, doc: dict[str, Any], job: Mapping[str, Any]
) -> tuple[Path, Path]:
    """Write the transformed package and the job next to the results, so the run can be repeated."""
    meta = run_dir / ".eopack"
    meta.mkdir(parents=True, exist_ok=True)
    cwl, job_file = meta / f"{package.name}.cwl", meta / "job.yml"
    dump_yaml(without_schema_org(offline_schemas(doc)), cwl)
    dump_yaml(dict(job), job_file)
    return cwl, job_file


def without_schema_org(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` without the schema.org RDF in ``$schemas``: the engines fetch it only to check ``s:`` terms.

    Offline, cwltool warns twice per run that it could not load it, and Toil the same; the package
    keeps the entry (platforms and ``eopack validate`` read it), the copy that runs does not need it.
    """
    schemas = doc.get("$schemas") or []
    kept = [s for s in (schemas if isinstance(schemas, list) else [schemas]) if "schema.org/" not in str(s)]
    out = {k: v for k, v in doc.items() if k != "$schemas"}
    if kept:
        out["$schemas"] = kept
    return out


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
    on_line: Callable[[str], None] | None = None,
) -> int:
    """Run ``cmd``; stderr goes to the terminal and ``log_path``, stdout to ``stdout_path``.

    ``on_line`` sees every stderr line as it arrives (the usage meter times the steps with it).
    """
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
                if on_line is not None:
                    on_line(line)
                if not quiet:
                    sys.stderr.write(line)

        thread = threading.Thread(target=pump, args=(proc.stderr,), daemon=True)
        thread.start()
        interrupted = False
        try:
            code = proc.wait()
        except KeyboardInterrupt:
            interrupted = True
            proc.terminate()
            code = proc.wait()
        thread.join()
    # Ctrl-C: the engine's own exit code says how it stopped, not why; the run was killed (130).
    return 128 + signal.SIGINT if interrupted else code


_LOCATION = re.compile(r"^\S+:\d+:\d+:\s*")
_LOG_LEVEL = ("INFO ", "WARNING ", "ERROR ", "DEBUG ", "[")
INVALID_JOB = "Invalid job input record"


def tool_errors(log_path: Path, tools: Sequence[str]) -> tuple[str, ...]:
    """The one-line errors the tools printed (``<tool>: error: ...``), for the user's summary.

    Failing that, the engine's first error; when it ends in ``:`` ("Workflow error, try again with
    --debug for more information:") the lines after it say what is wrong (a missing or mistyped
    input), so they are joined into it, without their ``file:line:col:`` prefixes.
    """
    if not log_path.exists():
        return ()
    marks = tuple(f"{t}: error:" for t in tools)
    found, engine = [], []
    lines = log_path.read_text(errors="replace").splitlines()
    for i, line in enumerate(lines):
        text = line.strip()
        for mark in marks:
            if mark in text:
                found.append(text[text.index(mark) :])
        if text.startswith("ERROR ") and "Output is missing expected field" not in text:
            if text.endswith(":"):
                detail = []
                for nxt in lines[i + 1 : i + 6]:
                    if not nxt.strip() or nxt.startswith(_LOG_LEVEL):
                        break
                    detail.append(_LOCATION.sub("", nxt.strip()))
                if detail:
                    text = " ".join(detail)
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


# ------------------------------------------------------------------ the preparation every CWL engine shares

# Variables a user sets for the tools, forwarded through the engine's clean environment (tool_env.py);
# the secrets among them never go into the run copy or a log (by name, or by file).
FORWARDED_ENV = (*SETTINGS_ENV, *ASSET_ENV, *SECRET_ENV)


def container_decision(
    package: Package, no_container: bool, engine: str = "docker", print_only: bool = False
) -> tuple[bool, str]:
    """(use containers, why): containers when a daemon answers and every image exists locally.

    Another engine than Docker is the user's explicit choice: when it cannot run the package here
    (engine or image archive missing) that is one clear error, not a silent run without containers.
    """
    if no_container:
        return False, "--no-container given"
    if engine != "docker":
        check_engine(engine, package, binary_needed=not print_only)
        return True, f"{engine} and the package's image archives available"
    if not docker.daemon_answers():
        return False, "no Docker daemon answers"
    missing = [img for img in package.images() if not docker.image_exists(img)]
    if missing:
        return False, f"image {', '.join(missing)} is not built (make images)"
    return True, "Docker daemon and images available"


@dataclass(frozen=True)
class Prepared:
    """A run directory made ready for an engine: the transformed copy, the job, and how to run it.

    ``options.env`` carries secrets for the process only; ``env_additions`` are the non-secret
    variables the runner adds, shown in ``--print-command`` so the printed line is really equivalent.
    """

    package: Package
    job: dict[str, Any]
    run_dir: Path
    cwl: Path
    job_file: Path
    use_containers: bool
    host_network: bool
    options: RunOptions
    env_additions: Mapping[str, str] = field(default_factory=dict)
    # Secrets handed to containerised tools by file (secret_files); removed when the run ends.
    secrets_dir: Path | None = None

    @property
    def meta(self) -> Path:
        return self.run_dir / ".eopack"

    @property
    def entry(self) -> str:
        """The workflow to run inside the packed copy: ``<copy>.cwl#<app>``."""
        return f"{self.cwl}#{self.cwl.stem}"

    def forwarded(self) -> list[str]:
        """The names in FORWARDED_ENV that are set, for the engine's ``--preserve-environment``.

        In container mode the engine puts each on the ``docker run`` line (``--env=NAME=value``),
        which is logged and visible in ``ps``: secrets then travel by file instead (secret_files).
        """
        names = [n for n in FORWARDED_ENV if n in os.environ or n in self.options.env]
        if self.use_containers or self.secrets_dir is not None:
            names = [n for n in names if n not in SECRET_ENV]
        return names

    def process_env(self) -> dict[str, str]:
        env = {**os.environ, **self.options.env, **self.env_additions}
        if "PATH" in self.env_additions:
            env["PATH"] = os.pathsep.join([self.env_additions["PATH"], os.environ.get("PATH", "")])
        return env


def _shared_filesystem(options: RunOptions) -> bool:
    """Whether the run's gateway workers open this machine's paths (``locality.shared_filesystem``):
    eopack's own gateway does, a site's gateway when ``EOPACK_SHARED_FS=1`` says so."""
    if not options.dask_gateway_url:
        return False
    from ..clients import gateway  # lazy, as below

    own = bool(
        gateway.client_settings(options.dask_gateway_url, service_state_dir("gateway", gateway.STATE_DIR_ENV))
    )
    return shared_filesystem({**os.environ, **options.env}, own)


def prepare(
    package: Package,
    job_path: Path,
    options: RunOptions,
    transform: Callable[[dict[str, Any], RunOptions], None] | None = None,
    secrets_by_file: bool = False,
    files_without_containers: bool = False,
) -> Prepared:
    """Make the run directory: decide on containers, lower Dask, write the copy and the job.

    The same steps for every engine that runs the CWL file locally (cwltool, Toil), so a package
    behaves the same whichever of them runs it. ``transform`` lets an engine adjust the copy
    (with the final options, secrets included) before it is written. ``secrets_by_file``: the
    engine runs the copy here and may hand secrets to containers as files (secret_files); engines
    that would copy such a file elsewhere (a WES server) leave it False. ``files_without_containers``:
    by file without containers too (Toil forwards no variable by name; its job store links the file).
    """
    job = load_job(job_path)
    check_inputs(package, job, job_path)
    run_dir = (options.outdir or default_run_dir(repo_root(), package.name)).resolve()
    use_containers, why = container_decision(
        package, options.no_container, options.engine, options.print_command
    )
    worker_paths = check_gateway_inputs(
        package,
        job,
        use_containers,
        options.dask_gateway_url,
        shared=_shared_filesystem(options),
    )
    if not use_containers:
        notice(f"running without containers ({why}); the tools installed in this environment are used")
    doc = package.copy_doc()
    gateway_env: dict[str, str] = {}
    if options.dask_gateway_url:
        # lazy: the gateway client's HTTP stack (urllib.request, ssl) only when a gateway is used
        from ..clients import gateway

        if not gateway.answers(options.dask_gateway_url):
            notice(
                f"the Dask gateway {options.dask_gateway_url} does not answer from here; the tool "
                "fails if it cannot reach it either (start one with `eopack gateway up`)"
            )
        settings = gateway.tool_settings(
            options.dask_gateway_url,
            {**os.environ, **options.env},
            service_state_dir("gateway", gateway.STATE_DIR_ENV),
        )
        secret = {k: v for k, v in settings.items() if k in FORWARDED_ENV}
        gateway_env = {k: v for k, v in settings.items() if k not in secret} | worker_paths
        options = replace(options, env={**options.env, **secret})
    lowered = lower(
        package, doc, job, options.dask_gateway_url, use_image=use_containers, gateway_env=gateway_env
    )
    for tool, req in lowered.items():
        notice(
            f"Dask for {tool}: {req.describe()}"
            + (f" on gateway {options.dask_gateway_url}" if options.dask_gateway_url else " (local)")
        )
    if not use_containers:
        docker_to_hint(doc)
    elif options.engine == "podman":
        use_archives(doc)
    secrets_dir = None
    values = {**os.environ, **options.env}
    secret_names = [n for n in SECRET_ENV if values.get(n)]
    dask_names = [n for n in secret_names if n in DASK_SECRET_ENV] if lowered else []
    other_names = [n for n in secret_names if n not in DASK_SECRET_ENV]
    if secrets_by_file and (use_containers or files_without_containers) and (dask_names or other_names):
        secrets_dir = run_dir / ".eopack" / "secrets"
        files = {n: secret_files.write(secrets_dir, n, values[n]) for n in [*dask_names, *other_names]}
        job = dict(job)
        if dask_names:
            secret_files.wire(doc, lowered, dask_names, job, files)
        if other_names:
            tools = [
                short_id(str(p.get("id", "")))
                for p in doc.get("$graph", [])
                if p.get("class") == "CommandLineTool"
            ]
            secret_files.wire(doc, tools, other_names, job, files)
    if transform is not None:
        transform(doc, options)
    cwl, job_file = write_run_copy(run_dir, package, doc, job)
    loopback = loopback_urls(job) if use_containers else []
    if use_containers and options.dask_gateway_url:
        loopback += loopback_urls({"dask_gateway_url": options.dask_gateway_url})
    if loopback:
        notice(f"the job uses loopback URL(s) ({loopback[0]}): the container shares the host's network")
    additions: dict[str, str] = {}
    if not use_containers:
        # The tools' console scripts live next to this interpreter (the workspace venv).
        additions["PATH"] = str(Path(sys.executable).parent)
    else:
        additions.update(engine_env(options.engine))
    return Prepared(
        package, job, run_dir, cwl, job_file, use_containers, bool(loopback), options, additions, secrets_dir
    )


def shell_command(cmd: Sequence[str], env_additions: Mapping[str, str] | None = None) -> str:
    """``cmd`` as one pasteable shell line, prefixed by the variables the runner sets for it."""
    prefix = []
    for name, value in (env_additions or {}).items():
        prefix.append(
            f"{name}={shlex.quote(value)}:$PATH" if name == "PATH" else f"{name}={shlex.quote(value)}"
        )
    return " ".join([*prefix, shlex.join(cmd)])


def execute(prepared: Prepared, cmd: Sequence[str], engine: str) -> RunResult:
    """Run ``cmd`` for ``prepared`` (or only record it, for ``--print-command``) and read the result.

    Logs stay in ``.eopack/<engine>.log``, the engine's output JSON in ``.eopack/<engine>-output.json``.
    """
    line = shell_command(cmd, prepared.env_additions)
    (prepared.meta / "command.txt").write_text(line + "\n")
    log = prepared.meta / f"{engine}.log"
    stdout = prepared.meta / f"{engine}-output.json"
    try:
        if prepared.options.print_command:
            return RunResult(RunStatus.NOT_RUN, 0, prepared.run_dir, command=line)
        with usage.Meter() as meter:
            code = tee_process(
                cmd, log, prepared.process_env(), prepared.options.quiet, stdout, on_line=meter.line
            )
        usage.record(prepared.meta, engine, meter, log, load_yaml(prepared.cwl))
        return finish(prepared.package, prepared.run_dir, code, log, stdout, line)
    finally:
        # Whatever the engine staged and we did not move is not a result.
        shutil.rmtree(prepared.meta / "out", ignore_errors=True)
        if prepared.secrets_dir is not None:
            secret_files.remove(prepared.secrets_dir)


def finish(
    package: Package, run_dir: Path, code: int, log: Path, stdout: Path, line: str | None = None
) -> RunResult:
    """The RunResult of a finished engine process: outputs moved into place, or the tool's error lines."""
    if code != 0:
        status = (
            RunStatus.KILLED
            if code < 0 or code - 128 in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL)
            else RunStatus.FAILED
        )
        errors = tool_errors(log, tool_commands(package))
        if errors and errors[0].startswith(INVALID_JOB):
            code = 2  # the job file is wrong: bad input
        return RunResult(
            status,
            code if code > 0 else 1,
            run_dir,
            errors=errors,
            log=log,
            command=line,
        )
    raw = json.loads(stdout.read_text() or "{}")
    outputs, catalog = collect_outputs(package, raw, run_dir)
    return RunResult(RunStatus.SUCCEEDED, 0, run_dir, outputs, catalog, log=log, command=line)
