"""The layout the README describes holds: the core (harness/) imports no benchmark or model
module, its modules import one another without a cycle, and no function in it is long."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).parent.parent
CORE = ROOT / "harness"
LONGEST = 60  # lines of a function body, its docstring aside


def modules() -> dict[str, ast.Module]:
    out = {}
    for path in sorted(CORE.rglob("*.py")):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        out[name] = ast.parse(path.read_text(), filename=str(path))
    return out


def imported(tree: ast.Module) -> set[str]:
    """Every module an import statement names, at any depth (lazy imports included)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_the_core_imports_no_benchmark_or_model_module():
    for name, tree in modules().items():
        outside = sorted(m for m in imported(tree) if m.split(".")[0] in ("tasks", "baselines"))
        assert not outside, f"{name} imports {outside}"


def test_core_modules_import_one_another_without_a_cycle():
    trees = modules()
    graph = {
        name: {m for m in imported(tree) if m in trees and m != name}
        for name, tree in trees.items()
    }
    # The package `harness` itself only re-exports lazily; an edge into it is not a dependency.
    graph = {name: deps - {"harness"} for name, deps in graph.items()}
    visiting, done, cycle = set(), set(), []

    def visit(node: str, path: list[str]) -> None:
        if node in done or cycle:
            return
        if node in visiting:
            cycle.extend(path[path.index(node) :] + [node])
            return
        visiting.add(node)
        for dep in sorted(graph[node]):
            visit(dep, [*path, dep])
        visiting.discard(node)
        done.add(node)

    for name in sorted(graph):
        visit(name, [name])
    assert not cycle, " -> ".join(cycle)


def test_no_core_function_is_longer_than_sixty_lines():
    long = []
    for name, tree in modules().items():
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                body = node.body
                if (
                    body
                    and isinstance(body[0], ast.Expr)
                    and isinstance(body[0].value, ast.Constant)
                ):
                    body = body[1:]  # the docstring
                if body and body[-1].end_lineno - body[0].lineno + 1 > LONGEST:
                    long.append(f"{name}.{node.name}")
    assert not long, long
