"""The config's ``serving:`` section: how the pushed model is validated, served and deployed.

One place for what TF Serving, docker-compose, nginx, Kubernetes and KServe must agree on: the
image, the ports, where the server finds the model and its config files, the batching and the
label names. No TensorFlow here: loading a config reads this module.
"""
from __future__ import annotations

import dataclasses
import posixpath
import re
from typing import List, Optional
from tfxp import contract

# The real server these files are for, and the `tensorflow_model_server` flags of every instance.
TF_SERVING_IMAGE = "tensorflow/serving:2.16.1"   # the TF release the pipeline trains with
GRPC_PORT, REST_PORT = contract.GRPC_PORT, contract.REST_PORT
# Labels `tfxp release` moves in models.config (TF Serving's version_labels).
STABLE, CANARY, PREVIOUS = "stable", "canary", "previous"
# File names in the serving config dir (`tfxp serving-config`), as the server reads them.
MODEL_CONFIG_FILE = "models.config"
BATCHING_PARAMETERS_FILE = "batching_parameters.txt"
MONITORING_CONFIG_FILE = "monitoring.config"
# Inside a container the config dir is mounted here (compose volume, Kubernetes ConfigMap).
CONTAINER_CONFIG_DIR = "/etc/tfserving"
METRICS_PATH = "/monitoring/prometheus/metrics"
VALIDATION_PLATFORMS = ("local_process", "kubernetes")
# Kubernetes' names (checked when the config loads, before kubectl would reject them).
_DNS_1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS_1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


@dataclasses.dataclass
class BatchingOptions:
    """The config's serving.batching: what `tfxp serving-config` writes as TF Serving's BatchingParameters
    (--batching_parameters_file). The project's values; the server fills what a file leaves out with TF
    Serving's defaults (servable.ServerBatching)."""
    max_batch_size: int = 64
    batch_timeout_micros: int = 2000
    max_enqueued_batches: int = 100
    num_batch_threads: int = 4
    allowed_batch_sizes: List[int] = dataclasses.field(default_factory=list)
    pad_variable_length_inputs: bool = False


@dataclasses.dataclass
class InfraValidationOptions:
    """TFX's InfraValidator between the Evaluator and the Pusher."""
    # local_process: `tfxp serve` on free loopback ports on the machine running the pipeline (the
    # local preset); kubernetes: a pod of `serving.image` next to the pipeline (the Kubeflow preset).
    platform: str = "local_process"
    # Eval examples sent as requests (one request each); they become the warmup requests too.
    examples: int = 10
    max_loading_seconds: int = 120
    tries: int = 2


@dataclasses.dataclass
class PayloadLoggerOptions:
    """serving.kubernetes.payload_logger: KServe's payload logger on the InferenceService (the real
    tensorflow/serving cannot log requests), sending every request and response to a `tfxp log-sink`
    Deployment of the project's image (the config's ``image``), which writes them as request logs under
    ``filename_prefix`` with serving.request_log's file limits (serving/k8s_log_sink.py)."""
    enabled: bool = False
    # gs://... (the sink's service account must be allowed to write there; files are written in the pod,
    # then uploaded whole), or an absolute path on volume_claim (mounted read-write at its directory).
    filename_prefix: Optional[str] = None
    volume_claim: Optional[str] = None
    service_account: Optional[str] = None
    # A request whose response has not come by then is dropped and counted (KServe sends no response
    # event for an error), and so is a response without its request.
    pair_timeout_seconds: float = 60.0
    cpu_request: str = "250m"
    memory_request: str = "1Gi"
    cpu_limit: str = "1"
    memory_limit: str = "2Gi"

    def check(self) -> None:
        key = "serving.kubernetes.payload_logger"
        if not self.pair_timeout_seconds > 0:
            raise ValueError(f"{key}.pair_timeout_seconds must be above 0, got {self.pair_timeout_seconds}")
        if not self.enabled:
            return
        prefix = self.filename_prefix
        if not prefix:
            raise ValueError(f"{key}.enabled needs {key}.filename_prefix: a gs:// prefix, or an absolute path on "
                             f"{key}.volume_claim")
        if prefix.endswith("/") or posixpath.basename(prefix) in ("", ".", ".."):
            raise ValueError(f"{key}.filename_prefix must end in a file name part (files are "
                             f"<prefix>-<time>-<pid>-<n>.tfrecord), got {prefix!r}")
        if "://" in prefix:
            if not prefix.startswith("gs://"):
                raise ValueError(f"{key}.filename_prefix must be gs://... or a path on a volume claim, got {prefix!r}")
            if self.volume_claim:
                raise ValueError(f"{key}.volume_claim is for a local filename_prefix; {prefix} is in a bucket")
        elif not posixpath.isabs(prefix) or not self.volume_claim:
            raise ValueError(f"{key}.filename_prefix {prefix!r} is a local path: it must be absolute and on "
                             f"{key}.volume_claim (a PersistentVolumeClaim the sink writes to), or be gs://...")


@dataclasses.dataclass
class KubernetesOptions:
    """The Deployment, Service, HPA, PDB and KServe InferenceService under serving/k8s/."""
    namespace: Optional[str] = None          # null: the kubectl context's namespace
    # No replica count: the HorizontalPodAutoscaler owns it (a Deployment's would reset it on every apply).
    min_replicas: int = 2
    max_replicas: int = 10
    target_cpu_utilization: int = 70         # percent of the CPU request
    min_available: int = 1                   # PodDisruptionBudget
    cpu_request: str = "1"
    memory_request: str = "2Gi"
    cpu_limit: str = "2"
    memory_limit: str = "4Gi"
    # Where the pods read the model: null when the push dir is remote (gs://: TF Serving reads it
    # directly); else a PersistentVolumeClaim holding it, mounted at the push dir's path.
    model_volume_claim: Optional[str] = None
    service_account: Optional[str] = None    # e.g. one bound to a GCP service account (gs:// access)
    canary_traffic_percent: int = 10         # KServe canary rollout
    payload_logger: PayloadLoggerOptions = dataclasses.field(default_factory=PayloadLoggerOptions)


@dataclasses.dataclass
class RequestLogOptions:
    """Request logging in `tfxp serve` (serving/request_log.py; TF Serving's own server cannot log): each sampled
    predict/classify/regress and its response as a PredictionLog in TFRecord files under ``filename_prefix``.
    The config's serving.request_log, for the server `tfxp serve` and `tfxp dev` start on the pushed model;
    the same values are `tfxp serve` flags (server_flags). Never written into the real server's models.config."""
    enabled: bool = False
    # null: <output_root>/request_logs/<pipeline_name>/<pipeline_name> (PipelineConfig.request_log_prefix)
    filename_prefix: Optional[str] = None
    sampling_rate: float = 1.0                 # each request is logged with this probability (TF Serving's rule)
    max_file_bytes: int = 64 * 1024 * 1024     # a file is completed before it would grow past this ...
    max_file_seconds: float = 3600             # ... or this long after it was opened, even when idle
    max_total_bytes: int = 1024 * 1024 * 1024  # the prefix's files together; the oldest go first
    queue_size: int = 1024                     # records waiting for the writer; beyond it they are dropped, counted

    def check(self, name=lambda key: f"serving.request_log.{key}") -> None:
        """Raises ValueError naming the key (``name(key)``: a config key or a flag) that cannot work."""
        if not 0.0 <= self.sampling_rate <= 1.0:  # NaN fails too
            raise ValueError(f"{name('sampling_rate')} must be in [0, 1], got {self.sampling_rate}")
        for key in ("max_file_bytes", "max_total_bytes", "queue_size", "max_file_seconds"):
            if not getattr(self, key) > 0:
                raise ValueError(f"{name(key)} must be above 0, got {getattr(self, key)}")
        if self.max_total_bytes < self.max_file_bytes:
            raise ValueError(f"{name('max_total_bytes')} ({self.max_total_bytes}) must be at least "
                             f"{name('max_file_bytes')} ({self.max_file_bytes})")
        if self.filename_prefix is not None:
            check_filename_prefix(self.filename_prefix, name("filename_prefix"))

    def server_flags(self, filename_prefix: str) -> List[str]:
        """The `tfxp serve` flags that log to ``filename_prefix`` with these settings."""
        return [f"--request_log_filename_prefix={filename_prefix}", f"--request_log_sampling_rate={self.sampling_rate}",
                *(f"--request_log_{key}={getattr(self, key)}" for key in REQUEST_LOG_LIMITS)]


# The settings of RequestLogOptions that bound every logger of a server (not per model, unlike the prefix and rate).
REQUEST_LOG_LIMITS = ("max_file_bytes", "max_file_seconds", "max_total_bytes", "queue_size")


def check_filename_prefix(prefix: str, where: str) -> None:
    """A request log's filename_prefix: a local path ending in a name part (files are <prefix>-<time>-...)."""
    if not prefix:
        raise ValueError(f"{where} is empty: expected a path such as /var/log/tfxp/chicago_taxi")
    if "://" in prefix:
        raise ValueError(f"{where} must be a local path (request logs are written to local files), got {prefix!r}")
    if prefix.endswith("/"):
        raise ValueError(f"{where} must end in a file name part (files are <prefix>-<time>-<pid>-<n>.tfrecord), "
                         f"got {prefix!r}")


@dataclasses.dataclass
class ServingOptions:
    image: str = TF_SERVING_IMAGE
    # docker-compose: this many tensorflow/serving containers behind nginx.
    replicas: int = 3
    # --model_config_file_poll_wait_seconds: how soon a `tfxp release` reaches the servers.
    model_config_poll_seconds: int = 10
    enable_batching: bool = True
    batching: BatchingOptions = dataclasses.field(default_factory=BatchingOptions)
    infra_validation: InfraValidationOptions = dataclasses.field(default_factory=InfraValidationOptions)
    kubernetes: KubernetesOptions = dataclasses.field(default_factory=KubernetesOptions)
    request_log: RequestLogOptions = dataclasses.field(default_factory=RequestLogOptions)

    def check(self) -> None:
        """Raises ValueError naming the ``serving.<key>`` that cannot work."""
        self.request_log.check()
        iv, k8s = self.infra_validation, self.kubernetes
        k8s.payload_logger.check()
        if iv.platform not in VALIDATION_PLATFORMS:
            raise ValueError(f"serving.infra_validation.platform must be one of {', '.join(VALIDATION_PLATFORMS)}, "
                             f"got {iv.platform!r}")
        for key, value in (("serving.infra_validation.examples", iv.examples),
                           ("serving.infra_validation.max_loading_seconds", iv.max_loading_seconds),
                           ("serving.infra_validation.tries", iv.tries), ("serving.replicas", self.replicas),
                           ("serving.model_config_poll_seconds", self.model_config_poll_seconds),
                           ("serving.batching.max_batch_size", self.batching.max_batch_size),
                           ("serving.batching.num_batch_threads", self.batching.num_batch_threads),
                           ("serving.kubernetes.min_replicas", k8s.min_replicas)):
            if value < 1:
                raise ValueError(f"{key} must be at least 1, got {value}")
        if k8s.max_replicas < k8s.min_replicas:
            raise ValueError(f"serving.kubernetes.max_replicas ({k8s.max_replicas}) is below min_replicas "
                             f"({k8s.min_replicas})")
        if not 0 < k8s.canary_traffic_percent < 100:
            raise ValueError(f"serving.kubernetes.canary_traffic_percent must be between 1 and 99, "
                             f"got {k8s.canary_traffic_percent}")
        if not 0 < k8s.target_cpu_utilization <= 100:
            raise ValueError(f"serving.kubernetes.target_cpu_utilization must be a percent, "
                             f"got {k8s.target_cpu_utilization}")
        for key, value, rule, limit in (
                ("namespace", k8s.namespace, _DNS_1123_LABEL, 63),
                ("service_account", k8s.service_account, _DNS_1123_SUBDOMAIN, 253),
                ("model_volume_claim", k8s.model_volume_claim, _DNS_1123_SUBDOMAIN, 253),
                ("payload_logger.volume_claim", k8s.payload_logger.volume_claim, _DNS_1123_SUBDOMAIN, 253),
                ("payload_logger.service_account", k8s.payload_logger.service_account, _DNS_1123_SUBDOMAIN, 253)):
            if value is not None and (not rule.fullmatch(value) or len(value) > limit):
                raise ValueError(f"serving.kubernetes.{key} must be a Kubernetes name (lowercase letters, digits, "
                                 f"'-'; at most {limit} characters), got {value!r}")
        sizes = self.batching.allowed_batch_sizes
        if sizes and (sizes != sorted(sizes) or sizes[-1] != self.batching.max_batch_size):
            raise ValueError("serving.batching.allowed_batch_sizes must increase and end with max_batch_size "
                             f"({self.batching.max_batch_size}), got {sizes}")

    @property
    def image_tag(self) -> str:
        return self.image.rsplit(":", 1)[1] if ":" in self.image.rsplit("/", 1)[-1] else "latest"

    @property
    def image_name(self) -> str:
        return self.image[: -len(self.image_tag) - 1] if self.image.endswith(":" + self.image_tag) else self.image

    def server_args(self, config_dir: str = CONTAINER_CONFIG_DIR) -> List[str]:
        """The `tensorflow_model_server` flags of every instance (compose, Kubernetes; `tfxp serve` takes the same)."""
        args = [f"--port={GRPC_PORT}", f"--rest_api_port={REST_PORT}",
                f"--model_config_file={config_dir}/{MODEL_CONFIG_FILE}",
                f"--model_config_file_poll_wait_seconds={self.model_config_poll_seconds}",
                f"--monitoring_config_file={config_dir}/{MONITORING_CONFIG_FILE}",
                # models.config names its labels at start-up, before their versions load.
                "--allow_version_labels_for_unavailable_models=true",
                "--enable_model_warmup=true"]
        if self.enable_batching:
            args += ["--enable_batching=true", f"--batching_parameters_file={config_dir}/{BATCHING_PARAMETERS_FILE}"]
        return args


@dataclasses.dataclass(frozen=True)
class ServingTarget:
    """What serving/ is told about the model it serves and deploys, by whoever pushes it (the pipeline
    builds it from its config: ``PipelineConfig.serving_target``). serving/ reads nothing else.

    model_name       the name clients ask for (TF Serving's --model_name; the pipeline's name)
    model_base_path  where the versions are pushed, <model_base_path>/<version>/ (local or gs://...)
    config_dir       where `tfxp serving-config` writes the server's config files (models.config, ...)
    options          how it is served and deployed (the config's ``serving:`` section)
    project_image    the project's own image (tfxp in it; the config's ``image``): pods that run project
                     code, the request-log sink's
    """
    model_name: str
    model_base_path: str
    config_dir: str
    options: ServingOptions = dataclasses.field(default_factory=ServingOptions)
    project_image: str = ""
