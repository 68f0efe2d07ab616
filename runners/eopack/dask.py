"""DaskGatewayRequirement, runner side: read it, evaluate it, lower it (DESIGN.md §3).

Packages declare the requirement as a *hint*. cwltool, Toil and WES know nothing about it, so we
*lower* it: evaluate its five values (literals or CWL expressions over the tool's inputs) and hand
them to the tool as ``DASK_GATEWAY_*`` environment variables with Calrissian's names, through an
``EnvVarRequirement`` in a temporary copy of the package. Calrissian instead needs it under
``requirements`` (``to_requirement``).
"""

from __future__ import annotations

import operator
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import PackageInvalidError
from .package import DASK_CLASS, DASK_FIELDS, Package, as_list, class_name, memory_bytes, short_id

__all__ = [
    "MAX_WORKERS",
    "MIN_WORKER_MEMORY",
    "DaskRangeError",
    "DaskRequirement",
    "evaluate",
    "lower",
    "memory_bytes",
    "step_inputs",
    "to_requirement",
]


# Bounds on evaluated values: the requirement may be driven by job inputs, and a job file must not be
# able to ask a shared gateway for 100000 workers. Gateways enforce their own caps on top.
MAX_WORKERS = 1000
MIN_WORKER_MEMORY = 64 * 2**20  # below this a Dask worker does not start


def _whole(field: str, value: Any) -> int:
    """An integer value of ``field``; bools, fractions and text are refused."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"{field} = {value!r} is not a whole number")
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"{field} = {value!r} is not a whole number") from None
    if not number.is_integer():
        raise ValueError(f"{field} = {value!r} is not a whole number")
    return int(number)


class DaskRangeError(PackageInvalidError):
    """The requirement evaluated (often from job inputs) to values out of range: bad input, exit 2."""

    exit_code = 2


@dataclass(frozen=True)
class DaskRequirement:
    """The evaluated requirement of one tool."""

    worker_cores: int
    worker_cores_limit: int
    cluster_max_cores: int
    worker_memory: str
    cluster_max_memory: str

    @property
    def workers(self) -> int:
        """``min(maxCores // workerCoresLimit, maxMemory // workerMemory)``, at least 1."""
        by_cores = self.cluster_max_cores // max(self.worker_cores_limit, 1)
        by_memory = memory_bytes(self.cluster_max_memory) // max(memory_bytes(self.worker_memory), 1)
        return max(1, min(by_cores, by_memory))

    def env(self, gateway_url: str | None = None, image: str | None = None) -> dict[str, str]:
        """The variables a tool reads (Calrissian's names)."""
        out = {
            "DASK_GATEWAY_WORKER_CORES": str(self.worker_cores),
            "DASK_GATEWAY_WORKER_CORES_LIMIT": str(self.worker_cores_limit),
            "DASK_GATEWAY_WORKER_MEMORY": self.worker_memory,
            "DASK_GATEWAY_CLUSTER_MAX_CORES": str(self.cluster_max_cores),
            "DASK_GATEWAY_CLUSTER_MAX_RAM": self.cluster_max_memory,
        }
        if gateway_url:
            out["DASK_GATEWAY_URL"] = gateway_url
        if image:
            out["DASK_GATEWAY_IMAGE"] = image
        return out

    def problems(self) -> list[str]:
        """Values out of range, each as ``field = value: why`` (empty when the requirement is usable)."""
        found = []
        for field, value in (
            ("workerCores", self.worker_cores),
            ("workerCoresLimit", self.worker_cores_limit),
            ("clusterMaxCores", self.cluster_max_cores),
        ):
            if value < 1:
                found.append(f"{field} = {value}: must be at least 1")
        if found:
            return found
        if self.cluster_max_cores < self.worker_cores_limit:
            found.append(
                f"clusterMaxCores = {self.cluster_max_cores}: not even one worker of "
                f"workerCoresLimit = {self.worker_cores_limit} fits"
            )
        worker, cluster = memory_bytes(self.worker_memory), memory_bytes(self.cluster_max_memory)
        if worker < MIN_WORKER_MEMORY:
            found.append(f"workerMemory = {self.worker_memory!r}: must be at least 64M")
        elif cluster < worker:
            found.append(
                f"clusterMaxMemory = {self.cluster_max_memory!r}: below workerMemory = {self.worker_memory!r}"
            )
        if not found and self.workers > MAX_WORKERS:
            found.append(f"{self.workers} workers asked for: at most {MAX_WORKERS} per cluster")
        return found

    def describe(self) -> str:
        return (
            f"{self.workers} worker(s) × {self.worker_cores} core(s) "
            f"(limit {self.worker_cores_limit}), {self.worker_memory} each; "
            f"cluster max {self.cluster_max_cores} cores, {self.cluster_max_memory}"
        )


def find_hint(tool: Mapping[str, Any]) -> dict[str, Any] | None:
    for section in ("hints", "requirements"):
        for entry in as_list(tool.get(section)):
            if class_name(entry) == DASK_CLASS:
                return entry
    return None


def step_inputs(pkg: Package, tool: Mapping[str, Any], job: Mapping[str, Any]) -> dict[str, Any]:
    """The inputs ``tool`` receives when the package's Workflow runs ``job``.

    Follows the step's ``in`` sources to Workflow inputs and applies defaults, which covers
    packages whose steps take Workflow inputs directly (ours). ``valueFrom`` and step-to-step
    sources are refused with a clear message rather than guessed.
    """
    wf = pkg.workflow
    wf_values: dict[str, Any] = {}
    for inp in as_list(wf.get("inputs"), "id"):
        key = short_id(inp["id"])
        wf_values[key] = job.get(key, inp.get("default"))
    tool_id = short_id(tool.get("id", ""))
    values: dict[str, Any] = {}
    for step in as_list(wf.get("steps"), "id"):
        if short_id(str(step.get("run", ""))) != tool_id:
            continue
        for binding in as_list(step.get("in"), "id", "source"):
            if "valueFrom" in binding:
                raise PackageInvalidError(
                    pkg.name,
                    [
                        f"step {short_id(step['id'])!r} input {short_id(binding['id'])!r} uses valueFrom; "
                        f"{DASK_CLASS} expressions can only reference inputs passed straight "
                        "from the Workflow"
                    ],
                )
            source = binding.get("source")
            value = wf_values.get(short_id(source)) if isinstance(source, str) else None
            values[short_id(binding["id"])] = value if value is not None else binding.get("default")
        break
    for inp in as_list(tool.get("inputs"), "id"):
        key = short_id(inp["id"])
        if values.get(key) is None and "default" in inp:
            values[key] = inp["default"]
        values.setdefault(key, None)
    return values


_PARAM_REF = re.compile(r"^\$\(inputs\.([A-Za-z_][A-Za-z0-9_]*)\)$")


_NUMBER = r"-?\d+(?:\.\d+)?"
_OPERAND = rf"(?:inputs\.[A-Za-z_][A-Za-z0-9_]*|{_NUMBER})"
_OPERATORS = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv}
_ARITHMETIC = re.compile(rf"^\$\(\s*({_OPERAND})\s*([-+*/])\s*({_OPERAND})\s*\)$")


def _arithmetic(raw: str, inputs: Mapping[str, Any]) -> int | float | None:
    """``$(inputs.x * 2)`` and the like (one + - * / of two numbers) as JavaScript computes it.

    None when ``raw`` is anything else, or an operand is not a number, or it divides by zero:
    the caller then asks node, so only the cases whose JS result Python reproduces exactly are here
    (a JS number that is whole comes back from node as a JSON integer, hence the int).

    >>> _arithmetic("$(inputs.workers * 2)", {"workers": 3}), _arithmetic("$(7 / 2)", {})
    (6, 3.5)
    >>> _arithmetic("$(inputs.name + 1)", {"name": "a"}) is None
    True
    """
    match = _ARITHMETIC.match(raw)
    if not match:
        return None
    operands = []
    for token in (match.group(1), match.group(3)):
        if token.startswith("inputs."):
            value = inputs.get(token[len("inputs.") :])
            if isinstance(value, bool) or not isinstance(value, int | float):
                return None
            operands.append(value)
        else:
            operands.append(float(token) if "." in token else int(token))
    left, right = operands
    op = match.group(2)
    if op == "/" and right == 0:
        return None
    result = _OPERATORS[op](left, right)
    if isinstance(result, float) and result.is_integer() and abs(result) < 2**53:
        return int(result)
    return result


def _eval(raw: Any, inputs: Mapping[str, Any], requirements: list[dict[str, Any]]) -> Any:
    """A literal or ``$(inputs.x)`` directly; anything else through cwl-utils (and node for JS).

    The fast path matters: importing cwl-utils' expression engine costs about a second and a JS
    expression starts node, which would be most of eopack's overhead on a small job.

    >>> _eval(4, {}, []), _eval("$(inputs.mem)", {"mem": "2G"}, [])
    (4, '2G')
    """
    if not isinstance(raw, str) or ("$(" not in raw and "${" not in raw):
        return raw
    match = _PARAM_REF.match(raw.strip())
    if match and match.group(1) in inputs:
        return inputs[match.group(1)]
    value = _arithmetic(raw.strip(), inputs)
    if value is not None:
        return value
    from cwl_utils.expression import do_eval

    return do_eval(raw, inputs, requirements, None, None, {})  # type: ignore[arg-type]


def evaluate(pkg: Package, tool: Mapping[str, Any], job: Mapping[str, Any]) -> DaskRequirement | None:
    """Evaluate the tool's requirement with the inputs ``job`` gives it; None if it has none."""
    hint = find_hint(tool)
    if hint is None:
        return None
    inputs = step_inputs(pkg, tool, job)
    requirements = as_list(tool.get("requirements")) + as_list(pkg.workflow.get("requirements"))
    values: dict[str, Any] = {}
    problems = []
    for field in DASK_FIELDS:
        raw = hint.get(field)
        if raw is None:
            problems.append(f"{DASK_CLASS}.{field} is missing")
            continue
        try:
            values[field] = _eval(raw, inputs, requirements)
        except Exception as err:
            problems.append(
                f"{DASK_CLASS}.{field} = {raw!r} cannot be evaluated: {str(err).splitlines()[-1]}"
            )
    if problems:
        raise PackageInvalidError(pkg.name, problems)
    try:
        req = DaskRequirement(
            worker_cores=_whole("workerCores", values["workerCores"]),
            worker_cores_limit=_whole("workerCoresLimit", values["workerCoresLimit"]),
            cluster_max_cores=_whole("clusterMaxCores", values["clusterMaxCores"]),
            worker_memory=str(values["workerMemory"]),
            cluster_max_memory=str(values["clusterMaxMemory"]),
        )
        memory_bytes(req.worker_memory)
        memory_bytes(req.cluster_max_memory)
        problems = req.problems()
    except (TypeError, ValueError) as err:
        raise DaskRangeError(pkg.name, [f"{DASK_CLASS} evaluated to an unusable value: {err}"]) from None
    if problems:
        raise DaskRangeError(pkg.name, [f"{DASK_CLASS} evaluated out of range: {'; '.join(problems)}"])
    return req


def set_env(tool: dict[str, Any], env: Mapping[str, str]) -> None:
    reqs = as_list(tool.get("requirements"))
    for req in reqs:
        if class_name(req) == "EnvVarRequirement":
            defs = [d for d in as_list(req.get("envDef"), "envName", "envValue") if d["envName"] not in env]
            req["envDef"] = defs + [{"envName": k, "envValue": v} for k, v in env.items()]
            break
    else:
        reqs.append(
            {"class": "EnvVarRequirement", "envDef": [{"envName": k, "envValue": v} for k, v in env.items()]}
        )
    tool["requirements"] = reqs


def _need_network(tool: dict[str, Any]) -> None:
    reqs = [r for r in as_list(tool.get("requirements")) if class_name(r) != "NetworkAccess"]
    tool["requirements"] = [*reqs, {"class": "NetworkAccess", "networkAccess": True}]


def lower(
    pkg: Package,
    doc: dict[str, Any],
    job: Mapping[str, Any],
    gateway_url: str | None = None,
    use_image: bool = False,
    gateway_env: Mapping[str, str] | None = None,
) -> dict[str, DaskRequirement]:
    """Rewrite ``doc`` (a copy of ``pkg.doc``) so each Dask tool receives its ``DASK_GATEWAY_*`` env.

    ``gateway_env`` adds settings of the gateway that are not secret (e.g.
    ``DASK_GATEWAY_PROXY_ADDRESS``); secrets never go into the copy on disk, the runner passes them
    through the process environment. A tool that talks to a gateway needs the network, so it gets
    ``NetworkAccess`` (cwltool runs containers without one otherwise).
    Returns the evaluated requirement per tool id, for reporting.
    """
    lowered: dict[str, DaskRequirement] = {}
    for tool in doc.get("$graph", []):
        if tool.get("class") != "CommandLineTool":
            continue
        req = evaluate(pkg, tool, job)
        if req is None:
            continue
        image = None
        if use_image:
            image = next(
                (
                    str(r["dockerPull"])
                    for r in as_list(tool.get("requirements")) + as_list(tool.get("hints"))
                    if class_name(r) == "DockerRequirement" and r.get("dockerPull")
                ),
                None,
            )
        env = req.env(gateway_url, image)
        if gateway_url:
            env.update(gateway_env or {})
            _need_network(tool)
        set_env(tool, env)
        lowered[short_id(tool.get("id", ""))] = req
    return lowered


def to_requirement(doc: dict[str, Any]) -> dict[str, Any]:
    """Move the hint into ``requirements`` of every tool (what Calrissian ≥ 0.19 needs)."""
    for tool in doc.get("$graph", []):
        hints = as_list(tool.get("hints"))
        dask = [h for h in hints if class_name(h) == DASK_CLASS]
        if dask:
            tool["hints"] = [h for h in hints if class_name(h) != DASK_CLASS]
            tool["requirements"] = as_list(tool.get("requirements")) + dask
    return doc
