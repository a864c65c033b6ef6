"""No import cycle inside proxy/ or components/, counting every import statement.

Imports inside functions and under TYPE_CHECKING count too: linters and the
interpreter miss a cycle hidden that way, but it still ties two modules together.
The graph comes from the source's AST (nothing is imported), the cycle search from
the standard library's graphlib.
"""

import ast
import graphlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("proxy", "components")


def _module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _nearest_module(name: str, modules: set[str]) -> str | None:
    """`name` itself, or the innermost package of it that is one of `modules`."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def import_graph(root: Path, packages: tuple[str, ...]) -> dict[str, set[str]]:
    """Module -> the modules of `packages` it imports anywhere in its source."""
    files = {
        _module_name(path, root): path
        for package in packages
        for path in (root / package).rglob("*.py")
    }
    modules = set(files)
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str | None] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets.update(_nearest_module(alias.name, modules) for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                for alias in node.names:  # `from pkg import module` imports the module
                    targets.add(_nearest_module(f"{base}.{alias.name}", modules))
        graph[name] = {target for target in targets if target not in (None, name)}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as error:
        cycle: list[str] = error.args[1]
        return cycle
    return None


def test_proxy_and_components_have_no_import_cycle() -> None:
    graph = import_graph(ROOT, PACKAGES)
    assert {"proxy.server", "components.llm_proxy"} <= set(graph)  # the walk found them
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])


def test_the_supervisor_takes_its_worker_instead_of_importing_the_server() -> None:
    graph = import_graph(ROOT, PACKAGES)
    assert "proxy.workers" in graph["proxy.server"]
    assert "proxy.server" not in graph["proxy.workers"]


@pytest.mark.parametrize(
    "hidden",
    [
        "def later() -> None:\n    from pkg import a  # noqa\n",
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import a\n",
        "import pkg.a\n",
    ],
    ids=["inside-a-function", "type-checking-only", "plain"],
)
def test_a_cycle_is_found_however_the_import_is_written(tmp_path: Path, hidden: str) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from pkg.b import thing\n")
    (package / "b.py").write_text(f"thing = 1\n{hidden}")
    cycle = find_cycle(import_graph(tmp_path, ("pkg",)))
    assert set(cycle or ()) == {"pkg.a", "pkg.b"}
