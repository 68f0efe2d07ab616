"""The runner side's import rules (DESIGN.md §2), read from the source with ``ast``: what a module may
import follows from the role its folder gives it, and no import circle exists."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "runners" / "eopack"


def _module(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports (top level or inside functions), absolute, ``eopack`` ones resolved."""
    return _imports_of(path.read_text(), _module(path), path.name == "__init__.py")


def _imports_of(source: str, module: str, is_package: bool) -> set[str]:
    package = module if is_package else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            found.add(target)
            # `from . import wes` imports the module eopack.x.wes, not just the package
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return found


MODULES = {_module(p): p for p in sorted(SRC.rglob("*.py"))}
GRAPH = {
    name: {i for i in _imports(path) if i in MODULES and i != name and not name.startswith(i + ".")}
    for name, path in MODULES.items()
}


def _role(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_the_source_tree_was_found() -> None:
    assert {"eopack.commands", "eopack.clients.http", "eopack.runners.base", "eopack.services.base"} <= set(
        MODULES
    )


@pytest.mark.parametrize("name", sorted(n for n in MODULES if _role(n) == "runners"))
def test_runners_import_no_service_or_command(name: str) -> None:
    bad = sorted(i for i in GRAPH[name] if _role(i) in ("services", "commands"))
    assert not bad, f"{name} imports {bad}: runners use clients, job, package and dask"


@pytest.mark.parametrize("name", sorted(n for n in MODULES if _role(n) == "clients"))
def test_clients_import_only_errors_and_the_http_helper(name: str) -> None:
    bad = sorted(
        i for i in GRAPH[name] if i not in ("eopack.errors", "eopack.clients", "eopack.clients.http")
    )
    assert not bad, f"{name} imports {bad}: a client imports only eopack.errors and eopack.clients.http"


@pytest.mark.parametrize("name", sorted(n for n in MODULES if _role(n) == "services"))
def test_services_import_no_command_or_runner(name: str) -> None:
    bad = sorted(i for i in GRAPH[name] if _role(i) in ("commands", "runners"))
    assert not bad, f"{name} imports {bad}: services manage daemons and use clients"


def test_only_commands_import_click() -> None:
    users = sorted(
        name
        for name, path in MODULES.items()
        if _role(name) != "commands" and any(i == "click" or i.startswith("click.") for i in _imports(path))
    )
    assert not users, f"click is imported outside eopack.commands by {users}"


def _find_circle(graph: dict[str, set[str]]) -> list[str]:
    """One import circle of ``graph`` as [a, b, ..., a], or [] when there is none (depth-first search)."""
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[str] = []

    def visit(name: str) -> list[str]:
        state[name] = 1
        stack.append(name)
        for dep in sorted(graph.get(name, ())):
            if state.get(dep) == 1:
                return [*stack[stack.index(dep) :], dep]
            if dep not in state and (found := visit(dep)):
                return found
        stack.pop()
        state[name] = 2
        return []

    for name in sorted(graph):
        if name not in state and (found := visit(name)):
            return found
    return []


def test_no_import_circle() -> None:
    circle = _find_circle(GRAPH)
    assert not circle, "import circle: " + " -> ".join(circle)


def test_the_circle_search_finds_one() -> None:
    assert _find_circle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert _find_circle({"a": {"b"}, "b": set()}) == []


def test_the_rules_see_function_local_and_relative_imports() -> None:
    """The parser sees the imports that hid the old circle (function-local, relative)."""
    code = "def f():\n    from ..services import wes\n    import click\n"
    found = _imports_of(code, "eopack.runners.probe", is_package=False)
    assert {"eopack.services", "eopack.services.wes", "click"} <= found


def test_a_run_that_prints_only_notices_to_a_pipe_never_imports_rich() -> None:
    """`make bench` counts eopack's own start-up (issue 22 item 6): rich is imported on first use only.
    A notice on a pipe is the plain line, unchanged, brackets included (it is never read as markup)."""
    import subprocess
    import sys

    code = (
        "import sys, eopack.commands, eopack.runners.cwltool\n"
        "from eopack.console import notice\n"
        "notice('results in /tmp/[run]')\n"
        "print(sorted(m for m in sys.modules if m == 'rich' or m.startswith('rich.')))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "[]", proc.stdout
    assert proc.stderr == "eopack: results in /tmp/[run]\n"
