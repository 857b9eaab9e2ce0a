"""Content fingerprints of the code each component runs, for TFX caching.

TFX's cache key sees a component's inputs and parameters, not the code it runs: Transform and
Trainer take code by module path, custom components by executor class. Each of them gets a
``code_fingerprint`` parameter: a hash of every project file it can reach, so an edit to any of
them re-runs the component (and what follows) and nothing else.

    AnomaliesGate        components/__init__.py, components/custom/
    Evaluator            components/__init__.py, components/custom/
    Transform            components/__init__.py, components/core/, and the files of the user package
                         that preprocessing.py reaches (its imports, at any depth, in any function)
    Trainer              components/__init__.py, components/core/, components/training/, the user
                         package, and the project files it imports
    Tuner                the Trainer's (tuner_fn builds what the Trainer builds; model.py holds the
                         search space), and components/custom/ (its executor)
    TFLite components    the Trainer's, and components/custom/
    PredictionsToCsv     components/__init__.py, components/core/, components/custom/, and the files of the
                         user package that features.py reaches (the feature list and the task word the CSV)

Platform code counts by whole packages, not by followed imports: code reached through a worker
process (``python -m components.training.worker``), a lazy import inside a function or a module
name in a string is covered too. The user package counts whole for the Trainer; for Transform only
what preprocessing.py imports, so that editing model.py leaves Transform cached.
"""
from __future__ import annotations

import ast
import hashlib
import importlib.util
import os
from typing import Iterable, Set

import components
from components.core.user_code import load_user_code

PLATFORM_DIR = os.path.dirname(os.path.abspath(components.__file__))


def _python_files(directory: str) -> Set[str]:
    return {os.path.join(root, name) for root, dirs, names in os.walk(directory)
            for name in names if name.endswith(".py") and "__pycache__" not in root}


def platform_files(*subpackages: str) -> Set[str]:
    files = {os.path.join(PLATFORM_DIR, "__init__.py")}
    for sub in subpackages:
        files |= _python_files(os.path.join(PLATFORM_DIR, sub))
    return files


def is_platform_file(path: str) -> bool:
    """Platform code: components/__init__.py and the files of components' subpackages (core, training, custom);
    the top-level files of components/ are the sample's user files."""
    path = os.path.abspath(path)
    if not path.startswith(PLATFORM_DIR + os.sep):
        return False
    return os.path.dirname(path) != PLATFORM_DIR or os.path.basename(path) == "__init__.py"


def user_package_files(package: str) -> Set[str]:
    """Every .py file of the user package (for ``components``: its top level, not the platform's subpackages)."""
    directory = os.path.abspath(load_user_code(package).directory)
    files = _python_files(directory)
    if directory == PLATFORM_DIR:
        files = {f for f in files if os.path.dirname(f) == directory}
    return files


class _Imports(ast.NodeVisitor):
    """Every import in a module, module-level or inside functions, as absolute module names.

    Skips the body of a module-level ``__getattr__`` (PEP 562): a lazy attribute there is not a
    dependency of whoever imports the module (components/__init__.py exposes artifact types so).
    """

    def __init__(self, package: str):
        self.package = package  # the package relative imports resolve against
        self.modules = []

    def visit_FunctionDef(self, node):  # noqa: N802
        if node.name != "__getattr__":
            self.generic_visit(node)

    def visit_Import(self, node):  # noqa: N802
        self.modules.extend(alias.name for alias in node.names)

    def visit_ImportFrom(self, node):  # noqa: N802
        base = node.module or ""
        if node.level:
            parts = self.package.split(".")
            parts = parts[: len(parts) - node.level + 1]
            base = ".".join(parts + ([base] if base else []))
        self.modules.append(base)
        # `from . import features` imports a module, not only a name.
        self.modules.extend(f"{base}.{alias.name}" for alias in node.names)


def _module_file(name: str):
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    return spec.origin if spec and spec.origin and spec.origin.endswith(".py") else None


def import_closure(modules: Iterable[str], roots: Iterable[str]) -> Set[str]:
    """Files of ``modules`` and of every module they import (at any depth, also inside functions),
    as far as those files live under one of the ``roots`` folders (the project's own code)."""
    roots = [os.path.abspath(r) + os.sep for r in roots]
    files, seen, pending = set(), set(), list(modules)
    while pending:
        name = pending.pop()
        if not name or name in seen:
            continue
        seen.add(name)
        path = _module_file(name)
        if path is None or not any(os.path.abspath(path).startswith(r) for r in roots):
            continue
        files.add(path)
        parts = name.split(".")
        pending.extend(".".join(parts[:i]) for i in range(1, len(parts)))  # parent __init__s
        with open(path, encoding="utf-8") as f:
            collector = _Imports(name if path.endswith("__init__.py") else name.rpartition(".")[0])
            collector.visit(ast.parse(f.read(), filename=path))
        pending.extend(collector.modules)
    return files


def _user_roots(package: str):
    return [load_user_code(package).directory, PLATFORM_DIR]


def user_module_closure(package: str, module: str) -> Set[str]:
    """What ``<package>.<module>`` runs of the project's code: its file and what it imports."""
    return import_closure([f"{package}.{module}"], _user_roots(package))


def user_package_reach(package: str) -> Set[str]:
    """Every file of the user package, and the project files they import (e.g. a model.py that
    reuses the sample's model: `from components.model import build_model`)."""
    files = user_package_files(package)
    directory = load_user_code(package).directory
    modules = [package + "." + os.path.relpath(f, directory)[:-3].replace(os.sep, ".") for f in files]
    modules = [m[: -len(".__init__")] if m.endswith(".__init__") else m for m in modules]
    return files | import_closure(modules, _user_roots(package))


def fingerprint(files: Iterable[str]) -> str:
    """sha256 over the files' names (relative to their package's parent) and contents."""
    digest = hashlib.sha256()
    for path in sorted(set(files)):
        parent = os.path.dirname(os.path.dirname(path))
        digest.update(os.path.relpath(path, parent).encode() + b"\0")
        with open(path, "rb") as f:
            digest.update(hashlib.sha256(f.read()).digest())
    return digest.hexdigest()[:16]


def gate_fingerprint() -> str:
    return fingerprint(platform_files("custom"))


def evaluator_fingerprint() -> str:
    """The Evaluator's executor (TFX's, which reuses an unchanged baseline's metrics)."""
    return fingerprint(platform_files("custom"))


def transform_fingerprint(user_package: str) -> str:
    return fingerprint(platform_files("core") | user_module_closure(user_package, "preprocessing"))


def trainer_fingerprint(user_package: str) -> str:
    return fingerprint(platform_files("core", "training") | user_package_reach(user_package))


def _training_and_custom(user_package: str) -> str:
    return fingerprint(platform_files("core", "training", "custom") | user_package_reach(user_package))


def tuner_fingerprint(user_package: str) -> str:
    """An edit to model.py (its search space) or to the training code re-runs the Tuner."""
    return _training_and_custom(user_package)


def infra_validator_fingerprint() -> str:
    """The InfraValidator's executor and the server it starts (`tfxp serve`)."""
    import serving
    return fingerprint(platform_files("custom") | _python_files(os.path.dirname(os.path.abspath(serving.__file__))))


def tflite_fingerprint(user_package: str) -> str:
    return _training_and_custom(user_package)


def predictions_csv_fingerprint(user_package: str) -> str:
    """The scored CSV's writer, the task's words (components/core/task.py) and the user's feature list and task."""
    return fingerprint(platform_files("core", "custom") | user_module_closure(user_package, "features"))
