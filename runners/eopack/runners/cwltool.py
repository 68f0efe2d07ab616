"""Run a package with cwltool, the CWL reference runner (the default runner)."""

from __future__ import annotations

import os
from pathlib import Path

from ..package import Package, cwltool_command
from .base import (
    FORWARDED_ENV,
    RunOptions,
    RunResult,
    container_decision,
    execute,
    loopback_urls,
    prepare,
)
from .engine import engine_flags

# container_decision, loopback_urls and FORWARDED_ENV moved to base.py (shared with Toil); they stay
# importable from here.
__all__ = ["FORWARDED_ENV", "CwltoolRunner", "container_decision", "loopback_urls"]


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
        forwarded: list[str] | None = None,
    ) -> list[str]:
        cmd = [*cwltool_command(), "--disable-color", "--outdir", str(run_dir / ".eopack" / "out")]
        if not use_containers:
            cmd.append("--no-container")
        else:
            cmd += engine_flags(options.engine)
        if use_containers and host_network:
            # cwltool gives a tool with NetworkAccess Docker's bridge network, from which the host's
            # 127.0.0.1 is unreachable; `--custom-net host` shares the host's network instead.
            cmd += ["--custom-net", "host"]
        if forwarded is None:
            forwarded = [n for n in FORWARDED_ENV if n in os.environ or n in options.env]
        for name in forwarded:
            cmd += ["--preserve-environment", name]
        cmd += [*options.extra_args, f"{cwl}#{cwl.stem}", str(job_file)]
        return cmd

    def run(self, package: Package, job_path: Path, options: RunOptions) -> RunResult:
        prepared = prepare(package, job_path, options, secrets_by_file=True)
        cmd = self.command(
            prepared.cwl,
            prepared.job_file,
            prepared.run_dir,
            prepared.use_containers,
            prepared.options,
            host_network=prepared.host_network,
            forwarded=prepared.forwarded(),
        )
        return execute(prepared, cmd, "cwltool")
