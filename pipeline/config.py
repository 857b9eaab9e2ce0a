"""The one run configuration: a dataclass loaded from YAML, with command-line overrides.

    cfg = load_config("pipeline/configs/local.yaml", overrides=["train_steps=200"])

Relative paths in the YAML are resolved against the project root (the folder
holding ``setup.py``), so a run behaves the same from any working directory.
Every path the pipeline writes lives under ``output_root`` unless set explicitly.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any, Dict, List, Optional, Sequence

import yaml

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs")
DEFAULT_CONFIG = os.path.join(CONFIG_DIR, "local.yaml")


class ConfigError(ValueError):
    pass


@dataclasses.dataclass
class EvaluationConfig:
    # The candidate is blessed only if its accuracy is at least this ...
    min_accuracy: float = 0.6
    # ... and it is not worse than the last blessed model by more than this.
    max_accuracy_drop: float = 0.01
    slice_features: List[str] = dataclasses.field(default_factory=lambda: ["trip_start_hour"])


@dataclasses.dataclass
class PipelineConfig:
    pipeline_name: str = "chicago_taxi"
    # Source CSV for `tfxp data` / `make run`, and where its TFRecords go.
    source_csv: str = "data/chicago_taxi.csv"
    data_root: str = "runs/data/chicago_taxi"
    shards: int = 4
    # Everything generated goes under output_root; the three below default into it.
    output_root: str = "runs"
    pipeline_root: Optional[str] = None
    metadata_path: Optional[str] = None
    serving_dir: Optional[str] = None
    # Curated schema with value domains; null lets SchemaGen infer one.
    schema_path: Optional[str] = "pipeline/schema/schema.pbtxt"
    train_steps: int = 1000
    eval_steps: int = 100
    batch_size: int = 64
    learning_rate: float = 0.001
    strategy: str = "mirrored"
    enable_cache: bool = True
    beam_args: List[str] = dataclasses.field(default_factory=lambda: ["--direct_running_mode=in_memory"])
    evaluation: EvaluationConfig = dataclasses.field(default_factory=EvaluationConfig)

    def __post_init__(self):
        self.validate()

    # -- derived paths ----------------------------------------------------
    def _resolve(self, path: Optional[str]) -> Optional[str]:
        if path is None or "://" in path or os.path.isabs(path):
            return path
        return os.path.join(PROJECT_ROOT, path)

    @property
    def resolved_source_csv(self) -> str:
        return self._resolve(self.source_csv)

    @property
    def resolved_data_root(self) -> str:
        return self._resolve(self.data_root)

    @property
    def resolved_output_root(self) -> str:
        return self._resolve(self.output_root)

    @property
    def resolved_pipeline_root(self) -> str:
        return self._resolve(self.pipeline_root) or os.path.join(
            self.resolved_output_root, "pipelines", self.pipeline_name)

    @property
    def resolved_metadata_path(self) -> str:
        return self._resolve(self.metadata_path) or os.path.join(
            self.resolved_output_root, "metadata", self.pipeline_name, "metadata.db")

    @property
    def resolved_serving_dir(self) -> str:
        return self._resolve(self.serving_dir) or os.path.join(self.resolved_output_root, "serving_model")

    @property
    def resolved_schema_path(self) -> Optional[str]:
        return self._resolve(self.schema_path)

    @property
    def serving_model_dir(self) -> str:
        """Where Pusher writes versions: serving_model/<name>/<version>/."""
        return os.path.join(self.resolved_serving_dir, self.pipeline_name)

    # -- validation -------------------------------------------------------
    def validate(self) -> None:
        from components import strategy as strategy_lib

        if not self.pipeline_name or not self.pipeline_name.replace("_", "").replace("-", "").isalnum():
            raise ConfigError(f"pipeline_name must be letters, digits, '-' or '_', got {self.pipeline_name!r}")
        for name in ("train_steps", "eval_steps", "batch_size", "shards"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.strategy not in strategy_lib.STRATEGY_NAMES:
            raise ConfigError(
                f"strategy must be one of {', '.join(strategy_lib.STRATEGY_NAMES)}, got {self.strategy!r}")
        if not 0.0 <= self.evaluation.min_accuracy <= 1.0:
            raise ConfigError(f"evaluation.min_accuracy must be in [0, 1], got {self.evaluation.min_accuracy}")
        if self.evaluation.max_accuracy_drop < 0:
            raise ConfigError(f"evaluation.max_accuracy_drop must be >= 0, got {self.evaluation.max_accuracy_drop}")
        from components import features as features_lib
        known = features_lib.by_name()
        for name in self.evaluation.slice_features:
            if name not in known:
                raise ConfigError(f"evaluation.slice_features: {name!r} is not a feature in components/features.py")

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)


# Nested config sections, by parent class.
_SECTIONS = {PipelineConfig: {"evaluation": EvaluationConfig}}


def _coerce(value: str, current: Any, key: str) -> Any:
    """Parses an override string into the type of the field it replaces."""
    parsed = yaml.safe_load(value)
    if current is None or parsed is None:
        return parsed
    if isinstance(current, bool):
        if not isinstance(parsed, bool):
            raise ConfigError(f"override {key}: expected true or false, got {value!r}")
        return parsed
    if isinstance(current, (int, float)) and not isinstance(current, bool):
        if not isinstance(parsed, (int, float)) or isinstance(parsed, bool):
            raise ConfigError(f"override {key}: expected a number, got {value!r}")
        return type(current)(parsed)
    if isinstance(current, list) and not isinstance(parsed, list):
        return [parsed] if value else []
    if isinstance(current, str):
        return value
    return parsed


def _build(cls, data: Dict[str, Any], where: str):
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - fields)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(fields))}")
    kwargs = dict(data)
    for name, section_cls in _SECTIONS.get(cls, {}).items():
        if name in kwargs:
            if not isinstance(kwargs[name], dict):
                raise ConfigError(f"{where}: {name} must be a mapping")
            kwargs[name] = _build(section_cls, kwargs[name], f"{where}: {name}")
    return cls(**kwargs)


def _apply_override(data: Dict[str, Any], defaults: Any, override: str) -> None:
    if "=" not in override:
        raise ConfigError(f"override {override!r}: expected key=value (e.g. train_steps=200)")
    key, value = override.split("=", 1)
    parts = key.strip().split(".")
    node, default_node = data, defaults
    for part in parts[:-1]:
        default_node = getattr(default_node, part, None)
        if not dataclasses.is_dataclass(default_node):
            raise ConfigError(f"override {key!r}: {part!r} is not a section of the config")
        node = node.setdefault(part, {})
    leaf = parts[-1]
    if not hasattr(default_node, leaf):
        raise ConfigError(f"override {key!r}: unknown key {leaf!r}")
    current = node.get(leaf, getattr(default_node, leaf))
    node[leaf] = _coerce(value, current, key)


def load_config(path: Optional[str] = None, overrides: Sequence[str] = ()) -> PipelineConfig:
    """Loads the YAML config at ``path`` (default: pipeline/configs/local.yaml) and applies overrides."""
    path = path or DEFAULT_CONFIG
    try:
        with open(path) as f:
            data = yaml.safe_load(f) or {}
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of config keys at the top level")
    defaults = PipelineConfig.__new__(PipelineConfig)
    for f in dataclasses.fields(PipelineConfig):
        setattr(defaults, f.name, f.default if f.default is not dataclasses.MISSING else f.default_factory())
    for override in overrides:
        _apply_override(data, defaults, override)
    try:
        return _build(PipelineConfig, data, path)
    except TypeError as e:
        raise ConfigError(f"{path}: {e}") from None
