"""The layout docs/architecture.md describes holds: the core (harness/) imports no benchmark or
model module and names none, constants.py is a leaf, only the run and train entry points read
the CLI's settings, training and reporting sit above the evaluation core, the modules import one
another without a cycle and at most twelve deep, no function is long, and the wheel installs
one top-level name."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
CORE = ROOT / "harness"
OUTSIDE_CORE = [["harness", "tasks"], ["harness", "baselines"]]
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
        outside = sorted(m for m in imported(tree) if m.split(".")[:2] in OUTSIDE_CORE)
        assert not outside, f"{name} imports {outside}"


def core_graph() -> dict[str, set[str]]:
    trees = modules()
    # The package `harness` itself only re-exports lazily; an edge into it is not a dependency.
    return {
        name: {m for m in imported(tree) if m in trees and m != name} - {"harness"}
        for name, tree in trees.items()
    }


def test_the_defaults_module_is_a_leaf():
    assert core_graph()["harness.constants"] == set()


def test_only_the_cli_and_the_run_and_train_entry_points_read_the_cli_settings():
    """Scoring, caching, losses and the encoders take their defaults from harness.constants,
    not from harness.config (the CLI's settings, which pulls in option parsing)."""
    readers = {name for name, deps in core_graph().items() if "harness.config" in deps}
    assert readers <= {
        "harness.cli.reference",
        "harness.cli.run",
        "harness.cli.train",
        "harness.evaluation",
        "harness.pipeline.context",
        "harness.pipeline.plan",
        # reads a result's training settings, where a setting older runs lack is its default
        "harness.seeds",
        "harness.training.loop",
    }, readers
    for package in ("tasks", "baselines"):
        for path in (ROOT / package).rglob("*.py"):
            assert "harness.config" not in imported(ast.parse(path.read_text())), path


def test_training_and_reporting_sit_above_the_evaluation_core():
    """Only the CLI reaches into harness.training and harness.reporting (and they into
    themselves); the evaluation core never imports either."""
    for name, deps in core_graph().items():
        for upper in ("harness.training", "harness.reporting"):
            if name.startswith(upper) or name.startswith("harness.cli"):
                continue
            assert not {d for d in deps if d.startswith(upper)}, f"{name} imports {upper}"


def test_the_core_names_no_model_or_benchmark_module():
    """The model table lives in baselines/ and the task specs in tasks/; the core finds them
    through the registry's package lists only."""
    named = []
    for name, tree in modules().items():
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and node.value.startswith(("harness.tasks.", "harness.baselines."))
            ):
                named.append(f"{name}: {node.value}")
    assert not named, named


def test_the_import_graph_is_at_most_twelve_layers_deep():
    """The longest chain of imports inside the core (lazy imports included), counted in
    modules; docs/architecture.md gives the chain."""
    graph = core_graph()
    depth: dict[str, int] = {}

    def layers(node: str) -> int:
        if node not in depth:
            depth[node] = 0  # a cycle fails the test below, not this one
            depth[node] = 1 + max((layers(d) for d in graph[node]), default=0)
        return depth[node]

    assert max(layers(name) for name in graph) <= 12


def test_core_modules_import_one_another_without_a_cycle():
    graph = core_graph()
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


def declared_packages() -> tuple[list[str], dict[str, str]]:
    setup = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    return setup["packages"], setup["package-dir"]


def test_every_package_folder_installs_under_the_one_import_name():
    packages, folders = declared_packages()
    assert all(p == "harness" or p.startswith("harness.") for p in packages), packages
    assert folders == {"harness.tasks": "tasks", "harness.baselines": "baselines"}
    found = set()
    for top, package in (("harness", "harness"), *((f, p) for p, f in folders.items())):
        for init in (ROOT / top).rglob("__init__.py"):
            parts = init.parent.relative_to(ROOT / top).parts
            found.add(".".join((package, *parts)))
    assert found == set(packages), (
        f"pyproject.toml lists {sorted(packages)}, the tree has {sorted(found)}"
    )


@pytest.mark.slow
def test_the_wheel_adds_no_top_level_name_but_harness(tmp_path):
    """Build the wheel from a copy of the sources and read its top-level names: installing the
    project must not write `tasks` or `baselines` (common names) into site-packages."""
    src = tmp_path / "src"
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("harness", "tasks", "baselines"):
        shutil.copytree(ROOT / name, src / name, ignore=skip)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
        + ["-w", str(tmp_path / "dist"), str(src)],
        check=True,
        capture_output=True,
    )
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"harness"}, tops
    for path in (
        "harness/tasks/libdocs.py",
        "harness/baselines/metaembed.py",
        "harness/tasks/data/libdocs/pages.jsonl.gz",
        "harness/baselines/checkpoints/metaembed-mini/metaembed.safetensors",
    ):
        assert path in names, path
    # installed on its own, the wheel runs from anywhere: its benchmarks, data and models resolve
    site = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "-q",
            "--target",
            str(site),
            str(wheel),
        ],
        check=True,
        capture_output=True,
    )
    probe = (
        "import harness, harness.tasks.libdocs as libdocs, harness.baselines.metaembed as m;"
        "from harness.registry import models, task_specs;"
        "print(harness.__file__, libdocs.DATA.is_dir(), len(task_specs()), len(models()))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(site)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert out[0].startswith(str(site)) and out[1] == "True", out
    assert int(out[2]) > 50 and int(out[3]) > 5, out
