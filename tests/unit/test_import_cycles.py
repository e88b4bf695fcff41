"""No import cycles inside `sync_core` or `emulators`.

Walks every module's imports with `ast` (absolute and relative, at any depth
in the file, so function-level imports count too; `if TYPE_CHECKING:` blocks
do not, they never run) and looks for strongly connected components. A cycle
is how a lower module ends up depending on an upper one: it breaks as soon as
someone imports the modules in a new order, and it hides which module owns
what. A synthetic package checks that the walk really finds cycles, so the
package tests cannot pass by seeing no edges at all.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def module_names(root: Path, package: str) -> dict[str, Path]:
    """Every module of `package` under `root`, by dotted name."""
    modules = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def is_type_checking(test: ast.expr) -> bool:
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    return isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"


def import_statements(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import that can run, at any depth; `if TYPE_CHECKING:` bodies never do."""
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
            return
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def source_module(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    """The absolute name `from ... import` reads from, relative levels resolved."""
    if not node.level:
        return node.module or ""
    # `from . import x` in a package's __init__ means the package itself
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def import_graph(root: Path, package: str) -> dict[str, set[str]]:
    """Edges between the package's own modules (imports from outside are left out).

    `from pkg import name` is an edge to `pkg.name` when that is a module, else
    to `pkg`.
    """
    modules = module_names(root, package)
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        targets: set[str] = set()
        for node in import_statements(tree):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
                continue
            source = source_module(node, name, path.name == "__init__.py")
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                targets.add(submodule if submodule in modules else source)
        # a module naming itself (`from pkg import x` inside pkg) is no cycle
        graph[name] = {target for target in targets if target in modules} - {name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return sorted(found)


def describe(found: list[list[str]], graph: dict[str, set[str]]) -> str:
    lines = []
    for component in found:
        members = set(component)
        lines.append("cycle: " + ", ".join(component))
        for module in component:
            for target in sorted(graph[module] & members):
                lines.append(f"    {module} -> {target}")
    return "\n".join(lines)


@pytest.mark.parametrize(
    "package",
    [
        "sync_core",
        "emulators",
    ],
)
def test_package_has_no_import_cycles(package: str) -> None:
    graph = import_graph(ROOT, package)
    # guards against a walk that silently finds nothing (wrong root, wrong name)
    assert len(graph) > 10
    assert sum(len(targets) for targets in graph.values()) > 10
    found = cycles(graph)
    assert not found, f"import cycles in {package}:\n" + describe(found, graph)


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def test_detects_cycles_of_every_import_form(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "pkg/__init__.py": "from pkg.api import run\n",
            "pkg/api.py": "from pkg import core\n",
            # a relative import at function level closes the loop api -> core -> api
            "pkg/core.py": "def later():\n    from .api import run\n",
            "pkg/sub/__init__.py": "",
            "pkg/sub/low.py": "import pkg.sub.high\n",
            "pkg/sub/high.py": "from .. import sub\nfrom ..sub.low import x\n",
            "pkg/typed.py": (
                "from typing import TYPE_CHECKING\n"
                "import typing\n"
                "if TYPE_CHECKING:\n    from pkg.hinted import T\n"
                "if typing.TYPE_CHECKING:\n    import pkg.hinted\n"
                "else:\n    import pkg.api\n"
            ),
            "pkg/hinted.py": "from pkg.typed import T\n",
        },
    )
    graph = import_graph(tmp_path, "pkg")
    assert graph["pkg"] == {"pkg.api"}
    assert graph["pkg.api"] == {"pkg.core"}
    assert graph["pkg.core"] == {"pkg.api"}
    assert graph["pkg.sub.low"] == {"pkg.sub.high"}
    # `from .. import sub` names the package pkg.sub, a module of its own
    assert graph["pkg.sub.high"] == {"pkg.sub", "pkg.sub.low"}
    # the hinted imports would close typed <-> hinted; the else branch does run
    assert graph["pkg.typed"] == {"pkg.api"}
    found = cycles(graph)
    assert found == [["pkg.api", "pkg.core"], ["pkg.sub.high", "pkg.sub.low"]]
    message = describe(found, graph)
    assert "pkg.core -> pkg.api" in message
    assert "pkg.sub.low -> pkg.sub.high" in message


def test_from_package_import_name_is_an_edge_to_the_package(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "pkg/__init__.py": "from pkg.a import thing\n",
            "pkg/a.py": "from pkg import b\nthing = 1\n",
            "pkg/b.py": "from pkg import thing\n",
        },
    )
    graph = import_graph(tmp_path, "pkg")
    assert graph["pkg.b"] == {"pkg"}
    assert cycles(graph) == [["pkg", "pkg.a", "pkg.b"]]


def test_acyclic_package_passes(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "pkg/__init__.py": "from pkg.top import run\n",
            "pkg/top.py": "from pkg import low\nfrom pkg.low import value\n",
            "pkg/low.py": "import json\nvalue = 1\n",
        },
    )
    graph = import_graph(tmp_path, "pkg")
    assert graph["pkg.top"] == {"pkg.low"}
    assert cycles(graph) == []
