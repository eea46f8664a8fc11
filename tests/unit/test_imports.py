"""No import cycle among lab's modules, counting imports inside functions too.

A function-level import hides a cycle from the interpreter until the day the order changes;
config.py and the balancer used to import each other that way. Imports under
``if TYPE_CHECKING:`` never run and are left out.
"""

from __future__ import annotations

import ast
from pathlib import Path

import lab

PACKAGE = Path(lab.__file__).parent


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking_only(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imported(tree: ast.AST, modules: set[str]) -> set[str]:
    """lab modules a file imports when it runs (at any depth), with their parent packages."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _type_checking_only(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    with_parents = {".".join(name.split(".")[:i]) for name in found
                    for i in range(1, name.count(".") + 2)}
    return with_parents & modules


def import_graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    modules = set(files)
    graph = {}
    for name, path in files.items():
        parents = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
        graph[name] = imported(ast.parse(path.read_text()), modules) - {name} - parents
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One cycle as a path of module names, or [] when the graph has none."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def walk(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            if nxt not in state and (cycle := walk(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return []

    for node in sorted(graph):
        if node not in state and (cycle := walk(node)):
            return cycle
    return []


def test_the_checker_finds_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_in_lab() -> None:
    graph = import_graph()
    assert {"lab.balancers.base", "lab.fleet"} <= graph["lab.release"]  # the graph is read
    assert find_cycle(graph) == []


def test_config_does_not_import_a_balancer() -> None:
    graph = import_graph()
    assert graph["lab.config"] & {"lab.balancers.base", "lab.balancers.haproxy"} == set()


def test_config_does_not_import_a_target() -> None:
    """lab.yml names targets through their registry; a target's module is imported only when
    a lab uses it or has its section, never by config.py itself."""
    graph = import_graph()
    assert "lab.targets.registry" in graph["lab.config"]
    assert graph["lab.config"] & {"lab.targets.base", "lab.targets.docker",
                                  "lab.targets.vagrant", "lab.targets.dockerengine"} == set()


def test_the_vagrant_target_uses_the_shared_docker_engine() -> None:
    """What both targets need from Docker is dockerengine.py's, not the docker target's."""
    graph = import_graph()
    assert "lab.targets.dockerengine" in graph["lab.targets.vagrant"]
    source = (PACKAGE / "targets" / "vagrant.py").read_text()
    assert "engine._" not in source
