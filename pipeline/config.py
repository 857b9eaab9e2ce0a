"""The one run configuration: a dataclass loaded from YAML, with command-line overrides.

    cfg = load_config("pipeline/configs/local.yaml", overrides=["training.train_steps=200"])

Sections: ``training`` (components/training/options.py), ``tuning`` (components/training/tuning_options.py),
``evaluation`` (below), ``tflite``
(components/custom/tflite_options.py), ``serving`` (serving/options.py), ``inference`` (below, the batch
scoring branch: pipeline/inference.py), ``drift`` (pipeline/drift/options.py), ``kubeflow``
(pipeline/kubeflow_options.py, the compiled pipeline's only; its ``training`` section:
components/training/engines.py): each section's keys and defaults
are defined once, beside
the code that uses them. What the data is and what to predict are not here: they live in the data
scientist's package (``user_package``, default ``components``). A key that names a feature or a
metric is checked against that package only when it is set.

Relative paths in the YAML are resolved against the project root (the folder holding
``setup.py``), so a run behaves the same from any working directory. Every path the pipeline
writes lives under ``output_root`` unless set explicitly.
"""
from __future__ import annotations

import dataclasses
import os
import re
import typing
from typing import Any, Dict, List, Optional, Sequence

import yaml

from components.core.user_code import DEFAULT_PACKAGE, UserCode, UserCodeError, check_feature_names, load_user_code
from components.custom.tflite_options import TFLiteOptions
from components.training.engines import KubeflowTrainingOptions, TFJobOptions, VertexTrainingOptions
from components.training.options import TrainingOptions
from components.training.tuning_options import TuningOptions
from pipeline.drift.options import DriftOptions
from pipeline.kubeflow_options import (EvaluatorResources, KubeflowOptions, KubeflowResources, StepResources,
                                       TrainerResources, TransformResources)
from serving.options import (BatchingOptions, InfraValidationOptions, KubernetesOptions,
                             PayloadLoggerOptions, RequestLogOptions, ServingOptions, ServingTarget)
from tfxp.errors import TfxpError
from tfxp.files import is_remote

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs")
DEFAULT_CONFIG = os.path.join(CONFIG_DIR, "local.yaml")


class ConfigError(ValueError, TfxpError):
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
    # The path Flink and Spark take, on this machine: Beam's portable Job API, with SDK workers in
    # other processes started by an EXTERNAL worker pool. `tfxp run` starts Beam's Python job service
    # and a worker pool on loopback for the run and adds --job_endpoint and --environment_config
    # (pipeline/beam_services.py); local runs only (tfxp compile refuses it).
    "portable": ["--runner=PortableRunner", "--environment_type=EXTERNAL"],
}
# Presets whose services live beside `tfxp run`: nothing a Kubeflow step could reach.
LOCAL_ONLY_PRESETS = ("portable",)
BEAM_REQUIRED_FLAGS: Dict[str, List[str]] = {
    "dataflow": ["--project", "--region", "--temp_location"],
    "flink": ["--flink_master", "--environment_type"],
    "spark": ["--spark_master_url", "--environment_type"],
}


def merge_beam_args(*groups: Sequence[str]) -> List[str]:
    """The flags of every group, in order; a flag given again overrides the earlier one, in its place."""
    merged: Dict[str, str] = {}
    for arg in (arg for group in groups for arg in group):
        merged[arg.split("=", 1)[0]] = arg
    return list(merged.values())


@dataclasses.dataclass
class EvaluationConfig:
    """The Evaluator's gate. A candidate is blessed when its gate metric meets ``threshold`` (when
    set) and is at most ``max_degradation`` worse than the last blessed model's."""
    # null: the task's (accuracy for classification, mae for regression); any metric the task reports.
    gate_metric: Optional[str] = None
    # At least this for accuracy and AUC, at most this for mae and rmse; null: no absolute bound.
    threshold: Optional[float] = None
    # Absolute for fractions (accuracy, AUC: 0.01 = 1 point), relative for errors (0.01 = 1% higher).
    max_degradation: float = 0.01
    # TFMA slices besides the overall one; null: SLICE_FEATURES in the user's features.py.
    slice_features: Optional[List[str]] = None


@dataclasses.dataclass
class InferenceConfig:
    """The batch scoring branch (pipeline/inference.py): off unless ``data`` names rows to score."""
    # Unlabelled rows: a CSV file with a header (converted by your feature list before the run), a TFRecord
    # file of tf.Example, or a folder of them (on Kubeflow: TFRecords on the bucket); null: no branch.
    data: Optional[str] = None

    @property
    def enabled(self) -> bool:
        return bool(self.data)


@dataclasses.dataclass
class PipelineConfig:
    # Names the pipeline, its MLMD context and serving_model/<name>/: one per dataset.
    pipeline_name: str
    # Pre-split TFRecords of tf.Example: <data_root>/train/*, <data_root>/eval/*.
    data_root: str
    # The data scientist's package: features.py, preprocessing.py, model.py.
    user_package: str = DEFAULT_PACKAGE
    # A CSV that `tfxp run` converts into data_root when data_root has no TFRecords yet (null: none),
    # only when data_root is under output_root (a location the project owns, as the sample's).
    source_csv: Optional[str] = None
    shards: int = 4
    # Everything generated goes under output_root; the three below default into it.
    output_root: str = "runs"
    pipeline_root: Optional[str] = None
    metadata_path: Optional[str] = None
    serving_dir: Optional[str] = None
    # Curated schema with value domains; null lets SchemaGen infer one.
    schema_path: Optional[str] = None
    enable_cache: bool = True
    # tfxp run: how many components may run at once when their inputs are ready (1: one after another,
    # as TFX's LocalDagRunner). Kubeflow always runs independent steps at once.
    parallel_components: int = 2
    beam_preset: str = "in_memory"
    beam_args: List[str] = dataclasses.field(default_factory=list)
    # Kubeflow: the pipeline image (built from the Dockerfile) every step runs in.
    image: str = "tfx-pipeline-project:latest"
    training: TrainingOptions = dataclasses.field(default_factory=TrainingOptions)
    tuning: TuningOptions = dataclasses.field(default_factory=TuningOptions)
    evaluation: EvaluationConfig = dataclasses.field(default_factory=EvaluationConfig)
    tflite: TFLiteOptions = dataclasses.field(default_factory=TFLiteOptions)
    serving: ServingOptions = dataclasses.field(default_factory=ServingOptions)
    inference: InferenceConfig = dataclasses.field(default_factory=InferenceConfig)
    drift: DriftOptions = dataclasses.field(default_factory=DriftOptions)
    kubeflow: KubeflowOptions = dataclasses.field(default_factory=KubeflowOptions)

    def __post_init__(self):
        self.validate()

    # -- the data scientist's package --------------------------------------------------------------
    @property
    def user_code(self) -> UserCode:
        return load_user_code(self.user_package)

    @property
    def slice_features(self) -> List[str]:
        if self.evaluation.slice_features is not None:
            return list(self.evaluation.slice_features)
        return list(self.user_code.slice_features)

    @property
    def gate_metric(self):
        task = self.user_code.task
        return task.metric(self.evaluation.gate_metric or task.GATE_METRIC)

    @property
    def quantization_aware_training(self) -> bool:
        return self.tflite.enabled and self.tflite.quantization_aware_training

    # -- derived paths ----------------------------------------------------
    def _resolve(self, path: Optional[str]) -> Optional[str]:
        if path is None or is_remote(path) or os.path.isabs(path):
            return path
        return os.path.join(PROJECT_ROOT, path)

    @property
    def resolved_source_csv(self) -> Optional[str]:
        return self._resolve(self.source_csv)

    @property
    def resolved_data_root(self) -> str:
        return self._resolve(self.data_root)

    @property
    def resolved_inference_data(self) -> Optional[str]:
        return self._resolve(self.inference.data) if self.inference.enabled else None

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
    def serving_config_dir(self) -> str:
        """Where `tfxp serving-config` writes models.config (moved by `tfxp release`) and the deploy files."""
        return os.path.join(self.resolved_output_root, "serving_config", self.pipeline_name)

    @property
    def serving_model_dir(self) -> str:
        """Where Pusher writes versions: serving_model/<name>/<version>/."""
        return os.path.join(self.resolved_serving_dir, self.pipeline_name)

    @property
    def serving_target(self) -> ServingTarget:
        """What serving/ is told of the pushed model: its name, where it is pushed, its config dir, the
        serving: section and the project's image (serving/ reads nothing else of the config)."""
        return ServingTarget(self.pipeline_name, self.serving_model_dir, self.serving_config_dir, self.serving,
                             self.image)

    @property
    def request_log_prefix(self) -> str:
        """Where the servers `tfxp serve` and `tfxp dev` start on the pushed model write its request logs
        (serving.request_log): <prefix>-<time>-<pid>-<n>.tfrecord files."""
        return self._resolve(self.serving.request_log.filename_prefix) or os.path.join(
            self.resolved_output_root, "request_logs", self.pipeline_name, self.pipeline_name)

    @property
    def request_log_server_flags(self) -> List[str]:
        """The `tfxp serve` flags of serving.request_log ([] when it is not enabled)."""
        options = self.serving.request_log
        return options.server_flags(self.request_log_prefix) if options.enabled else []

    @property
    def resolved_beam_args(self) -> List[str]:
        """The preset's flags, then ``beam_args`` (a later flag overrides an earlier one)."""
        return merge_beam_args(BEAM_PRESETS[self.beam_preset], self.beam_args)

    # -- validation -------------------------------------------------------
    def validate(self) -> None:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]*", str(self.pipeline_name)):
            raise ConfigError(f"pipeline_name must be letters, digits, '-' or '_', got {self.pipeline_name!r}")
        if self.shards < 1:
            raise ConfigError(f"shards must be at least 1, got {self.shards}")
        if self.parallel_components < 1:
            raise ConfigError(f"parallel_components must be at least 1, got {self.parallel_components}")
        try:
            self.training.check(quantization_aware_training=self.quantization_aware_training)
            self.tuning.check()
            self.tflite.check()
            self.serving.check()
            self.drift.check()
            self.kubeflow.check(self.training)
        except ValueError as e:
            raise ConfigError(str(e)) from None
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
        self._validate_against_user_code()

    def _validate_against_user_code(self) -> None:
        try:
            user = self.user_code
            if self.evaluation.slice_features is not None:
                check_feature_names(user, self.evaluation.slice_features, "evaluation.slice_features")
        except UserCodeError as e:
            raise ConfigError(str(e)) from None
        ev = self.evaluation
        task = user.task
        if ev.gate_metric is not None and ev.gate_metric not in task.metric_names:
            raise ConfigError(f"evaluation.gate_metric: {task.describe()} reports {', '.join(task.metric_names)}, "
                              f"not {ev.gate_metric!r}")
        metric = self.gate_metric
        if ev.threshold is not None and metric.bounded and not 0.0 <= ev.threshold <= 1.0:
            raise ConfigError(f"evaluation.threshold: {metric.name} is a fraction, so the threshold must be in "
                              f"[0, 1], got {ev.threshold}")
        if ev.max_degradation < 0:
            raise ConfigError(f"evaluation.max_degradation must be >= 0, got {ev.max_degradation}")


# Nested config sections, by parent class.
_SECTIONS = {PipelineConfig: {"training": TrainingOptions, "tuning": TuningOptions, "evaluation": EvaluationConfig,
                              "tflite": TFLiteOptions, "serving": ServingOptions, "inference": InferenceConfig,
                              "drift": DriftOptions, "kubeflow": KubeflowOptions},
             ServingOptions: {"batching": BatchingOptions, "infra_validation": InfraValidationOptions,
                              "kubernetes": KubernetesOptions, "request_log": RequestLogOptions},
             KubernetesOptions: {"payload_logger": PayloadLoggerOptions},
             KubeflowOptions: {"resources": KubeflowResources, "training": KubeflowTrainingOptions},
             KubeflowTrainingOptions: {"vertex": VertexTrainingOptions, "tfjob": TFJobOptions},
             KubeflowResources: {"default": StepResources, "transform": TransformResources,
                                 "trainer": TrainerResources, "evaluator": EvaluatorResources}}


def _field_types(cls) -> Dict[str, Any]:
    return typing.get_type_hints(cls)


def _check_type(value: Any, annotation: Any, where: str) -> Any:
    """``value`` as the field's type, or a ConfigError naming the key and what it expects."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Union and type(None) in args:
        if value is None:
            return None
        annotation = next(a for a in args if a is not type(None))
        origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (dict, Dict):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return {_check_type(k, args[0], where): _check_type(v, args[1], f"{where}.{k}") for k, v in value.items()}
    if origin in (list, List):
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return [_check_type(v, args[0], f"{where}[{i}]") for i, v in enumerate(value)] if args else value
    if annotation is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if annotation in (int, float):
        if isinstance(value, str):  # YAML 1.1 reads 1e-3 as a string
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (
                annotation is int and isinstance(value, float) and not value.is_integer()):
            raise ConfigError(f"{where}: expected {'an integer' if annotation is int else 'a number'}, got {value!r}")
        return annotation(value)
    if annotation is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return str(value)
    return value


def _build(cls, data: Dict[str, Any], where: str):
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(fields))}")
    missing = [name for name, f in fields.items() if name not in data
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise ConfigError(f"{where}: missing required key(s) {', '.join(missing)}")
    types = _field_types(cls)
    kwargs = {}
    for name, value in data.items():
        section_cls = _SECTIONS.get(cls, {}).get(name)
        if section_cls is not None:
            if not isinstance(value, dict):
                raise ConfigError(f"{where}: {name} must be a mapping of keys")
            kwargs[name] = _build(section_cls, value, f"{where}: {name}")
        else:
            kwargs[name] = _check_type(value, types[name], f"{where}: {name}")
    return cls(**kwargs)


def _apply_override(data: Dict[str, Any], override: str) -> None:
    """Sets ``key=value`` (dotted keys for sections) in the raw YAML mapping; types are checked later."""
    if "=" not in override:
        raise ConfigError(f"override {override!r}: expected key=value (e.g. training.train_steps=200)")
    key, value = override.split("=", 1)
    parts = key.strip().split(".")
    node, cls = data, PipelineConfig
    for part in parts[:-1]:
        section_cls = _SECTIONS.get(cls, {}).get(part)
        if section_cls is None:
            raise ConfigError(f"override {key!r}: {part!r} is not a section of the config "
                              f"(sections: {', '.join(_SECTIONS[PipelineConfig])})")
        node, cls = node.setdefault(part, {}), section_cls
    leaf = parts[-1]
    types = _field_types(cls)
    if leaf not in types:
        raise ConfigError(f"override {key!r}: unknown key {leaf!r}; known: {', '.join(sorted(types))}")
    parsed = yaml.safe_load(value) if value != "" else ""
    annotation = _without_optional(types[leaf])
    if annotation is str:
        parsed = None if parsed is None and value.strip() in ("null", "~") else value
    elif typing.get_origin(annotation) in (list, List) and parsed is not None and not isinstance(parsed, list):
        parsed = [parsed] if value else []  # --set key=one_item
    node[leaf] = parsed


def _without_optional(annotation):
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) is typing.Union and type(None) in args:
        return next(a for a in args if a is not type(None))
    return annotation


BASE_KEY = "base"


def _merge(base: Dict[str, Any], over: Dict[str, Any]) -> Dict[str, Any]:
    """``over`` on top of ``base``: sections merge key by key, any other value (a list too) replaces."""
    merged = dict(base)
    for key, value in over.items():
        merged[key] = (_merge(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict)
                       else value)
    return merged


def _read(path: str, chain: Sequence[str] = ()) -> Dict[str, Any]:
    """The YAML mapping at ``path``; with ``base: FILE`` (relative to this file), that file's keys first and this
    file's on top, so a preset states only what differs from the one it builds on."""
    try:
        with open(path) as f:
            data = yaml.safe_load(f) or {}
    except FileNotFoundError:
        raise ConfigError(f"{chain[-1] + ': base ' if chain else ''}{path}: config file not found") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of config keys at the top level")
    base = data.pop(BASE_KEY, None)
    if base is None:
        return data
    if not isinstance(base, str) or not base:
        raise ConfigError(f"{path}: base: expected the file name of another config, got {base!r}")
    base_path = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(path)), base))
    if base_path in chain or base_path == os.path.abspath(path):
        raise ConfigError(f"{path}: base: {base} leads back to itself ({' -> '.join([*chain, path, base_path])})")
    return _merge(_read(base_path, [*chain, os.path.abspath(path)]), data)


def load_config(path: Optional[str] = None, overrides: Sequence[str] = ()) -> PipelineConfig:
    """Loads the YAML config at ``path`` (default: pipeline/configs/local.yaml; ``base: FILE`` in it builds on
    another config) and applies overrides."""
    path = path or DEFAULT_CONFIG
    data = _read(path)
    for override in overrides:
        _apply_override(data, override)
    return _build(PipelineConfig, data, path)
