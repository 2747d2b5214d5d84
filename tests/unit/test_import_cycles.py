"""No import cycles in the package: its modules import each other as a tree (a DAG), so each
can be read, and imported, after the ones it names.

Counted: the imports a module runs when it is imported (module level, also inside ``if`` and
``try``), not those under ``if TYPE_CHECKING:`` (annotations only) and not the lazy ones inside
functions (which run later, by design: the CLI and the pytest plugin import on demand). The
implicit import of a parent package is not counted either; ``from pkg import name`` counts as an
import of the submodule ``pkg.name`` when there is one, else of ``pkg`` itself.
"""

from __future__ import annotations

import ast
from pathlib import Path

import puregrpc_etcd

PACKAGE = Path(puregrpc_etcd.__file__).parent


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def import_graph(root: Path, skip: tuple[str, ...] = ("_proto",)) -> dict[str, set[str]]:
    """Module -> the package modules it imports when imported (see the module docstring)."""
    modules = {
        _module_name(path, root): path
        for path in root.rglob("*.py")
        if not any(part in skip for part in path.parts)
    }
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found: set[str] = set()

        def visit(body: list[ast.stmt], package: str = package, found: set[str] = found) -> None:
            for node in body:
                if isinstance(node, ast.If):
                    if not _is_type_checking(node.test):
                        visit(node.body)
                        visit(node.orelse)
                elif isinstance(node, ast.Try):
                    visit(node.body)
                    for handler in node.handlers:
                        visit(handler.body)
                    visit(node.orelse)
                    visit(node.finalbody)
                elif isinstance(node, ast.Import):
                    found.update(alias.name for alias in node.names)
                elif isinstance(node, ast.ImportFrom):
                    if node.level:
                        base = package.split(".")[: len(package.split(".")) - node.level + 1]
                        target = ".".join(base + ([node.module] if node.module else []))
                    else:
                        target = node.module or ""
                    for alias in node.names:
                        sub = f"{target}.{alias.name}"
                        found.add(sub if sub in modules else target)

        visit(ast.parse(path.read_text()).body)
        graph[name] = {module for module in found if module in modules and module != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle (its modules in order, the first repeated at the end), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def walk(module: str) -> list[str] | None:
        state[module] = 1
        path.append(module)
        for imported in sorted(graph[module]):
            if state.get(imported) == 1:
                return [*path[path.index(imported) :], imported]
            if imported not in state:
                cycle = walk(imported)
                if cycle:
                    return cycle
        path.pop()
        state[module] = 2
        return None

    for module in sorted(graph):
        if module not in state:
            cycle = walk(module)
            if cycle:
                return cycle
    return None


def test_the_package_has_no_import_cycles() -> None:
    graph = import_graph(PACKAGE)
    assert len(graph) > 50  # the walk found the package's modules
    assert "puregrpc_etcd.grpc.status" in graph["puregrpc_etcd.grpc.framing"]
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_a_cycle_is_found(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from pkg import b\n")
    (package / "b.py").write_text("from typing import TYPE_CHECKING\nfrom .sub import c\n")
    (package / "sub" / "__init__.py").write_text("")
    (package / "sub" / "c.py").write_text("def f():\n    from pkg import a\n")
    graph = import_graph(package)
    assert find_cycle(graph) is None  # the lazy import in a function does not count
    (package / "sub" / "c.py").write_text("if True:\n    from ..a import x\n")
    assert find_cycle(graph := import_graph(package)) == ["pkg.a", "pkg.b", "pkg.sub.c", "pkg.a"]
    (package / "sub" / "c.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.a import x\n"
    )
    assert find_cycle(import_graph(package)) is None
    assert graph["pkg.b"] == {"pkg.sub.c"}
