"""Run a package with Toil (``toil-cwl-runner``): on this machine, on Slurm, or on HTCondor.

The wrapper is thin on purpose: HPC users must be able to paste what it runs (``--print-command``).
It prepares the run directory exactly as the cwltool runner does (same Dask lowering, same container
decision, same run copy) and adds what Toil needs:

- a job store and a work directory under the run directory (``.eopack/jobstore``, ``.eopack/work``),
  so a batch system's nodes see them when the run directory is on shared storage, and so
  ``-- --restart`` with the same ``--outdir`` resumes a run whose leader died;
- the logs kept next to the results (``.eopack/toil.log`` from the leader, ``.eopack/worker-logs/``
  for failed jobs, ``.eopack/batch-logs/`` for the batch system's own stdout/stderr files);
- ``--no-prepull`` with containers: eopack only runs containers whose images exist locally, and
  Toil's pre-pull would fail for an image that was never pushed anywhere (DESIGN.md §5).

Toil options given after ``--`` go to ``toil-cwl-runner`` unchanged and win over ours (``--jobStore``,
``--workDir``, ``--retryCount``, ``--restart``, ``--batchLogsDir``, ...).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..clients import docker, slurm
from ..console import notice
from ..errors import ServiceUnavailableError
from ..package import Package, as_list, class_name, repo_root
from ..tool_env import SECRET_ENV
from .base import FORWARDED_ENV, Prepared, RunOptions, RunResult, RunStatus, execute, prepare
from .engine import engine_flags

__all__ = [
    "HTCONDOR_NEEDS",
    "ToilHTCondorRunner",
    "ToilRunner",
    "ToilSlurmRunner",
    "forward_env",
    "toil_command",
    "user_gave",
]

# Variables that tell Toil's batch systems where the cluster is; passed to the leader as they are.
HTCONDOR_ENV = ("TOIL_HTCONDOR_COLLECTOR", "TOIL_HTCONDOR_SCHEDD", "TOIL_HTCONDOR_PARAMS")
# What a site must provide for `--runner toil-htcondor` (HTCondor is in neither Debian nor PyPI).
HTCONDOR_NEEDS = (
    "a site needs: the `condor_status` client on PATH (eopack checks `condor_status -total`); "
    "a submit node's HTCondor config (CONDOR_CONFIG or /etc/condor/condor_config naming COLLECTOR_HOST, "
    "or TOIL_HTCONDOR_COLLECTOR and TOIL_HTCONDOR_SCHEDD); the `htcondor` Python bindings (`toil[htcondor]`) "
    "in eopack's venv; --outdir on a file system every execute node mounts; Docker on the execute nodes "
    "(or --no-container with the tools on their PATH). eopack then runs `toil-cwl-runner --batchSystem htcondor` "
    "(see it with `eopack run APP --runner toil-htcondor --print-command`)"
)


def toil_command() -> list[str]:
    """The toil-cwl-runner next to this interpreter, so the venv's Toil runs even when not on PATH."""
    local = Path(sys.executable).parent / "toil-cwl-runner"
    return [str(local)] if local.exists() else ["toil-cwl-runner"]


def user_gave(extra: Sequence[str], *names: str) -> bool:
    """True when ``extra`` (arguments after ``--``) sets one of the options ``names`` (any spelling)."""
    wanted = {n.lower() for n in names}
    return any(arg.split("=", 1)[0].lower() in wanted for arg in extra)


class ToilRunner:
    """``toil-cwl-runner --batchSystem single_machine``: Toil's scheduler on this machine."""

    name = "toil"
    batch_system = "single_machine"
    shared_storage = False  # batch systems whose jobs run on other nodes need it

    def available(self) -> tuple[bool, str]:
        if shutil.which(toil_command()[0]) is None:
            return (
                False,
                "toil-cwl-runner not found. Install it with `uv sync` (the workspace pins toil[cwl])",
            )
        return True, ""

    def batch_env(self) -> dict[str, str]:
        """Variables the batch system needs that the runner sets (not the user)."""
        return {}

    def command(self, prepared: Prepared) -> list[str]:
        """The ``toil-cwl-runner`` command line for a prepared run directory."""
        meta, extra = prepared.meta, list(prepared.options.extra_args)
        cmd = [*toil_command(), "--batchSystem", self.batch_system]
        # Toil keeps PATH by default; its option takes a list and the last occurrence wins, so one
        # occurrence names everything, followed by another option (or it would swallow the CWL file).
        cmd += ["--preserve-environment", "PATH", *prepared.forwarded()]
        if not user_gave(extra, "--jobStore", "--jobstore"):
            cmd += ["--jobStore", str(meta / "jobstore")]
        if not user_gave(extra, "--workDir"):
            cmd += ["--workDir", str(meta / "work")]
        cmd += ["--outdir", str(meta / "out")]
        if not user_gave(extra, "--writeLogs", "--writeLogsGzip"):
            cmd += ["--writeLogs", str(meta / "worker-logs")]
        if self.shared_storage and not user_gave(extra, "--batchLogsDir"):
            cmd += ["--batchLogsDir", str(meta / "batch-logs")]
        if not prepared.use_containers:
            cmd.append("--no-container")
        else:
            # Images are local (container_decision checks it); a pre-pull would fail for an image
            # that was never pushed to a registry.
            cmd.append("--no-prepull")
            cmd += engine_flags(prepared.options.engine)
            if prepared.host_network:
                # A tool with NetworkAccess gets Docker's bridge network, from which the host's
                # 127.0.0.1 is unreachable; `--custom-net host` shares the host's network.
                cmd += ["--custom-net", "host"]
        cmd += [*extra, prepared.entry, str(prepared.job_file)]
        return cmd

    def run(self, package: Package, job: Path, options: RunOptions) -> RunResult:
        if not options.print_command:
            ok, why = self.available()
            if not ok:
                raise ServiceUnavailableError(f"Runner {self.name!r}", why, "Or use one of: cwltool, toil.")
        # Secrets by file in both modes: Toil forwards no variable by name (forward_env), and the
        # copy must not hold them. Its file job store links the file in (--symlinkImports).
        prepared = prepare(
            package, job, options, transform=forward_env, secrets_by_file=True, files_without_containers=True
        )
        additions: dict[str, str] = dict(prepared.env_additions)
        venv = str(Path(sys.executable).parent)
        if venv not in additions.get("PATH", "").split(os.pathsep):
            # Workers start `_toil_worker` and the tools by name; the venv must be on their PATH
            # (after the engine's folder, when it has one: the podman wrapper must come first).
            additions["PATH"] = os.pathsep.join(p for p in (additions.get("PATH"), venv) if p)
        additions.update(self.batch_env())
        prepared = _with_env(prepared, additions)
        self._check_restart(prepared)
        if self.shared_storage:
            notice(
                f"{self.name}: job store and work dir are under {prepared.meta}; on a real cluster "
                "that folder must be on storage every node shares (set --outdir)"
            )
        (prepared.meta / "work").mkdir(parents=True, exist_ok=True)
        result = execute(prepared, self.command(prepared), "toil")
        if result.status is RunStatus.KILLED and prepared.use_containers:
            # Toil does not stop cwltool's containers when it is killed; they mount its work dir.
            left = docker.remove_containers_mounting(prepared.meta / "work")
            if left:
                notice(f"{self.name}: removed {len(left)} tool container(s) the killed run left running")
        return result

    def _check_restart(self, prepared: Prepared) -> None:
        """Fail early and say what to do when a job store is left from an earlier run of this dir."""
        extra = prepared.options.extra_args
        if user_gave(extra, "--jobStore", "--jobstore") or prepared.options.print_command:
            return
        store = prepared.meta / "jobstore"
        restart = user_gave(extra, "--restart")
        if store.exists() and not restart:
            raise ServiceUnavailableError(
                f"Run directory {prepared.run_dir}",
                "it holds the job store of an unfinished Toil run",
                "Resume it with `-- --restart`, or choose another --outdir.",
            )
        if restart and not store.exists():
            raise ServiceUnavailableError(
                f"Run directory {prepared.run_dir}",
                f"--restart needs the job store {store} and it does not exist",
                "Use the --outdir of the run to resume, or drop --restart.",
            )


def forward_env(doc: dict[str, Any], options: RunOptions) -> None:
    """Give the tools the user's FORWARDED_ENV variables through EnvVarRequirement.

    Toil 9.6 replaces cwltool's ``--preserve-environment`` list with the names from
    EnvVarRequirement for every job (``CWLJob.run``), so the option alone forwards nothing.
    Secrets are never written into the copy: prepare() hands them over by file (secret_files).
    """
    values = {**os.environ, **options.env}
    env = {n: values[n] for n in FORWARDED_ENV if n in values and n not in SECRET_ENV}
    if not env:
        return
    for tool in doc.get("$graph", []):
        if tool.get("class") != "CommandLineTool":
            continue
        reqs = as_list(tool.get("requirements"))
        envreq = next((r for r in reqs if class_name(r) == "EnvVarRequirement"), None)
        if envreq is None:
            envreq = {"class": "EnvVarRequirement", "envDef": []}
            reqs.append(envreq)
        defs = [d for d in as_list(envreq.get("envDef"), "envName", "envValue") if d["envName"] not in env]
        envreq["envDef"] = defs + [{"envName": k, "envValue": v} for k, v in env.items()]
        tool["requirements"] = reqs


def _with_env(prepared: Prepared, additions: Mapping[str, str]) -> Prepared:
    return replace(prepared, env_additions=dict(additions))


class ToilSlurmRunner(ToilRunner):
    """``toil-cwl-runner --batchSystem slurm``: each CWL job is a Slurm batch job (``sbatch``)."""

    name = "toil-slurm"
    batch_system = "slurm"
    shared_storage = True

    def available(self) -> tuple[bool, str]:
        ok, why = super().available()
        if not ok:
            return ok, why
        if shutil.which("sbatch") is None:
            return False, "sbatch not found (no Slurm client). Start a local Slurm with `make slurm-up`"
        env = {**os.environ, **self.batch_env()}
        try:
            proc = subprocess.run(
                ["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=15, env=env, check=False
            )
        except (OSError, subprocess.TimeoutExpired):
            return False, "sinfo does not answer. Start a local Slurm with `make slurm-up`"
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            return False, f"sinfo failed ({last}). Start a local Slurm with `make slurm-up`"
        return True, ""

    def batch_env(self) -> dict[str, str]:
        """``SLURM_CONF`` of eopack's own cluster, unless the user or the machine already names one."""
        return slurm.client_env(repo_root() / "runs" / "services" / "slurm" / "slurm.conf")


class ToilHTCondorRunner(ToilRunner):
    """``toil-cwl-runner --batchSystem htcondor``: each CWL job is an HTCondor job.

    Toil talks to the schedd through the ``htcondor`` Python bindings (``toil[htcondor]``); a remote
    pool is chosen with ``TOIL_HTCONDOR_COLLECTOR``/``TOIL_HTCONDOR_SCHEDD``, which pass through.
    """

    name = "toil-htcondor"
    batch_system = "htcondor"
    shared_storage = True

    def available(self) -> tuple[bool, str]:
        ok, why = super().available()
        if not ok:
            return ok, why
        if importlib.util.find_spec("htcondor") is None:
            return False, f"the htcondor Python bindings are missing; {HTCONDOR_NEEDS}"
        if shutil.which("condor_status") is None:
            return (
                False,
                f"condor_status not found: no HTCondor pool is configured on this machine; {HTCONDOR_NEEDS}",
            )
        try:
            proc = subprocess.run(
                ["condor_status", "-total"], capture_output=True, text=True, timeout=30, check=False
            )
        except (OSError, subprocess.TimeoutExpired):
            return False, f"condor_status does not answer; {HTCONDOR_NEEDS}"
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            return False, f"condor_status failed: {last}; {HTCONDOR_NEEDS}"
        return True, ""

    def batch_env(self) -> dict[str, str]:
        return {n: os.environ[n] for n in HTCONDOR_ENV if n in os.environ}
