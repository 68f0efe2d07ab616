"""Read an openEO process graph and decide, before any data is touched, whether we can run it.

openeo-pg-parser-networkx reports a malformed graph as a pydantic error about its own internal,
unflattened model ("process_graph.root.arguments...") or as a bare ``Exception``; a user who wrote
the JSON needs the place in *their* file. So the structure is checked here first and every problem
is reported with its JSON path (``$.process_graph.ndvi1.arguments.data.from_node``). The same walk
collects every process id, nested callbacks included, so an unsupported process is refused before
a single pixel is read.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eopack_eo_common.errors import ToolInputError

__all__ = ["GraphInputError", "ProcessGraphDoc", "read_process_graph"]

_PROCESS_ID = re.compile(r"^\w+$")


class GraphInputError(ToolInputError):
    """The process graph document is not a valid openEO process graph; ``path`` says where."""

    def __init__(self, source: str, path: str, problem: str) -> None:
        self.source, self.path, self.problem = source, path, problem
        super().__init__(f"process graph {source} is invalid at {path}: {problem}")


@dataclass(frozen=True)
class ProcessGraphDoc:
    """A structurally valid flat process graph and every ``(json path, process id)`` it uses."""

    source: str
    flat_graph: dict[str, Any]
    processes: tuple[tuple[str, str], ...]

    @property
    def process_ids(self) -> set[str]:
        return {pid for _, pid in self.processes}


def _key(path: str, key: str) -> str:
    return f"{path}.{key}" if re.fullmatch(r"[A-Za-z_]\w*", key) else f"{path}[{json.dumps(key)}]"


def _check_graph(source: str, graph: Any, path: str) -> Iterator[tuple[str, str]]:
    """Check one (possibly nested callback) graph; yield ``(path, process_id)`` of every node."""
    if not isinstance(graph, dict) or not graph:
        raise GraphInputError(
            source, path, "expected a non-empty object of nodes {node_id: {process_id, arguments}}"
        )
    results = []
    for node_id, node in graph.items():
        where = _key(path, node_id)
        if not isinstance(node, dict):
            raise GraphInputError(source, where, f"a node must be an object, got {type(node).__name__}")
        pid = node.get("process_id")
        if not isinstance(pid, str) or not _PROCESS_ID.match(pid):
            raise GraphInputError(
                source, f"{where}.process_id", f"expected a process id like 'ndvi', got {pid!r}"
            )
        arguments = node.get("arguments", {})
        if not isinstance(arguments, dict):
            raise GraphInputError(
                source, f"{where}.arguments", "expected an object of argument name -> value"
            )
        result = node.get("result", False)
        if not isinstance(result, bool):
            raise GraphInputError(source, f"{where}.result", f"expected true or false, got {result!r}")
        if result:
            results.append(node_id)
        yield f"{where}.process_id", pid
        for name, value in arguments.items():
            yield from _check_value(source, value, _key(f"{where}.arguments", name), graph)
    if len(results) != 1:
        found = ", ".join(results) if results else "none"
        raise GraphInputError(source, path, f'exactly one node must have "result": true; found {found}')


def _check_value(source: str, value: Any, path: str, graph: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """Follow an argument value: node references must exist, callbacks are graphs of their own."""
    if isinstance(value, dict):
        if "from_node" in value:
            target = value["from_node"]
            if not isinstance(target, str) or target not in graph:
                known = ", ".join(graph)
                raise GraphInputError(
                    source,
                    f"{path}.from_node",
                    f"refers to node {target!r}, which this graph lacks; nodes: {known}",
                )
            return
        if "process_graph" in value:
            yield from _check_graph(source, value["process_graph"], f"{path}.process_graph")
            return
        for key, item in value.items():
            yield from _check_value(source, item, _key(path, str(key)), graph)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _check_value(source, item, f"{path}[{index}]", graph)


def parse_process_graph(doc: Any, source: str = "<graph>") -> ProcessGraphDoc:
    """Accept ``{"process_graph": {...}}`` (what openEO clients write) or the bare flat graph.

    >>> g = parse_process_graph({"a": {"process_id": "pi", "arguments": {}, "result": True}})
    >>> g.processes
    (('$.a.process_id', 'pi'),)
    """
    if not isinstance(doc, dict):
        raise GraphInputError(source, "$", f"expected a JSON object, got {type(doc).__name__}")
    if "process_graph" in doc:
        flat, path = doc["process_graph"], "$.process_graph"
    else:
        flat, path = doc, "$"
    processes = tuple(_check_graph(source, flat, path))
    return ProcessGraphDoc(source, flat, processes)


def read_process_graph(file: Path) -> ProcessGraphDoc:
    """Read and check a process graph file; a JSON syntax error names its line and column."""
    source = str(file)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as err:
        raise ToolInputError(f"cannot read process graph {file}: {err.strerror or err}") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as err:
        raise GraphInputError(
            source, "$", f"not JSON: {err.msg} (line {err.lineno}, column {err.colno})"
        ) from None
    return parse_process_graph(doc, source)
