"""The data scientist's package: where the platform finds their three files.

A package (``components`` by default; the config's ``user_package`` names another) holds

    features.py       FEATURES (list of Feature), TASK (what to predict), SLICE_FEATURES (optional)
    preprocessing.py  preprocessing_fn(inputs) -> transformed features and the label
    model.py          build_model(inputs, task, hp) -> compiled Keras model (hp: its hyperparameters)

The platform never imports ``components.features`` itself: it asks ``load_user_code(package)``,
so the same platform code serves any dataset, and tests run it on synthetic feature lists.
"""
from __future__ import annotations

import dataclasses
import functools
import importlib
import importlib.util
import os
from typing import Dict, List, Tuple

from components.core.feature import Feature, by_name, check_feature_list, model_features
from components.core.feature import LABEL_SOURCE
from components.core.task import TASK_TYPES, Task
from tfxp.errors import TfxpError

DEFAULT_PACKAGE = "components"
REQUIRED_MODULES = ("features", "preprocessing", "model")


class UserCodeError(ValueError, TfxpError):
    """The data scientist's files cannot be used as they are: the message names the file."""


@dataclasses.dataclass(frozen=True)
class UserCode:
    package: str
    directory: str
    features: Tuple[Feature, ...]
    task: Task
    slice_features: Tuple[str, ...]

    @property
    def preprocessing_fn(self) -> str:
        """Module path of preprocessing_fn, as Transform takes it."""
        return f"{self.package}.preprocessing.preprocessing_fn"

    @property
    def model_features(self) -> List[Feature]:
        return model_features(self.features)

    @property
    def label_source_names(self) -> List[str]:
        return [f.name for f in self.features if f.kind == LABEL_SOURCE]

    @property
    def feature_by_name(self) -> Dict[str, Feature]:
        return by_name(self.features)

    def file(self, module: str) -> str:
        return os.path.join(self.directory, f"{module}.py")

    def model_module(self):
        """The user's model.py (imports TensorFlow)."""
        return importlib.import_module(f"{self.package}.model")


def _where(package: str, module: str = "features") -> str:
    return f"{package.replace('.', '/')}/{module}.py"


@functools.lru_cache(maxsize=None)
def load_user_code(package: str = DEFAULT_PACKAGE) -> UserCode:
    """Imports ``<package>.features`` (no TensorFlow) and checks what the platform relies on."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise UserCodeError(f"user_package {package!r}: no such Python package on the path (a folder with "
                            f"__init__.py, {', '.join(m + '.py' for m in REQUIRED_MODULES)})")
    directory = list(spec.submodule_search_locations)[0]
    missing = [m for m in REQUIRED_MODULES if not os.path.exists(os.path.join(directory, f"{m}.py"))]
    if missing:
        raise UserCodeError(f"user_package {package!r} ({directory}): missing {', '.join(m + '.py' for m in missing)}")
    where = _where(package)
    try:
        module = importlib.import_module(f"{package}.features")
    except ValueError as e:  # a Feature(...) or task declaration rejected itself
        raise UserCodeError(f"{where}: {e}") from None
    for name in ("FEATURES", "TASK"):
        if not hasattr(module, name):
            raise UserCodeError(f"{where}: must define {name}")
    task = module.TASK
    if not isinstance(task, TASK_TYPES):
        raise UserCodeError(f"{where}: TASK must be one of {', '.join(t.__name__ for t in TASK_TYPES)}(label=...), "
                            f"got {task!r}")
    features = tuple(module.FEATURES)
    try:
        check_feature_list(features, label_key=task.label_key)
    except ValueError as e:
        raise UserCodeError(f"{where}: FEATURES: {e}") from None
    slice_features = tuple(getattr(module, "SLICE_FEATURES", ()))
    unknown = unknown_features(features, slice_features)
    if unknown:
        raise UserCodeError(f"{where}: SLICE_FEATURES names {', '.join(map(repr, unknown))}, not in FEATURES")
    return UserCode(package=package, directory=directory, features=features, task=task,
                    slice_features=slice_features)


def unknown_features(features, names) -> List[str]:
    known = by_name(features)
    return [name for name in names if name not in known]


def check_feature_names(user: UserCode, names, key: str) -> None:
    """For config keys that name features: every name must be in the user's FEATURES."""
    unknown = unknown_features(user.features, names)
    if unknown:
        raise UserCodeError(f"{key}: {', '.join(map(repr, unknown))} not in FEATURES of "
                            f"{_where(user.package)}")
