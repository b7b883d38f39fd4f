"""The package's import structure: imports only go downwards, never in a circle.

Every ``coursekit`` module gets a rank (the layers of ARCHITECTURE.md). An import of another
coursekit module, at module level *or inside a function*, must go to a strictly lower rank or to
the same rank without closing a cycle; the library never imports the course platform; and the
library has no function-level imports of coursekit modules at all (they hide such ties).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "coursekit"

# Lowest first. A module matches the longest prefix listed here.
RANKS: dict[str, int] = {
    "coursekit": 0,
    "coursekit.files": 0,
    "coursekit.runtime": 0,
    "coursekit.timing": 0,
    "coursekit.tokenize": 1,
    "coursekit.data": 1,
    "coursekit.dropout": 1,
    "coursekit.attention": 2,
    "coursekit.positional": 2,
    "coursekit.metrics": 2,
    "coursekit.layers": 3,
    "coursekit.train.losses": 3,
    "coursekit.train.schedules": 3,
    "coursekit.rnn": 4,
    "coursekit.models": 4,
    "coursekit.train": 5,
    "coursekit.generate": 5,
    "coursekit.scaling": 5,
    "coursekit.distributed": 5,
    "coursekit.long_context": 6,
    "coursekit.efficient": 6,
    "coursekit.hf": 6,
    "coursekit.align": 6,
    # the course platform
    "coursekit.viz": 7,
    "coursekit.progress": 8,
    "coursekit.exercises": 9,
    "coursekit.doctor": 10,
    "coursekit.hosted": 10,
    "coursekit.site": 10,
    "coursekit.cli": 11,
}
PLATFORM = 7


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def rank(module: str) -> int:
    best = None
    for prefix in RANKS:
        if (module == prefix or module.startswith(prefix + ".")) and (
            best is None or len(prefix) > len(best)
        ):
            best = prefix
    if best is None:
        raise AssertionError(f"{module} has no rank: add it to RANKS in tests/test_layering.py")
    return RANKS[best]


def _resolve(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(path: Path) -> list[tuple[str, int, bool]]:
    """(imported coursekit module, line, inside a function?) for every import in ``path``."""
    module = _module_name(path)
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: list[tuple[str, int, bool]] = []

    def visit(node: ast.AST, in_function: bool, in_type_checking: bool) -> None:
        for child in ast.iter_child_nodes(node):
            func = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            tc = in_type_checking or (
                isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test)
            )
            if isinstance(child, ast.Import) and not tc:
                for alias in child.names:
                    if alias.name.startswith("coursekit"):
                        found.append((alias.name, child.lineno, func))
            elif isinstance(child, ast.ImportFrom) and not tc:
                target = _resolve(child, module, path.name == "__init__.py")
                if target.startswith("coursekit"):
                    for alias in child.names:  # `from coursekit.x import y` may import a module y
                        sub = f"{target}.{alias.name}"
                        is_module = (PACKAGE.parent / Path(*sub.split("."))).with_suffix(
                            ".py"
                        ).exists() or (PACKAGE.parent / Path(*sub.split("."))).is_dir()
                        found.append((sub if is_module else target, child.lineno, func))
            visit(child, func, tc)

    visit(tree, False, False)
    return found


MODULES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: _module_name(p))
def test_imports_go_downwards(path: Path) -> None:
    module = _module_name(path)
    own = rank(module)
    problems = []
    for target, line, in_function in _imports(path):
        if target == module or module.startswith(target + "."):
            continue  # a package's own __init__ (always imported first anyway)
        theirs = rank(target)
        if theirs > own:
            problems.append(f"line {line}: imports {target} (rank {theirs}) from rank {own}")
        if own < PLATFORM <= theirs:
            problems.append(f"line {line}: the library imports the course platform ({target})")
        if in_function and own < PLATFORM:
            problems.append(f"line {line}: function-level import of {target} in the library")
    assert not problems, f"{module}:\n" + "\n".join(problems)


def _with_packages(target: str) -> set[str]:
    """Importing ``a.b.c`` also runs ``a.b``'s ``__init__`` (the root package is left out)."""
    parts = target.split(".")
    return {".".join(parts[:i]) for i in range(2, len(parts) + 1)}


def test_no_import_cycles() -> None:
    graph: dict[str, set[str]] = {}
    for path in MODULES:
        module = _module_name(path)
        graph[module] = {
            dep
            for t, _, _ in _imports(path)
            for dep in _with_packages(t)
            if dep != module and not module.startswith(dep + ".")
        }
    # Tarjan-free cycle search: depth-first with colours
    state: dict[str, int] = {}
    stack: list[str] = []

    def dfs(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in graph:
                continue
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := dfs(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := dfs(node)):
            pytest.fail("import cycle: " + " -> ".join(cycle))


def test_every_module_has_a_rank() -> None:
    for path in MODULES:
        rank(_module_name(path))
