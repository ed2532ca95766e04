"""The package's shape (issue 10): one module per stage, each small, self-described, and no import cycle."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "m2nist_utils"
MODULES = sorted(p for p in PACKAGE.glob("*.py"))


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def package_imports(path: Path) -> set[str]:
    """The package modules that ``path`` imports anywhere, inside functions too (a lazy import is an edge)."""
    found = set()
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:  # from .x import y
                found.add(node.module.split(".")[0])
            else:  # from . import x, y
                found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("m2nist_utils."):
            found.add(node.module.split(".")[1])
    return found - {path.stem}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` (module -> modules it imports) as a path, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = 1
        stack.append(module)
        for other in sorted(graph.get(module, ())):
            if state.get(other) == 1:
                return stack[stack.index(other) :] + [other]
            if other not in state and (cycle := visit(other)):
                return cycle
        stack.pop()
        state[module] = 2
        return None

    for module in sorted(graph):
        if module not in state and (cycle := visit(module)):
            return cycle
    return None


def test_no_import_cycle_anywhere_in_the_package():
    graph = {path.stem: package_imports(path) for path in MODULES}
    assert graph["artifacts"] >= {"classifier", "segmenter", "training", "freeze"}  # the parser sees imports
    assert find_cycle(graph) is None, f"import cycle: {' -> '.join(find_cycle(graph))}"


def test_a_lazy_import_counts_as_an_edge():
    graph = {"models": {"freeze"}, "freeze": {"models"}, "viz": set()}
    assert find_cycle(graph) == ["freeze", "models", "freeze"]


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_no_module_over_350_lines(path):
    assert len(path.read_text().splitlines()) <= 350


@pytest.mark.parametrize(
    "path", [p for p in MODULES if p.stem not in ("__init__", "__main__", "_tf")], ids=lambda p: p.name
)
def test_each_module_docstring_names_what_it_holds(path):
    tree = _tree(path)
    doc = ast.get_docstring(tree) or ""
    public = [
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.ClassDef) and not node.name.startswith("_")
    ]
    missing = [name for name in public if name not in doc]
    assert not missing, f"{path.name}: its docstring does not name {missing}"


def test_init_lists_every_module():
    doc = ast.get_docstring(_tree(PACKAGE / "__init__.py"))
    missing = [p.stem for p in MODULES if p.stem not in ("__init__", "_tf") and f"``{p.stem}``" not in doc]
    assert not missing, f"__init__'s docstring does not list {missing}"
