"""The WES workers' ``toil-cwl-runner``: the workspace engine, with the site's tool variables named.

``toil server`` starts every run as ``toil-cwl-runner [options] <workflow>#<id> <inputs.json>`` from
the workers' PATH; ``eopack wes up`` puts a two-line shim first on that PATH which runs this file
with the workspace interpreter. Why it exists: the tools must get the site's variables
(``EOPACK_ALLOW_PRIVATE_URLS``, the Dask gateway settings, ...; their names are in
``$EOPACK_WES_TOOL_ENV``) and nothing else. ``--preserve-entire-environment`` gave them the workers'
whole environment, whose PATH (the workspace venv first) then hid a package image's own tools
(``sh: ndvi: not found``); and Toil 9.6 ignores ``--preserve-environment NAME`` (it replaces the list
with the names of EnvVarRequirement). So the variables are written into an EnvVarRequirement of each
CommandLineTool of a copy of the submitted workflow, next to it, and the engine runs that copy.
Secrets (names ending in PASSWORD or TOKEN) are never written into the copy.

Secrets reach the tools the way ``eopack run`` hands them to Toil (eopack.runners.secret_files): the
workers hold each as a mode-600 file named by ``<NAME>_FILE``; the copy gives each tool a hidden
``File`` input per secret (the gateway password to Dask tools only) with ``<NAME>_FILE`` set to its
path, and a copy of the inputs names the files. Toil stages them like any input, so a containerised
tool finds its secret mounted read-only, and the value is never on a command line or in a log.

Each run gets a ``--workDir`` of its own (named after the run, inside the stack's work dir) and the
engine runs as this process's child: when toil server cancels a run (SIGTERM), the signal is passed
on and the tools' containers the stopped Toil left running, known by the work dir they mount, are
removed (Toil does not stop cwltool's containers).

Without containers the tools still find their console scripts: cwltool gives a tool run on the host
the engine's PATH. Inside a container they see the image's PATH.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from eopack.clients.slurm import unreachable
from eopack.package import as_list, class_name, short_id
from eopack.runners.secret_files import wire
from eopack.tool_env import DASK_SECRET_ENV, SECRET_ENV

TOOL_ENV = "EOPACK_WES_TOOL_ENV"  # comma-separated names of the variables tools get
SECRET_SUFFIXES = ("PASSWORD", "TOKEN", "SECRET")


def tool_variables(environ: dict[str, str]) -> dict[str, str]:
    """The named variables that are set, secrets left out."""
    names = [n.strip() for n in environ.get(TOOL_ENV, "").split(",") if n.strip()]
    return {n: environ[n] for n in names if n in environ and not n.upper().endswith(SECRET_SUFFIXES)}


def add_env(node: Any, values: dict[str, str]) -> int:
    """Add ``values`` to the EnvVarRequirement of every CommandLineTool under ``node``; returns how many.

    A variable the tool already defines keeps the tool's value.
    """
    count = 0
    if isinstance(node, list):
        return sum(add_env(item, values) for item in node)
    if not isinstance(node, dict):
        return 0
    if node.get("class") == "CommandLineTool":
        reqs = node.get("requirements") or []
        if isinstance(reqs, dict):  # the map form: {Class: {...}}
            reqs = [{"class": k, **(v or {})} for k, v in reqs.items()]
        envreq = next((r for r in reqs if r.get("class") == "EnvVarRequirement"), None)
        if envreq is None:
            envreq = {"class": "EnvVarRequirement", "envDef": []}
            reqs.append(envreq)
        defs = envreq.get("envDef") or []
        if isinstance(defs, dict):
            defs = [{"envName": k, "envValue": v} for k, v in defs.items()]
        have = {d.get("envName") for d in defs}
        envreq["envDef"] = defs + [{"envName": k, "envValue": v} for k, v in values.items() if k not in have]
        node["requirements"] = reqs
        count += 1
    for key, value in node.items():
        if key != "requirements":
            count += add_env(value, values)
    return count


def with_tool_env(workflow: str, values: dict[str, str]) -> str:
    """The argument for a copy of ``workflow`` (``path#fragment``) whose tools get ``values``."""
    path, sep, fragment = workflow.partition("#")
    source = Path(path)
    if not values or not source.is_file():
        return workflow
    doc = yaml.safe_load(source.read_text())
    if not add_env(doc, values):
        return workflow
    copy = source.with_name(f"{source.stem}.tool-env.cwl")
    copy.write_text(json.dumps(doc, indent=1) + "\n")
    return f"{copy}{sep}{fragment}"


def secret_files(environ: dict[str, str]) -> dict[str, Path]:
    """The secrets the workers hold, by name: ``<NAME>_FILE`` set and the file there."""
    files = {n: Path(environ[f"{n}_FILE"]) for n in SECRET_ENV if environ.get(f"{n}_FILE")}
    return {n: p for n, p in files.items() if p.is_file()}


def with_secrets(workflow: str, inputs: str, files: dict[str, Path]) -> tuple[str, str]:
    """(workflow, inputs) arguments for copies whose tools get ``files`` as hidden File inputs."""
    path, sep, fragment = workflow.partition("#")
    source, job_path = Path(path), Path(inputs)
    if not files or not source.is_file() or not job_path.is_file():
        return workflow, inputs
    doc = yaml.safe_load(source.read_text())
    job = yaml.safe_load(job_path.read_text()) or {}
    if not isinstance(doc, dict) or "$graph" not in doc or not isinstance(job, dict):
        return workflow, inputs  # eopack's runners submit packed workflows; anything else is left alone
    tools = [p for p in doc["$graph"] if p.get("class") == "CommandLineTool"]
    dask = [
        short_id(p.get("id", ""))
        for p in tools
        if any(
            class_name(r) == "DaskGatewayRequirement"
            for r in as_list(p.get("hints")) + as_list(p.get("requirements"))
        )
    ]
    general = [n for n in files if n not in DASK_SECRET_ENV]
    wire(doc, [short_id(p.get("id", "")) for p in tools], general, job, files)
    if dask:  # wire() names every file in the job: only when some tool takes it
        wire(doc, dask, [n for n in files if n in DASK_SECRET_ENV], job, files)
    copy = source.with_name(f"{source.stem}.secrets.cwl")
    copy.write_text(json.dumps(doc, indent=1) + "\n")
    job_copy = job_path.with_name(f"{job_path.stem}.secrets.json")
    job_copy.write_text(json.dumps(job, indent=1) + "\n")  # paths of the files, not their values
    return f"{copy}{sep}{fragment}", str(job_copy)


def with_work_dir(args: list[str], run_folder: Path) -> tuple[list[str], Path]:
    """``args`` with a ``--workDir`` of this run's own: a folder named after the run inside the
    ``--workDir`` the site gave (eopack's stack gives ``<state>/work``), else in the run's folder.
    Its own, so that what a stopped run leaves can be told from what other runs are using."""
    given, rest, i = None, [], 0
    while i < len(args):
        if args[i] == "--workDir" and i + 1 < len(args):
            given, i = args[i + 1], i + 2
            continue
        if args[i].startswith("--workDir="):
            given = args[i].split("=", 1)[1]
        else:
            rest.append(args[i])
        i += 1
    work = Path(given) / run_folder.parent.name if given else run_folder / "work"
    work.mkdir(mode=0o700, parents=True, exist_ok=True)
    return [f"--workDir={work}", *rest], work


def run_engine(cmd: list[str], work: Path) -> int:
    """Run the engine as a child; a cancel (SIGTERM from toil server) is passed on, and then the
    tools' containers the killed engine left running (Toil does not stop cwltool's containers) are
    removed: they are the ones that mount this run's work dir. Ends the way the engine ended."""
    child = subprocess.Popen(cmd)
    stopped: list[int] = []

    def forward(signum: int, _frame: object) -> None:
        stopped.append(signum)
        child.send_signal(signum)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, forward)
    code = child.wait()
    if stopped or code < 0:
        from eopack.clients.docker import remove_containers_mounting

        left = remove_containers_mounting(work)
        if left:
            print(f"eopack: removed {len(left)} tool container(s) the stopped run left", file=sys.stderr)
    if code < 0:  # killed by a signal: die of it too, so toil server reads the same exit status
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    return code


def batch_system(args: list[str]) -> str | None:
    """The ``--batchSystem`` the run asks for (``--batchSystem=X`` or ``--batchSystem X``), if any."""
    for i, arg in enumerate(args):
        if arg.startswith("--batchSystem="):
            return arg.split("=", 1)[1]
        if arg == "--batchSystem" and i + 1 < len(args):
            return args[i + 1]
    return None


def main(argv: list[str]) -> int:
    engine = str(Path(sys.executable).parent / "toil-cwl-runner")
    args = list(argv)
    # Asked before Toil starts: Toil keeps retrying a failing `sbatch`, so a run sent to a Slurm
    # that is down never ends (CI saw one wait 900 s).
    if batch_system(args) == "slurm" and (why := unreachable(os.environ)):
        print(
            "eopack: this run asks for --batchSystem=slurm but the WES workers reach no Slurm "
            f"({'; '.join(why.splitlines())}); "
            "start it (`eopack slurm up`) or give the workers SLURM_CONF, then submit again",
            file=sys.stderr,
        )
        return 1
    if len(args) >= 2 and not args[-2].startswith("-"):  # ... <workflow>#<id> <inputs.json>
        args[-2], args[-1] = with_secrets(args[-2], args[-1], secret_files(dict(os.environ)))
        args[-2] = with_tool_env(args[-2], tool_variables(dict(os.environ)))
    os.environ.pop(TOOL_ENV, None)
    # toil server starts each run in its own execution folder (the current directory)
    args, work = with_work_dir(args, Path.cwd())
    code = run_engine([engine, *args], work)
    with contextlib.suppress(OSError):
        work.rmdir()  # Toil empties it after a finished run; kept when something is left to look at
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
