"""Run a package with cwltool, the CWL reference runner (the default runner)."""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import signal
import sys
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..console import notice
from ..dask import lower
from ..package import Package, cwltool_command, repo_root
from ..services import docker, gateway
from .base import (
    RunOptions,
    RunResult,
    RunStatus,
    collect_outputs,
    default_run_dir,
    docker_to_hint,
    load_job,
    tee_process,
    tool_commands,
    tool_errors,
    write_run_copy,
)

__all__ = ["CwltoolRunner", "container_decision", "loopback_urls"]

# Variables a user sets for the tools, forwarded through cwltool's clean environment. The gateway's
# credentials go this way (by name on the command line) and never into the run copy or a log.
FORWARDED_ENV = ("EOPACK_ALLOW_PRIVATE_URLS", "DASK_CLUSTER", "DASK_GATEWAY_USER", "DASK_GATEWAY_PASSWORD")


def container_decision(package: Package, no_container: bool) -> tuple[bool, str]:
    """(use containers, why): containers when a daemon answers and every image exists locally."""
    if no_container:
        return False, "--no-container given"
    if not docker.daemon_answers():
        return False, "no Docker daemon answers"
    missing = [img for img in package.images() if not docker.image_exists(img)]
    if missing:
        return False, f"image {', '.join(missing)} is not built (make images)"
    return True, "Docker daemon and images available"


def loopback_urls(job: Mapping[str, Any]) -> list[str]:
    """http(s) URLs in the job whose host is this machine's loopback (127.0.0.0/8, ::1, localhost).

    A container on Docker's bridge network cannot reach them, so such a run needs the host's network.
    """
    found = []
    for value in job.values():
        if not isinstance(value, str) or not value.startswith(("http://", "https://")):
            continue
        host = urlsplit(value).hostname or ""
        try:
            loop = host == "localhost" or ipaddress.ip_address(host).is_loopback
        except ValueError:
            loop = False
        if loop:
            found.append(value)
    return found


class CwltoolRunner:
    name = "cwltool"

    def available(self) -> tuple[bool, str]:
        return True, ""

    def command(
        self,
        cwl: Path,
        job_file: Path,
        run_dir: Path,
        use_containers: bool,
        options: RunOptions,
        host_network: bool = False,
    ) -> list[str]:
        cmd = [*cwltool_command(), "--disable-color", "--outdir", str(run_dir / ".eopack" / "out")]
        if not use_containers:
            cmd.append("--no-container")
        elif host_network:
            # cwltool gives a tool with NetworkAccess Docker's bridge network, from which the host's
            # 127.0.0.1 is unreachable; `--custom-net host` shares the host's network instead.
            cmd += ["--custom-net", "host"]
        for name in FORWARDED_ENV:
            if name in os.environ or name in options.env:
                cmd += ["--preserve-environment", name]
        cmd += [*options.extra_args, f"{cwl}#{cwl.stem}", str(job_file)]
        return cmd

    def run(self, package: Package, job_path: Path, options: RunOptions) -> RunResult:
        job = load_job(job_path)
        run_dir = (options.outdir or default_run_dir(repo_root(), package.name)).resolve()
        use_containers, why = container_decision(package, options.no_container)
        if not use_containers:
            notice(f"running without containers ({why}); the tools installed in this environment are used")
        doc = package.copy_doc()
        gateway_env: dict[str, str] = {}
        if options.dask_gateway_url:
            if not gateway.answers(options.dask_gateway_url):
                notice(
                    f"the Dask gateway {options.dask_gateway_url} does not answer from here; the tool "
                    "fails if it cannot reach it either (start one with `eopack gateway up`)"
                )
            settings = gateway.tool_settings(options.dask_gateway_url, {**os.environ, **options.env})
            secret = {k: v for k, v in settings.items() if k in FORWARDED_ENV}
            gateway_env = {k: v for k, v in settings.items() if k not in secret}
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
        cwl, job_file = write_run_copy(run_dir, package, doc, job)
        loopback = loopback_urls(job) if use_containers else []
        if use_containers and options.dask_gateway_url:
            loopback += loopback_urls({"dask_gateway_url": options.dask_gateway_url})
        if loopback:
            notice(f"the job uses loopback URL(s) ({loopback[0]}): the container shares the host's network")
        cmd = self.command(cwl, job_file, run_dir, use_containers, options, host_network=bool(loopback))
        (run_dir / ".eopack" / "command.txt").write_text(" ".join(cmd) + "\n")
        env = {**os.environ, **options.env}
        if not use_containers:
            # The tools' console scripts live next to this interpreter (the workspace venv).
            env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
        log = run_dir / ".eopack" / "cwltool.log"
        stdout = run_dir / ".eopack" / "cwltool-output.json"
        code = tee_process(cmd, log, env, options.quiet, stdout)
        try:
            return self._result(package, run_dir, code, log, stdout)
        finally:
            # Whatever cwltool staged and we did not move is not a result.
            shutil.rmtree(run_dir / ".eopack" / "out", ignore_errors=True)

    def _result(self, package: Package, run_dir: Path, code: int, log: Path, stdout: Path) -> RunResult:
        if code != 0:
            status = (
                RunStatus.KILLED
                if code < 0 or code - 128 in (signal.SIGTERM, signal.SIGKILL)
                else RunStatus.FAILED
            )
            return RunResult(
                status,
                code if code > 0 else 1,
                run_dir,
                errors=tool_errors(log, tool_commands(package)),
                log=log,
            )
        raw = json.loads(stdout.read_text() or "{}")
        outputs, catalog = collect_outputs(package, raw, run_dir)
        return RunResult(RunStatus.SUCCEEDED, 0, run_dir, outputs, catalog, log=log)
