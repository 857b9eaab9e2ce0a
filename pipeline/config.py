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


# Beam presets: the fixed flags of each runner. `beam_args` adds to them (later flags win).
BEAM_PRESETS: Dict[str, List[str]] = {
    # DirectRunner in this process: least start-up, best for small data.
    "in_memory": ["--direct_running_mode=in_memory"],
    # DirectRunner with one worker process per core (--direct_num_workers=0).
    "multi_processing": ["--direct_running_mode=multi_processing", "--direct_num_workers=0"],
    # Google Cloud Dataflow. Needs a GCP project, a region and a gs:// temp location; to run the
    # project's code in the workers, also --sdk_container_image=<the pipeline image>.
    "dataflow": ["--runner=DataflowRunner"],
    # Apache Flink through Beam's portable Flink runner. Needs --flink_master=<host:port> and an SDK
    # harness: --environment_type=EXTERNAL with --environment_config=<host:port> of a Beam worker
    # pool beside the task managers (or DOCKER where Docker runs). Offline, also pass
    # --flink_job_server_jar=<path>: otherwise Beam downloads the job server jar at run time.
    "flink": ["--runner=FlinkRunner"],
    # Apache Spark through Beam's portable Spark runner. Needs --spark_master_url=spark://<host>:7077
    # and an SDK harness (--environment_type=EXTERNAL|DOCKER as for Flink); offline, also
    # --spark_job_server_jar=<path>.
    "spark": ["--runner=SparkRunner"],
}
BEAM_REQUIRED_FLAGS: Dict[str, List[str]] = {
    "dataflow": ["--project", "--region", "--temp_location"],
    "flink": ["--flink_master", "--environment_type"],
    "spark": ["--spark_master_url", "--environment_type"],
}


@dataclasses.dataclass
class EvaluationConfig:
    # The candidate is blessed only if its accuracy is at least this ...
    min_accuracy: float = 0.6
    # ... and it is not worse than the last blessed model by more than this.
    max_accuracy_drop: float = 0.01
    slice_features: List[str] = dataclasses.field(default_factory=lambda: ["trip_start_hour"])


TFLITE_QUANTIZATIONS = ("none", "dynamic_range", "float16", "int8")


@dataclasses.dataclass
class TFLiteConfig:
    enabled: bool = True
    # One .tflite file per mode: none (float32), dynamic_range, float16, int8 (full integer).
    quantizations: List[str] = dataclasses.field(default_factory=lambda: ["dynamic_range", "int8"])
    # Also train a quantization-aware model (tfmot) and convert it to int8 ("qat_int8").
    quantization_aware_training: bool = False
    qat_steps: int = 200
    # int8 calibration: this many transformed training examples.
    representative_examples: int = 300
    # A variant is blessed when neither accuracy nor AUC drops more than this below the SavedModel's.
    max_metric_drop: float = 0.01


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
    # Keep the decompressed training records in memory after the first pass (data that fits).
    input_cache: bool = True
    # mirrored on a CPU-only machine: split the CPU into this many logical devices (replicas).
    cpu_devices: int = 0
    # multi_worker_mirrored: local worker processes; parameter_server: workers + parameter servers.
    num_workers: int = 2
    num_parameter_servers: int = 1
    worker_timeout_seconds: int = 1800
    enable_cache: bool = True
    beam_preset: str = "in_memory"
    beam_args: List[str] = dataclasses.field(default_factory=list)
    # Kubeflow: the pipeline image (built from the Dockerfile) every step runs in.
    image: str = "tfx-pipeline-project:latest"
    evaluation: EvaluationConfig = dataclasses.field(default_factory=EvaluationConfig)
    tflite: TFLiteConfig = dataclasses.field(default_factory=TFLiteConfig)

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
    def lite_serving_model_dir(self) -> str:
        """Where the TFLite Pusher writes versions: serving_model_lite/<name>/<version>/."""
        return os.path.join(os.path.dirname(self.resolved_serving_dir), "serving_model_lite", self.pipeline_name)

    @property
    def serving_model_dir(self) -> str:
        """Where Pusher writes versions: serving_model/<name>/<version>/."""
        return os.path.join(self.resolved_serving_dir, self.pipeline_name)

    @property
    def resolved_beam_args(self) -> List[str]:
        """The preset's flags, then ``beam_args`` (a later flag overrides an earlier one)."""
        merged: Dict[str, str] = {}
        for arg in BEAM_PRESETS[self.beam_preset] + list(self.beam_args):
            merged[arg.split("=", 1)[0]] = arg
        return list(merged.values())

    # -- validation -------------------------------------------------------
    def validate(self) -> None:
        from components import strategy as strategy_lib

        if not self.pipeline_name or not self.pipeline_name.replace("_", "").replace("-", "").isalnum():
            raise ConfigError(f"pipeline_name must be letters, digits, '-' or '_', got {self.pipeline_name!r}")
        if self.cpu_devices < 0:
            raise ConfigError(f"cpu_devices must be >= 0, got {self.cpu_devices}")
        for name in ("train_steps", "eval_steps", "batch_size", "shards", "num_workers", "num_parameter_servers",
                     "worker_timeout_seconds"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.strategy not in strategy_lib.STRATEGY_NAMES:
            raise ConfigError(
                f"strategy must be one of {', '.join(strategy_lib.STRATEGY_NAMES)}, got {self.strategy!r}")
        if not 0.0 <= self.evaluation.min_accuracy <= 1.0:
            raise ConfigError(f"evaluation.min_accuracy must be in [0, 1], got {self.evaluation.min_accuracy}")
        if self.evaluation.max_accuracy_drop < 0:
            raise ConfigError(f"evaluation.max_accuracy_drop must be >= 0, got {self.evaluation.max_accuracy_drop}")
        if self.beam_preset not in BEAM_PRESETS:
            raise ConfigError(f"beam_preset must be one of {', '.join(BEAM_PRESETS)}, got {self.beam_preset!r}")
        given = {arg.split("=", 1)[0] for arg in self.beam_args}
        missing = [flag for flag in BEAM_REQUIRED_FLAGS.get(self.beam_preset, []) if flag not in given]
        if missing:
            raise ConfigError(f"beam_preset {self.beam_preset} needs beam_args {', '.join(missing)} "
                              f"(see BEAM_PRESETS in pipeline/config.py)")
        bad = [arg for arg in self.beam_args if not arg.startswith("--")]
        if bad:
            raise ConfigError(f"beam_args must be --flag=value, got {', '.join(map(repr, bad))}")
        lite = self.tflite
        unknown = [q for q in lite.quantizations if q not in TFLITE_QUANTIZATIONS]
        if unknown:
            raise ConfigError(f"tflite.quantizations: unknown mode(s) {', '.join(map(repr, unknown))}; "
                              f"expected any of {', '.join(TFLITE_QUANTIZATIONS)}")
        if lite.enabled and not lite.quantizations and not lite.quantization_aware_training:
            raise ConfigError("tflite: no quantizations and no quantization_aware_training: nothing to "
                              "convert (set tflite.enabled: false to skip the branch)")
        needs_examples = "int8" in lite.quantizations or lite.quantization_aware_training
        if lite.enabled and needs_examples and lite.representative_examples < 1:
            raise ConfigError("tflite: int8 needs representative examples to calibrate; "
                              f"tflite.representative_examples must be at least 1, got {lite.representative_examples}")
        if lite.max_metric_drop < 0:
            raise ConfigError(f"tflite.max_metric_drop must be >= 0, got {lite.max_metric_drop}")
        if lite.quantization_aware_training and lite.qat_steps < 1:
            raise ConfigError(f"tflite.qat_steps must be at least 1, got {lite.qat_steps}")
        from components import features as features_lib
        known = features_lib.by_name()
        for name in self.evaluation.slice_features:
            if name not in known:
                raise ConfigError(f"evaluation.slice_features: {name!r} is not a feature in components/features.py")

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)


# Nested config sections, by parent class.
_SECTIONS = {PipelineConfig: {"evaluation": EvaluationConfig, "tflite": TFLiteConfig}}


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
    defaults = PipelineConfig()  # tells each override the type of the field it replaces
    for override in overrides:
        _apply_override(data, defaults, override)
    try:
        return _build(PipelineConfig, data, path)
    except TypeError as e:
        raise ConfigError(f"{path}: {e}") from None
