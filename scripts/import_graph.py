"""Check that the project's packages import each other without a cycle.

Every module of preprocessing, training, inference and orchestration is parsed with ``ast``:
imports at module level and inside functions, ``import a.b`` and ``from a.b import c`` (``c``
counts as the module ``a.b.c`` where that is one), relative imports resolved against the
importing module's package. Imports under ``if TYPE_CHECKING:`` are left out: they never run.
An edge goes from the importing module to the deepest project module the import names.

  python scripts/import_graph.py          # "no import cycle among N modules", or the cycle (exit 1)

Standard library only; tests/unit/test_import_graph.py runs the same check.
"""

from __future__ import annotations

import ast
import sys
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("preprocessing", "training", "evaluation", "inference", "orchestration")


def project_modules(root: Path = REPO, packages: tuple[str, ...] = PACKAGES) -> dict[str, Path]:
    """Dotted module name -> source file, packages (``__init__.py``) included."""
    modules = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join(parts)] = path
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Import statements anywhere in the tree, except the body of ``if TYPE_CHECKING:``."""
    found = []
    pending = [tree]
    while pending:
        node = pending.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        children = list(ast.iter_child_nodes(node))
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            children = node.orelse
        pending.extend(children)
    return found


def _deepest_module(name: str, modules: dict[str, Path]) -> str | None:
    """``name`` itself if it is a project module, else its longest prefix that is one."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in modules:
            return candidate
    return None


def imported_modules(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules ``module`` imports: ``from a import b`` names ``a.b`` where that is a
    module and ``a`` otherwise; ``import a.b.c`` the deepest of ``a.b.c``, ``a.b``, ``a``."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names = set()
    for node in _runtime_imports(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
            continue
        base = node.module or ""
        if node.level:
            anchor = package.split(".")
            anchor = anchor[: len(anchor) - (node.level - 1)]
            base = ".".join([*anchor, base] if base else anchor)
        for alias in node.names:
            names.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
    targets = {_deepest_module(name, modules) for name in names}
    return {target for target in targets if target not in (None, module)}


def import_graph(root: Path = REPO, packages: tuple[str, ...] = PACKAGES) -> dict[str, set[str]]:
    """Project module -> the project modules it imports (itself never included)."""
    modules = project_modules(root, packages)
    return {module: imported_modules(module, path, modules) for module, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path that ends where it starts, or None."""
    try:
        TopologicalSorter(graph).prepare()
    except CycleError as error:
        return list(reversed(error.args[1]))  # graphlib lists it against the import direction
    return None


def main(argv: list[str] | None = None) -> int:
    root = Path(argv[0]).resolve() if argv else REPO
    graph = import_graph(root, PACKAGES)
    cycle = find_cycle(graph)
    if cycle is None:
        print(f"no import cycle among {len(graph)} modules")
        return 0
    print(f"import cycle: {' -> '.join(cycle)}")
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
