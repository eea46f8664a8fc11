"""No import cycle among lab's modules, counting imports inside functions too.

A function-level import hides a cycle from the interpreter until the day the order changes;
config.py and the balancer used to import each other that way. Imports under
``if TYPE_CHECKING:`` never run and are left out.

Importing a module runs its packages' ``__init__`` first, so it counts as importing them too.
"""

from __future__ import annotations

import ast
import subprocess
import sys
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


def imported(tree: ast.AST, modules: set[str], type_only: bool = False) -> set[str]:
    """lab modules a file imports when it runs (at any depth), with their parent packages;
    with ``type_only``, those imported for type checkers alone too."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _type_checking_only(node) and not type_only:
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


def import_graph(type_only: bool = False) -> dict[str, set[str]]:
    trees = {module_name(p): ast.parse(p.read_text()) for p in PACKAGE.rglob("*.py")}
    modules = set(trees)
    graph = {}
    for name, tree in trees.items():
        parents = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
        graph[name] = imported(tree, modules, type_only) - {name} - parents
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
    # the graph is read: the release's own imports, and its package's
    assert {"lab.balancers.base", "lab.fleet", "lab.harness"} <= graph["lab.release.cycle"]
    assert "lab.release.cycle" in graph["lab.release"]
    assert find_cycle(graph) == []


def test_no_import_cycle_even_through_type_only_imports() -> None:
    """A cycle a type checker walks is a knot a reader walks too: config -> the targets'
    registry -> the target base -> config was one, through `type[Target]` and `Check`."""
    graph = import_graph(type_only=True)
    assert graph["lab.targets.registry"] == {"lab.errors"}  # names, and its one error
    assert "lab.doctor" not in graph["lab.targets.base"]
    assert find_cycle(graph) == []


def test_lab_imports_only_absolutely() -> None:
    """The checker reads absolute imports, and lab.docker relies on them: in lab/docker/,
    ``import docker`` is the Docker SDK only because no import is relative."""
    relative = [f"{path.relative_to(PACKAGE.parent)}:{node.lineno}"
                for path in sorted(PACKAGE.rglob("*.py"))
                for node in ast.walk(ast.parse(path.read_text()))
                if isinstance(node, ast.ImportFrom) and node.level]
    assert relative == []


def test_the_docker_wing_does_not_hide_the_docker_sdk() -> None:
    import docker

    import lab.docker.dockerengine
    import lab.docker.engine

    assert docker.__name__ == "docker" and hasattr(docker, "from_env")
    assert lab.docker.engine.docker is docker
    assert lab.docker.dockerengine.docker is docker
    assert sys.modules["docker"] is docker is not sys.modules["lab.docker"]


def test_harness_imports_first_then_the_release() -> None:
    """`lab up` imports lab.harness first; the release (which uses harness) after it."""
    code = ("import lab.harness\n"
            "from lab.release import ReleaseReport, release\n"
            "import lab.release.cycle as cycle\n"
            "assert release is cycle.release and ReleaseReport is cycle.ReleaseReport\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False, cwd=PACKAGE.parent, timeout=120)
    assert done.returncode == 0, done.stderr


def test_config_does_not_import_a_balancer() -> None:
    graph = import_graph()
    assert graph["lab.config"] & {"lab.balancers.base", "lab.balancers.haproxy"} == set()


def test_config_does_not_import_a_target() -> None:
    """lab.yml names targets through their registry; a target's module is imported only when
    a lab uses it or has its section, never by config.py itself."""
    graph = import_graph()
    assert "lab.targets.registry" in graph["lab.config"]
    assert graph["lab.config"] & {"lab.targets.base", "lab.targets.docker",
                                  "lab.targets.vagrant", "lab.docker.dockerengine"} == set()


def test_the_vagrant_target_uses_the_shared_docker_engine() -> None:
    """What both targets need from Docker is lab.docker.dockerengine's, not the docker
    target's."""
    graph = import_graph()
    assert "lab.docker.dockerengine" in graph["lab.targets.vagrant"]
    source = (PACKAGE / "targets" / "vagrant.py").read_text()
    assert "engine._" not in source
