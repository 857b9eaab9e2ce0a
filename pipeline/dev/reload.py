"""The data scientist's files, fresh from disk for every iteration of `tfxp dev`.

The dev process imports TensorFlow, TFX and Beam once; the user's own modules are forgotten before
each iteration (``sys.modules`` and the user-code loader's cache), so Transform, the Trainer and the
config check import what is on disk now. Platform code (components/core, training, custom; pipeline/,
serving/) is not reloaded: a change there needs a new process (the loop restarts itself).
"""
from __future__ import annotations

import importlib
import os
import sys
from typing import Iterable, List, Set

from components.core.user_code import UserCodeError, load_user_code
from pipeline.code_fingerprint import is_platform_file


def user_module_names(package: str, user_dir: str) -> List[str]:
    """The loaded modules that are the data scientist's: the package and its submodules; for the sample's
    package (``components``, whose __init__ and subpackages are the platform's), its top-level modules only."""
    user_dir = os.path.abspath(user_dir)
    names = []
    for name, module in list(sys.modules.items()):
        if name != package and not name.startswith(package + "."):
            continue
        path = getattr(module, "__file__", None)
        if path is None:
            continue
        if os.path.abspath(path).startswith(user_dir + os.sep) and not is_platform_file(path):
            names.append(name)
    return names


def forget_user_code(package: str, files: Iterable[str] = ()) -> List[str]:
    """Drops the user's modules from ``sys.modules`` and the loader's cache: the package's own, and any loaded
    module whose file is one of ``files`` (what the package reaches) and not platform code. Returns their names."""
    try:
        directory = load_user_code(package).directory
    except UserCodeError:
        directory = None
    load_user_code.cache_clear()
    importlib.invalidate_caches()
    if directory is None:
        names = [n for n in sys.modules if n == package or n.startswith(package + ".")]
        names = [n for n in names if not is_platform_file(getattr(sys.modules[n], "__file__", None) or "")]
    else:
        names = user_module_names(package, directory)
    reached = {os.path.abspath(f) for f in files if not is_platform_file(f)}
    names += [n for n, m in list(sys.modules.items())
              if getattr(m, "__file__", None) and os.path.abspath(m.__file__) in reached and n not in names]
    for name in names:
        sys.modules.pop(name, None)
    return names


def check_syntax(files: Iterable[str], root: str) -> None:
    """Compiles each Python file: a syntax error is a UserCodeError naming the file and the line."""
    for path in sorted(files):
        if not path.endswith(".py"):
            continue
        try:
            with open(path, "rb") as f:
                compile(f.read(), path, "exec")
        except SyntaxError as e:
            where = os.path.relpath(path, root)
            raise UserCodeError(f"{where}, line {e.lineno}: SyntaxError: {e.msg}") from None


def platform_files(files: Iterable[str]) -> Set[str]:
    """The files of ``files`` that are platform code (components' subpackages: not reloaded between iterations)."""
    return {os.path.abspath(path) for path in files if path.endswith(".py") and is_platform_file(path)}
