"""Secrets for containerised tools, by file: never on a command line, in a log or in the run copy.

cwltool (and Toil, which uses its code) hands a tool its environment as ``docker run --env=NAME=value``
and logs that line at INFO (issue 21 #2). So in container mode a secret such as the gateway password
is not an environment variable: it is written to a mode-600 file in a mode-700 folder of the run, the
tool receives that file as a hidden ``File`` input (bind-mounted read-only by the engine), and
``<NAME>_FILE`` names its path inside the container (eo-common's dask_cluster reads it). The file is
removed when the run ends (``remove``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ..dask import set_env
from ..package import as_list, short_id
from ..tool_env import DASK_SECRET_ENV, SECRET_ENV  # re-exported: one list (tool_env.py)

__all__ = ["DASK_SECRET_ENV", "SECRET_ENV", "input_id", "remove", "wire", "write"]


def input_id(name: str) -> str:
    """The hidden input's id: ``DASK_GATEWAY_PASSWORD`` → ``eopack_secret_dask_gateway_password``."""
    return f"eopack_secret_{name.lower()}"


def write(folder: Path, name: str, value: str) -> Path:
    """``folder/<name>`` holding ``value``: mode 600 from its creation, in a mode-700 folder."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    path = folder / name.lower()
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(value)
    return path


def remove(folder: Path) -> None:
    for path in folder.glob("*") if folder.is_dir() else []:
        path.unlink(missing_ok=True)
    if folder.is_dir():
        folder.rmdir()


def _add_input(process: dict[str, Any], ident: str, doc: str) -> None:
    inputs = as_list(process.get("inputs"), "id", "type")
    if not any(short_id(str(i.get("id", ""))) == ident for i in inputs):
        inputs.append({"id": ident, "type": "File", "label": "Secret (eopack)", "doc": doc})
    process["inputs"] = inputs


def wire(doc: dict[str, Any], tools: Iterable[str], names: Iterable[str], job: dict[str, Any],
         files: Mapping[str, Path]) -> None:  # fmt: skip
    """Give every tool in ``tools`` (short ids) a hidden File input per secret, from the Workflow.

    The tool gets ``<NAME>_FILE=$(inputs.<id>.path)``; each Workflow that runs such a tool directly
    gets the input too and passes it on; ``job`` gets the files. Nested workflows are not wired
    (the Dask requirement's own evaluation has the same limit, dask.step_inputs).
    """
    wanted, names = set(tools), list(names)
    for process in doc.get("$graph", []):
        if process.get("class") == "CommandLineTool" and short_id(process.get("id", "")) in wanted:
            for name in names:
                _add_input(process, input_id(name), f"The file holding {name}.")
            set_env(process, {f"{name}_FILE": f"$(inputs.{input_id(name)}.path)" for name in names})
    for process in doc.get("$graph", []):
        if process.get("class") != "Workflow":
            continue
        steps = as_list(process.get("steps"), "id")
        runs_one = False
        for step in steps:
            if short_id(str(step.get("run", ""))) not in wanted:
                continue
            runs_one = True
            bindings = as_list(step.get("in"), "id", "source")
            for name in names:
                bindings.append({"id": input_id(name), "source": input_id(name)})
            step["in"] = bindings
        if runs_one:
            process["steps"] = steps
            for name in names:
                _add_input(process, input_id(name), f"The file holding {name}.")
    for name in names:
        job[input_id(name)] = {"class": "File", "path": str(files[name])}
