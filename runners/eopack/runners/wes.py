"""Run a package through a GA4GH WES 1.0 endpoint (our ``wes/`` stack or any Toil WES server).

``eopack run APP [JOB] --runner wes --wes-url URL [ENGINE OPTIONS]``. The run directory is prepared
exactly as for cwltool/Toil (same Dask lowering, same container decision, same run copy); then:

- the run copy ``<app>.cwl`` and ``job.yml`` are sent as ``workflow_attachment`` with
  ``workflow_url=<app>.cwl#<app>``, the job as ``workflow_params``;
- every other option (``--batchSystem=slurm``, ``--retryCount 2``, ``--logDebug``) becomes a
  ``workflow_engine_parameters`` entry for the server's ``toil-cwl-runner``;
- the client polls until a terminal state, keeps the run's log in ``.eopack/wes.log`` and its
  record in ``.eopack/wes-run.json``, and copies the output Directories into the run directory.
  Outputs are read from the paths the server reports: that works when client and server share a
  file system (one machine, or a cluster's shared storage); see wes/README.md for other setups.

Credentials: ``WES_USER``/``WES_PASSWORD`` (what ZOO-Project's WES runner reads), else ~/.netrc
for the endpoint's host, else the local stack's when the URL is its endpoint. They are sent as
HTTP basic auth only: never printed, logged or written to the run directory.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from .. import usage
from ..clients import wes as wes_client
from ..clients.wes import TERMINAL, WesClient
from ..console import notice
from ..errors import ServiceUnavailableError
from ..package import Package, as_list, load_yaml, service_state_dir, short_id
from .base import (
    FORWARDED_ENV,
    RunOptions,
    RunResult,
    RunStatus,
    collect_outputs,
    prepare,
    tool_commands,
    tool_errors,
)

__all__ = [
    "STATUS",
    "WesRunner",
    "client_for",
    "default_state_dir",
    "engine_parameters",
    "fetch_outputs",
    "resolve_url",
    "split_options",
    "with_basenames",
]

STATUS = {
    "COMPLETE": RunStatus.SUCCEEDED,
    "EXECUTOR_ERROR": RunStatus.FAILED,  # the workflow (a tool) failed
    "CANCELED": RunStatus.KILLED,
    "SYSTEM_ERROR": RunStatus.LOST,  # the service lost the run (restart, broker); resubmit it
}


def resolve_url(url: str | None, state_dir: Path | None = None) -> str:
    """The endpoint to use: ``url``, ``$WES_URL``, else the local stack's (default state dir)."""
    return wes_client.resolve_url(url, state_dir or default_state_dir())


def client_for(url: str, state_dir: Path | None = None) -> WesClient:
    """A client for ``url`` with credentials from the environment, ~/.netrc or the local stack."""
    return WesClient.from_environment(url, state_dir or default_state_dir())


def default_state_dir() -> Path:
    """Where the local stack keeps its state: ``$EOPACK_WES_STATE_DIR`` or ``<repo>/runs/services/wes``."""
    return service_state_dir("wes", wes_client.STATE_DIR_ENV)


# ------------------------------------------------------------------ the runner


def split_options(extra: Sequence[str]) -> tuple[dict[str, str], list[str]]:
    """(our options, the rest): ``--wes-url``/``--wes-timeout`` are ours, the rest goes to the engine."""
    ours: dict[str, str] = {}
    rest: list[str] = []
    items = list(extra)
    i = 0
    while i < len(items):
        arg = items[i]
        name, eq, value = arg.partition("=")
        if name in ("--wes-url", "--wes-timeout"):
            if not eq:
                if i + 1 >= len(items):
                    raise ServiceUnavailableError("WES runner", f"{name} needs a value", f"Use {name} VALUE.")
                value = items[i + 1]
                i += 1
            ours[name[2:]] = value
        elif arg != "--":
            rest.append(arg)
        i += 1
    return ours, rest


def engine_parameters(args: Sequence[str]) -> dict[str, str | None]:
    """``toil-cwl-runner`` options as a WES ``workflow_engine_parameters`` mapping.

    ``--batchSystem=slurm`` and ``--batchSystem slurm`` both give ``{"--batchSystem": "slurm"}``;
    a lone ``--logDebug`` gives ``{"--logDebug": None}`` (Toil's server passes None as a flag).
    """
    params: dict[str, str | None] = {}
    items = list(args)
    i = 0
    while i < len(items):
        arg = items[i]
        if not arg.startswith("-"):
            raise ServiceUnavailableError(
                "WES runner",
                f"engine argument {arg!r} is not an option",
                "Give Toil options as --name=value.",
            )
        name, eq, value = arg.partition("=")
        if eq:
            params[name] = value
        elif i + 1 < len(items) and not items[i + 1].startswith("-"):
            params[name] = items[i + 1]
            i += 1
        else:
            params[name] = None
        i += 1
    return params


class WesRunner:
    """Submit the run copy to a WES endpoint, wait, and bring the outputs into the run directory."""

    name = "wes"

    def available(self) -> tuple[bool, str]:
        return True, ""

    def run(self, package: Package, job: Path, options: RunOptions) -> RunResult:
        ours, rest = split_options(options.extra_args)
        url = resolve_url(ours.get("wes-url"))
        timeout = float(ours["wes-timeout"]) if "wes-timeout" in ours else None
        prepared = prepare(package, job, replace(options, extra_args=rest))
        params = engine_parameters(rest)
        if not prepared.use_containers:
            params.setdefault("--no-container", None)
        else:
            params.setdefault("--no-prepull", None)
            if prepared.host_network:
                params.setdefault("--custom-net", "host")
        secrets_needed = [n for n in FORWARDED_ENV if n in prepared.options.env and n.endswith("PASSWORD")]
        if secrets_needed:
            notice(
                f"{', '.join(secrets_needed)} cannot travel through WES: its workers give tools the site's "
                "variables but never a secret (docs/security.md); use a gateway that needs no password"
            )
        workflow_url = f"{prepared.cwl.name}#{package.name}"
        attachments = [
            (prepared.cwl.name, prepared.cwl.read_bytes()),
            ("job.yml", prepared.job_file.read_bytes()),
        ]
        line = _curl_line(url, workflow_url, prepared.cwl, prepared.job_file, params)
        (prepared.meta / "command.txt").write_text(line + "\n")
        if options.print_command:
            return RunResult(RunStatus.NOT_RUN, 0, prepared.run_dir, command=line)
        client = client_for(url)
        run_id = client.submit(
            attachments,
            workflow_url,
            with_basenames(prepared.job),
            params,
            tags={
                "eopack_app": package.name,
                "eopack_version": package.version,
                "run_dir": str(prepared.run_dir),
            },
        )
        record = prepared.meta / "wes-run.json"
        record.write_text(json.dumps({"url": url, "run_id": run_id, "engine_parameters": params}, indent=2))
        notice(f"submitted {package.name} to {url} as {run_id}")

        def show(state: str) -> None:
            if not options.quiet:
                notice(f"{run_id}: {state}")

        with usage.Meter() as meter:
            try:
                state = client.wait(run_id, timeout=timeout, on_change=show)
            except KeyboardInterrupt:
                notice(f"interrupted: canceling {run_id}")
                client.cancel(run_id)
                state = client.wait(run_id, timeout=60)
        result = self._finish(client, package, prepared.run_dir, run_id, state, line)
        # The engine ran on the WES server: its CPU is not this process's; times and memory are read
        # from the run's log, which holds the engine's step lines.
        usage.record(
            prepared.meta, "wes", meter, result.log, load_yaml(prepared.cwl), measured_here=False,
            note="CPU seconds are not measured: the engine ran on the WES server",
        )  # fmt: skip
        return result

    def _finish(
        self, client: WesClient, package: Package, run_dir: Path, run_id: str, state: str, line: str
    ) -> RunResult:
        meta = run_dir / ".eopack"
        log = meta / "wes.log"
        log.write_text(client.log_text(run_id, "stderr"))
        run_log = client.run_log(run_id)
        (meta / "wes-run-log.json").write_text(json.dumps(run_log, indent=2))
        if state not in TERMINAL:
            return RunResult(
                RunStatus.ERROR,
                1,
                run_dir,
                errors=(
                    f"run {run_id} is still {state} after --wes-timeout; follow it with `eopack wes status {run_id}`",
                ),
                log=log,
                command=line,
            )
        status = STATUS[state]
        if status is not RunStatus.SUCCEEDED:
            exit_code = (run_log.get("run_log") or {}).get("exit_code") or 1
            errors = tool_errors(log, [*tool_commands(package), "eopack-wes"])
            errors = errors or (f"run {run_id} ended {state}; see `eopack wes logs {run_id}`",)
            return RunResult(
                status,
                int(exit_code) if int(exit_code) > 0 else 1,
                run_dir,
                errors=errors,
                log=log,
                command=line,
            )
        known = [short_id(str(o["id"])) for o in as_list(package.workflow.get("outputs"), "id")]
        copied = fetch_outputs(run_log.get("outputs") or {}, run_dir, run_id, known)
        outputs, catalog = collect_outputs(package, copied, run_dir)
        return RunResult(RunStatus.SUCCEEDED, 0, run_dir, outputs, catalog, log=log, command=line)


def with_basenames(job: Mapping[str, Any]) -> dict[str, Any]:
    """The job with an explicit ``basename`` on every File/Directory that has none.

    Toil stages a Directory input under a generated name (``tmpXXXX``) unless the job names it;
    tools that name their outputs after an input (geozarr) would then differ from cwltool's run.
    """

    def fix(value: Any) -> Any:
        if isinstance(value, dict) and value.get("class") in ("File", "Directory"):
            where = str(value.get("path") or value.get("location") or "")
            if where and "basename" not in value:
                return {**value, "basename": Path(where.rstrip("/")).name}
            return value
        if isinstance(value, list):
            return [fix(v) for v in value]
        return value

    return {key: fix(value) for key, value in job.items()}


_OUTPUT_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")


def _in_run_outputs(src: Path, run_id: str) -> bool:
    """True when ``src`` (symlinks resolved) lies in the run's ``<run_id>/outputs/`` (Toil WES's layout)."""
    parts = src.resolve().parts
    return any(parts[i] == run_id and parts[i + 1] == "outputs" for i in range(len(parts) - 2))


def fetch_outputs(
    outputs: Mapping[str, Any], run_dir: Path, run_id: str, known: Sequence[str] | None = None
) -> dict[str, Any]:
    """Copy each File/Directory output the server reports into ``run_dir`` (shared file system).

    Copies, never moves: the server keeps its copy for other readers (``GET /runs/{id}``).
    The server is not trusted with paths (issue 21 #8): an output key must be one of the package's
    outputs (``known``) and a plain name, the destination must stay in ``run_dir``, the source must
    be in this run's ``<run_id>/outputs/`` folder, and symlinks are copied as links, never followed.
    Every output is checked before anything is deleted or copied.
    """
    plan: list[tuple[str, dict[str, Any], Path, Path]] = []
    copied: dict[str, Any] = {}
    root = run_dir.resolve()
    for key, value in outputs.items():
        if known is not None and key not in known:
            raise ServiceUnavailableError(
                "WES outputs", f"the server reports an output {key!r} the package does not have",
                "Check the server; nothing was copied.",
            )  # fmt: skip
        if not (isinstance(value, dict) and value.get("class") in ("File", "Directory")):
            copied[key] = value
            continue
        location = str(value.get("path") or value.get("location", ""))
        src = Path(location.removeprefix("file://"))
        if "://" in location.removeprefix("file://") or not src.exists():
            raise ServiceUnavailableError(
                "WES outputs",
                f"output {key!r} is at {location}, which this machine cannot read",
                "Run the client where the server's work dir is mounted (see wes/README.md).",
            )
        name = key if value["class"] == "Directory" else src.name
        dst = run_dir / name
        if not _OUTPUT_KEY.match(key) or not _OUTPUT_KEY.match(name) or dst.resolve().parent != root:
            raise ServiceUnavailableError(
                "WES outputs", f"output {key!r} would be written outside {run_dir}",
                "Check the server; nothing was copied.",
            )  # fmt: skip
        if not _in_run_outputs(src, run_id):
            raise ServiceUnavailableError(
                "WES outputs", f"output {key!r} is at {src}, outside run {run_id}'s outputs folder",
                "Check the server; nothing was copied.",
            )  # fmt: skip
        plan.append((key, value, src, dst))
    for key, value, src, dst in plan:
        if dst.is_symlink() or dst.is_file():
            dst.unlink()
        elif dst.exists():
            shutil.rmtree(dst)
        if value["class"] == "Directory":
            shutil.copytree(src, dst, symlinks=True)
        else:
            shutil.copy2(src, dst, follow_symlinks=False)
        entry = {**value, "location": dst.as_uri(), "path": str(dst)}
        entry.pop("listing", None)
        copied[key] = entry
    return copied


def _curl_line(url: str, workflow_url: str, cwl: Path, job: Path, params: Mapping[str, str | None]) -> str:
    """The equivalent submission with curl (credentials by variable name, never by value)."""
    parts = [
        "curl",
        "-u",
        "$WES_USER:$WES_PASSWORD",
        "-F",
        f"workflow_attachment=@{cwl}",
        "-F",
        f"workflow_attachment=@{job}",
        "-F",
        f"workflow_url={workflow_url}",
        "-F",
        "workflow_type=CWL",
        "-F",
        "workflow_type_version=v1.2",
        "-F",
        "workflow_params=<" + str(job.with_suffix(".json")),
        "-F",
        f"workflow_engine_parameters={json.dumps(dict(params))}",
        f"{url}/runs",
    ]
    job.with_suffix(".json").write_text(json.dumps(load_yaml(job)))
    quoted = [p if p == "$WES_USER:$WES_PASSWORD" else shlex.quote(p) for p in parts]
    quoted[2] = '"$WES_USER:$WES_PASSWORD"'
    return " ".join(quoted)
