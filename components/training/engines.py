"""Where the Trainer trains on Kubeflow: the config's ``kubeflow.training:`` section and what each engine
adds to the Trainer's custom_config. No TensorFlow here; TFX's Google Cloud extension is imported only
for engine ``vertex``.

* ``pod`` (default): the Trainer trains in its own KFP pod, as a local run does (one machine; the
  multi-process strategies start local worker processes: launcher.py).
* ``vertex``: TFX's own extension, ``tfx.extensions.google_cloud_ai_platform.Trainer``: the step submits a
  Vertex AI CustomJob whose worker pools (a chief, then ``workers - 1`` workers) each run TFX's
  ``tfx.scripts.run_executor`` with TFX's stock GenericExecutor; Vertex AI sets every replica's TF_CONFIG.
* ``tfjob``: a Kubeflow Training Operator TFJob (Chief + Worker replicas, the same command), created and
  watched by the Trainer step (components/training/tfjob_executor.py); the operator sets TF_CONFIG.

Every replica runs ``run_fn``; with the engine's TF_CONFIG, run_fn trains this replica's part in one
worker process (launcher.py): the chief exports into the Trainer's model dir, the others into temporary dirs.
"""
from __future__ import annotations

import dataclasses
import re
from typing import Any, Dict, Optional

from components.training.tfjob import DNS_LABEL, DNS_SUBDOMAIN, TFJOB_KEY, TFJobSettings

ENGINES = {
    "pod": "the Trainer trains in its own Kubeflow step (one machine)",
    "vertex": "a Vertex AI CustomJob through TFX's google_cloud_ai_platform Trainer",
    "tfjob": "a Kubeflow Training Operator TFJob created by the Trainer step",
}
MULTI_MACHINE_STRATEGY = "multi_worker_mirrored"
# A Kubernetes quantity (resource.Quantity): a decimal number with an optional suffix.
_QUANTITY = re.compile(r"[+]?(\d+(\.\d*)?|\.\d+)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei|[eE][+-]?\d+)?")
# A project id, or a domain-scoped one (example.com:my-project).
_GCP_PROJECT = re.compile(r"([a-z0-9.-]+:)?[a-z][-a-z0-9]{4,28}[a-z0-9]")


@dataclasses.dataclass
class VertexTrainingOptions:
    """engine vertex: where the CustomJob runs."""
    project: Optional[str] = None           # the Google Cloud project (required)
    region: str = "us-central1"
    service_account: Optional[str] = None   # the replicas' service account (null: the project's Vertex AI default)


@dataclasses.dataclass
class TFJobOptions:
    """engine tfjob: where the TFJob runs and what each replica gets."""
    namespace: str = "kubeflow"
    service_account: Optional[str] = None   # the replica pods' service account (reads and writes the artifacts)
    cpu: str = "4"                          # requested per replica
    memory: str = "16Gi"                    # requested and limit per replica
    gpu_resource: str = "nvidia.com/gpu"    # the extended resource accelerator_count asks for
    timeout_seconds: int = 86400            # the TFJob's activeDeadlineSeconds; the step waits this long


@dataclasses.dataclass
class KubeflowTrainingOptions:
    engine: str = "pod"
    workers: int = 1                        # replicas, the chief included (vertex, tfjob)
    # vertex: the Compute Engine machine type of every replica (required); tfjob: optional, the nodes'
    # node.kubernetes.io/instance-type label (a node selector).
    machine_type: Optional[str] = None
    accelerator_type: Optional[str] = None  # vertex: e.g. NVIDIA_TESLA_T4 (aiplatform_v1 AcceleratorType)
    accelerator_count: int = 0              # per replica (tfjob: of tfjob.gpu_resource)
    image: Optional[str] = None             # the replicas' image; null: the pipeline image (image:)
    vertex: VertexTrainingOptions = dataclasses.field(default_factory=VertexTrainingOptions)
    tfjob: TFJobOptions = dataclasses.field(default_factory=TFJobOptions)

    def check(self, strategy: str) -> None:
        """Raises ValueError naming the ``kubeflow.training.<key>`` that cannot work with ``strategy``."""
        key = "kubeflow.training"
        if self.engine not in ENGINES:
            raise ValueError(f"{key}.engine must be one of {', '.join(ENGINES)}, got {self.engine!r}")
        if self.workers < 1:
            raise ValueError(f"{key}.workers must be at least 1 (the chief), got {self.workers}")
        if self.accelerator_count < 0:
            raise ValueError(f"{key}.accelerator_count must be >= 0, got {self.accelerator_count}")
        if self.engine == "pod":
            if self.workers > 1:
                raise ValueError(f"{key}.workers: {self.workers} replicas need engine vertex or tfjob; with engine "
                                 f"pod the Trainer is one pod (training.num_workers sets its local worker processes)")
            return
        if self.workers > 1 and strategy != MULTI_MACHINE_STRATEGY:
            raise ValueError(
                f"{key}.workers: {self.workers} replicas train together only with training.strategy "
                f"{MULTI_MACHINE_STRATEGY} (got {strategy}; roles from the engine's TF_CONFIG); for one machine set "
                f"{key}.workers to 1 (mirrored uses its GPUs; parameter_server needs ps replicas no engine here creates)")
        if self.image is not None and not self.image.strip():
            raise ValueError(f"{key}.image must name an image, or be null for the pipeline image")
        (self._check_vertex if self.engine == "vertex" else self._check_tfjob)(key)

    def _check_vertex(self, key: str) -> None:
        vertex = self.vertex
        if not vertex.project or not _GCP_PROJECT.fullmatch(vertex.project):
            raise ValueError(f"{key}.vertex.project: engine vertex needs the Google Cloud project id "
                             f"(e.g. my-project-123), got {vertex.project!r}")
        if not re.fullmatch(r"[a-z]+-[a-z]+\d+", vertex.region or ""):
            raise ValueError(f"{key}.vertex.region must be a Google Cloud region (e.g. us-central1), got {vertex.region!r}")
        if not self.machine_type:
            raise ValueError(f"{key}.machine_type: engine vertex needs a Compute Engine machine type (e.g. n1-standard-8)")
        if bool(self.accelerator_type) != (self.accelerator_count > 0):
            raise ValueError(f"{key}.accelerator_type and accelerator_count go together on Vertex AI (a type and a "
                             f"count > 0, or neither), got {self.accelerator_type!r} x {self.accelerator_count}")
        if self.accelerator_type:
            from google.cloud.aiplatform_v1.types.accelerator_type import AcceleratorType

            names = [n for n in AcceleratorType.__members__ if n != "ACCELERATOR_TYPE_UNSPECIFIED"]
            if self.accelerator_type not in names:
                raise ValueError(f"{key}.accelerator_type must be one of Vertex AI's {', '.join(names)}, "
                                 f"got {self.accelerator_type!r}")

    def _check_tfjob(self, key: str) -> None:
        tfjob = self.tfjob
        if self.accelerator_type:
            raise ValueError(f"{key}.accelerator_type names a Vertex AI accelerator; with engine tfjob set "
                             f"{key}.tfjob.gpu_resource (e.g. nvidia.com/gpu) and {key}.accelerator_count")
        if not DNS_LABEL.fullmatch(tfjob.namespace) or len(tfjob.namespace) > 63:
            raise ValueError(f"{key}.tfjob.namespace must be a Kubernetes namespace name, got {tfjob.namespace!r}")
        if tfjob.service_account is not None and not DNS_SUBDOMAIN.fullmatch(tfjob.service_account):
            raise ValueError(f"{key}.tfjob.service_account must be a Kubernetes service account name (or null), "
                             f"got {tfjob.service_account!r}")
        for name in ("cpu", "memory"):
            if not _QUANTITY.fullmatch(str(getattr(tfjob, name))):
                raise ValueError(f"{key}.tfjob.{name} must be a Kubernetes quantity (e.g. 4, 500m, 16Gi), "
                                 f"got {getattr(tfjob, name)!r}")
        if "/" not in tfjob.gpu_resource:
            raise ValueError(f"{key}.tfjob.gpu_resource must be an extended resource name (e.g. nvidia.com/gpu), "
                             f"got {tfjob.gpu_resource!r}")
        if tfjob.timeout_seconds < 1:
            raise ValueError(f"{key}.tfjob.timeout_seconds must be at least 1, got {tfjob.timeout_seconds}")


def worker_pool_specs(options: KubeflowTrainingOptions, image: str) -> list:
    """Vertex AI worker pools: pool 0 is the chief (one replica), pool 1 the other ``workers - 1``. TFX's
    Vertex client fills in each pool's container command (its run_executor entrypoint)."""
    machine_spec: Dict[str, Any] = {"machine_type": options.machine_type}
    if options.accelerator_count:
        machine_spec.update(accelerator_type=options.accelerator_type, accelerator_count=options.accelerator_count)
    counts = [1] + ([options.workers - 1] if options.workers > 1 else [])
    return [{"machine_spec": dict(machine_spec), "replica_count": count, "container_spec": {"image_uri": image}}
            for count in counts]


def vertex_custom_config(options: KubeflowTrainingOptions, image: str) -> Dict[str, Any]:
    """The keys TFX's google_cloud_ai_platform Trainer reads from custom_config (its executor pops
    ``project`` and builds the CustomJob from ``job_spec``)."""
    from tfx.extensions.google_cloud_ai_platform.constants import ENABLE_VERTEX_KEY, VERTEX_REGION_KEY
    from tfx.extensions.google_cloud_ai_platform.trainer.executor import TRAINING_ARGS_KEY

    job_spec: Dict[str, Any] = {"worker_pool_specs": worker_pool_specs(options, image)}
    if options.vertex.service_account:
        job_spec["service_account"] = options.vertex.service_account
    return {ENABLE_VERTEX_KEY: True, VERTEX_REGION_KEY: options.vertex.region,
            TRAINING_ARGS_KEY: {"project": options.vertex.project, "job_spec": job_spec}}


def tfjob_custom_config(options: KubeflowTrainingOptions, image: str, pipeline_name: str) -> Dict[str, Any]:
    """What the TFJob Trainer's executor needs to build the TFJob (components/training/tfjob.py)."""
    tfjob = options.tfjob
    settings = TFJobSettings(
        name_prefix=pipeline_name, namespace=tfjob.namespace, image=image, workers=options.workers,
        service_account=tfjob.service_account, cpu=str(tfjob.cpu), memory=str(tfjob.memory),
        gpu_resource=tfjob.gpu_resource, accelerator_count=options.accelerator_count,
        machine_type=options.machine_type, timeout_seconds=tfjob.timeout_seconds)
    return {TFJOB_KEY: dataclasses.asdict(settings)}


def engine_custom_config(options: KubeflowTrainingOptions, pipeline_image: str, pipeline_name: str) -> Dict[str, Any]:
    """What the engine adds to the Trainer's custom_config ({} for pod)."""
    image = options.image or pipeline_image
    if options.engine == "vertex":
        return vertex_custom_config(options, image)
    if options.engine == "tfjob":
        return tfjob_custom_config(options, image, pipeline_name)
    return {}


def trainer_class(options: KubeflowTrainingOptions):
    """The Trainer component class of the engine (each imported only when chosen). All three are the project's
    Trainer (components/training/component.py: TFX's, with the step counts as run parameters) with the engine's
    executor: TFX's GenericExecutor in the step itself, TFX's Vertex AI extension, or the TFJob launcher."""
    if options.engine == "vertex":
        from components.training.vertex_trainer import VertexTrainer as Trainer
    elif options.engine == "tfjob":
        from components.training.tfjob_executor import TFJobTrainer as Trainer
    else:
        from components.training.component import Trainer
    return Trainer
