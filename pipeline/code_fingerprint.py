"""Content fingerprints of user code, for TFX caching.

Transform and Trainer reference user code by module path
(``components.preprocessing.preprocessing_fn``), so TFX's cache key would not
change when a data scientist edits the code. ``module_fingerprint`` hashes the
module's source and every project module it imports (transitively); it goes into
the component's ``custom_config``, so an edit to ``components/model.py`` re-runs
the Trainer (and what follows) but leaves Transform cached.
"""
from __future__ import annotations

import ast
import hashlib
import importlib.util
import os
from typing import Iterable, Set

PROJECT_PACKAGES = ("components", "pipeline", "data", "serving")


def _source_file(module: str):
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    return spec.origin if spec and spec.origin and spec.origin.endswith(".py") else None


class _ImportCollector(ast.NodeVisitor):
    """Module-level imports (including in if/try/class bodies), not those inside functions:
    a lazy import in a function (e.g. a PEP 562 ``__getattr__``) is not a dependency of
    whoever imports the module."""

    def __init__(self, package: str):
        self.package = package
        self.modules = []

    def visit_FunctionDef(self, node):  # noqa: N802
        pass

    visit_AsyncFunctionDef = visit_FunctionDef
    visit_Lambda = visit_FunctionDef

    def visit_Import(self, node):  # noqa: N802
        self.modules.extend(alias.name for alias in node.names)

    def visit_ImportFrom(self, node):  # noqa: N802
        base = node.module or ""
        if node.level:
            parts = self.package.split(".")
            base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
        self.modules.append(base)
        # `from components import features` imports a module, not only a name.
        self.modules.extend(f"{base}.{alias.name}" for alias in node.names)


def _imported_modules(path: str, module: str) -> Iterable[str]:
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), filename=path)
    collector = _ImportCollector(module if path.endswith("__init__.py") else module.rpartition(".")[0])
    collector.visit(tree)
    return collector.modules


def project_source_files(module: str) -> Set[str]:
    """Source files of ``module``, its parent packages, and the project modules it imports."""
    seen_modules, files = set(), set()
    pending = [module]
    while pending:
        name = pending.pop()
        if name in seen_modules or name.split(".")[0] not in PROJECT_PACKAGES:
            continue
        seen_modules.add(name)
        parts = name.split(".")
        pending.extend(".".join(parts[:i]) for i in range(1, len(parts)))  # parent __init__s
        path = _source_file(name)
        if path is None:
            continue
        files.add(path)
        pending.extend(_imported_modules(path, name))
    return files


def module_fingerprint(module: str) -> str:
    files = project_source_files(module)
    if not files:
        raise ValueError(f"cannot find the source of module {module!r}")
    digest = hashlib.sha256()
    for path in sorted(files):
        digest.update(os.path.basename(os.path.dirname(path)).encode() + b"/" + os.path.basename(path).encode())
        with open(path, "rb") as f:
            digest.update(hashlib.sha256(f.read()).digest())
    return digest.hexdigest()[:16]
