"""Imports flow one way, and nothing imports itself back: read from the source, every import statement
(at module level and inside functions alike), without running anything.

    tfxp/                       the bottom: imports nothing of the project
    components/__init__.py      sets the one Keras: anything above serving/ may import the package itself
    components/core/            the vocabulary of the data scientist's files -> tfxp
    the data scientist's files  (components/*.py, tests/datasets/*) -> components/core
    components/training, custom the platform -> core, tfxp (never a user package by name)
    data/, serving/             products of their own: data -> core, tfxp; serving -> tfxp only
    pipeline/                   wires and runs everything below
    bench/                      -> everything but tests/
    tests/                      on top
"""
import ast
import os
from typing import Dict, Iterator, List, Set, Tuple

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PACKAGES = ("tfxp", "components", "data", "serving", "pipeline", "bench", "tests")
USER_FILES = {"components.features", "components.model", "components.preprocessing"}

# What each layer may import (by module prefix); a module belongs to its longest matching layer.
ALLOWED = {
    "tfxp": {"tfxp"},
    "components": {"components"},  # components/__init__.py: lazy access to custom artifact types
    "components.core": {"components.core", "tfxp"},
    "user": {"components", "components.core", "tfxp"},
    "components.training": {"components.core", "components.training", "components.custom.tflite_options", "tfxp"},
    "components.custom": {"components.core", "components.custom", "components.training", "tfxp"},
    "data": {"data", "components.core", "tfxp"},
    "serving": {"serving", "tfxp"},
    "pipeline": {"pipeline", "components", "data", "serving", "tfxp"},
    "bench": {"bench", "pipeline", "components", "data", "serving", "tfxp"},
    "tests": set(PACKAGES),
}


def module_name(path: str) -> str:
    name = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
    return name[: -len(".__init__")] if name.endswith(".__init__") else name


def project_modules() -> Dict[str, str]:
    """{module name: file} of every .py file of the project's packages."""
    modules = {}
    for package in PACKAGES:
        for folder, _, files in os.walk(os.path.join(ROOT, package)):
            for name in files:
                if name.endswith(".py"):
                    modules[module_name(os.path.join(folder, name))] = os.path.join(folder, name)
    return modules


MODULES = project_modules()


def imported_modules(module: str, path: str) -> Iterator[Tuple[str, int]]:
    """(project module, line) for each import in ``path``, wherever it is; ``from a import b`` counts as
    ``a.b`` when that is a module, else as ``a``."""
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parent = ".".join(parts[: len(parts) - node.level + 1])
                base = f"{parent}.{base}" if base else parent
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base for alias in node.names]
        else:
            continue
        for target in targets:
            if target.split(".")[0] in PACKAGES:
                while target and target not in MODULES:  # `import a.b.c` of a name inside a module
                    target = target.rpartition(".")[0]
                if target:
                    yield target, node.lineno


def graph() -> Dict[str, Set[str]]:
    return {module: {target for target, _ in imported_modules(module, path)} - {module}
            for module, path in MODULES.items()}


def layer(module: str) -> str:
    if module in USER_FILES or module.startswith("tests.datasets."):
        return "user"
    return max((name for name in ALLOWED if module == name or module.startswith(name + ".")), key=len)


def allowed(importer: str, target: str) -> bool:
    if target == "components" and layer(importer) not in ("tfxp", "serving"):
        return True  # the package itself: it sets the one Keras before TensorFlow is imported
    if layer(importer) == layer(target) == "user":
        return True  # the data scientist's files: their own, or another package's (the test sets reuse the sample's model)
    return any(target == prefix or target.startswith(prefix + ".") for prefix in ALLOWED[layer(importer)])


def test_every_import_goes_down_the_layers():
    wrong = [f"{MODULES[module]}:{line}: {module} ({layer(module)}) imports {target} ({layer(target)})"
             for module, path in sorted(MODULES.items()) for target, line in imported_modules(module, path)
             if not allowed(module, target)]
    assert wrong == [], "\n".join(wrong)


def cycles(edges: Dict[str, Set[str]]) -> List[List[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack: Set[str] = set()
    found = []
    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
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
    return found


def test_no_module_imports_itself_back_not_even_inside_a_function():
    # A package's __init__ is run by importing any module under it: that edge is no cycle of code.
    edges = {module: {t for t in targets if not module.startswith(t + ".")} for module, targets in graph().items()}
    assert cycles(edges) == []


@pytest.mark.parametrize("edges, expected", [
    ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, [["a", "b", "c"]]),
    ({"a": {"b"}, "b": set()}, []),
])
def test_the_cycle_finder_finds_cycles(edges, expected):
    assert cycles(edges) == expected


def test_the_walk_sees_imports_inside_functions():
    imports = dict(imported_modules("pipeline.cli", MODULES["pipeline.cli"]))
    assert "pipeline.predict_command" in imports  # imported inside build_parser()
