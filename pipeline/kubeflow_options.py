"""The config's ``kubeflow:`` section: what only the compiled Kubeflow pipeline uses.

``kubeflow.resources``: the CPU, memory and accelerators of each step's pod, written into the KFP v2
IR through TFX's own per-component platform config (``with_platform_config(ResourceSpec)``): the
Trainer, Transform and the Evaluator sized apart, every other step ``default``. Quantities are
Kubernetes': CPU in cores (``2``, ``0.5``, ``500m``), memory with a unit (``8Gi``, ``512Mi``, ``8G``).

Local runs (``tfxp run``, ``tfxp dev``) ignore this section: the steps run in one process on this
machine. No TensorFlow or KFP here: loading a config reads this module.
"""
from __future__ import annotations

import dataclasses
import re
from decimal import Decimal
from typing import Dict, Optional

from components.training.engines import KubeflowTrainingOptions
from tfxp import nodes

# Kubernetes quantity suffixes (k8s.io/apimachinery resource.Quantity) this section accepts.
_MEMORY_UNITS = {"Ki": 2 ** 10, "Mi": 2 ** 20, "Gi": 2 ** 30, "Ti": 2 ** 40,
                 "k": 10 ** 3, "K": 10 ** 3, "M": 10 ** 6, "G": 10 ** 9, "T": 10 ** 12}
_NUMBER = r"(\d+(?:\.\d+)?|\.\d+)"
_MEMORY = re.compile(_NUMBER + r"(Ki|Mi|Gi|Ti|k|K|M|G|T)")
_CPU = re.compile(_NUMBER + r"(m?)")
# KFP v2 writes memory in GB (10^9 bytes) into the IR; its driver turns it back into "<n>G" on the pod.
_IR_MEMORY_UNIT = 10 ** 9
# An accelerator: a Kubernetes extended resource (Kubeflow Pipelines puts it in the pod's limits as is,
# e.g. nvidia.com/gpu) or a Vertex AI accelerator type (NVIDIA_TESLA_T4, TPU_V3).
_K8S_RESOURCE = re.compile(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?/[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")
_VERTEX_ACCELERATOR = re.compile(r"[A-Z][A-Z0-9_]*")
# Strategies that train on this pod's GPUs (components/training/strategy.py).
GPU_STRATEGIES = ("auto", "mirrored", "one_device")


def cpu_cores(value: str, key: str) -> float:
    """``2``, ``0.5`` or ``500m`` as cores; ValueError naming ``key`` otherwise."""
    match = _CPU.fullmatch(str(value).strip())
    if not match:
        raise ValueError(f"{key}: expected CPU cores as Kubernetes writes them (2, 0.5 or 500m), got {value!r}")
    cores = Decimal(match.group(1)) / (1000 if match.group(2) else 1)
    if cores <= 0:
        raise ValueError(f"{key} must be above 0 cores, got {value!r}")
    return float(cores)


def memory_bytes(value: str, key: str) -> int:
    """``8Gi``, ``512Mi``, ``8G`` as bytes; ValueError naming ``key`` otherwise (a unit is required)."""
    match = _MEMORY.fullmatch(str(value).strip())
    if not match:
        raise ValueError(f"{key}: expected memory with a unit as Kubernetes writes it (8Gi, 512Mi, 8G; units "
                         f"{', '.join(_MEMORY_UNITS)}), got {value!r}")
    size = int(Decimal(match.group(1)) * _MEMORY_UNITS[match.group(2)])
    if size < 2 ** 20:
        raise ValueError(f"{key} must be at least 1Mi, got {value!r}")
    return size


@dataclasses.dataclass
class StepResources:
    """One step's pod: limits, and requests (null: the limit, so the scheduler reserves what the step may use
    and a node under memory pressure does not evict it first)."""
    cpu_limit: str = "1"
    memory_limit: str = "3Gi"
    cpu_request: Optional[str] = None
    memory_request: Optional[str] = None

    def check(self, key: str) -> None:
        """Raises ValueError naming ``<key>.<field>`` that Kubernetes would not take."""
        cpu, memory = cpu_cores(self.cpu_limit, f"{key}.cpu_limit"), memory_bytes(self.memory_limit, f"{key}.memory_limit")
        if self.cpu_request is not None and cpu_cores(self.cpu_request, f"{key}.cpu_request") > cpu:
            raise ValueError(f"{key}.cpu_request ({self.cpu_request}) is above {key}.cpu_limit ({self.cpu_limit})")
        if self.memory_request is not None and memory_bytes(self.memory_request, f"{key}.memory_request") > memory:
            raise ValueError(f"{key}.memory_request ({self.memory_request}) is above {key}.memory_limit "
                             f"({self.memory_limit})")

    @property
    def cores(self) -> float:
        return cpu_cores(self.cpu_limit, "cpu_limit")

    def ir_fields(self) -> Dict[str, float]:
        """The KFP v2 ResourceSpec's fields: cores, and memory in GB as the IR counts it."""
        return {"cpu_limit": self.cores,
                "memory_limit": memory_bytes(self.memory_limit, "memory_limit") / _IR_MEMORY_UNIT,
                "cpu_request": cpu_cores(self.cpu_request or self.cpu_limit, "cpu_request"),
                "memory_request": memory_bytes(self.memory_request or self.memory_limit, "memory_request")
                / _IR_MEMORY_UNIT}

    def resource_spec(self):
        """The ResourceSpec proto TFX's KubeflowV2DagRunner copies into the step's container (kfp-pipeline-spec)."""
        from kfp.pipeline_spec import pipeline_spec_pb2

        return pipeline_spec_pb2.PipelineDeploymentConfig.PipelineContainerSpec.ResourceSpec(**self.ir_fields())


@dataclasses.dataclass
class TransformResources(StepResources):
    cpu_limit: str = "2"
    memory_limit: str = "6Gi"


@dataclasses.dataclass
class EvaluatorResources(StepResources):
    cpu_limit: str = "2"
    memory_limit: str = "6Gi"


@dataclasses.dataclass
class TrainerResources(StepResources):
    """The Trainer's pod, with accelerators: a Kubernetes resource name on Kubeflow Pipelines (nvidia.com/gpu;
    the node pool decides which GPU), a Vertex AI accelerator type on Vertex (NVIDIA_TESLA_T4)."""
    cpu_limit: str = "4"
    memory_limit: str = "6Gi"
    accelerator: Optional[str] = None
    accelerator_count: Optional[int] = None  # null: 1 when accelerator is set

    @property
    def accelerators(self) -> int:
        return (self.accelerator_count or 1) if self.accelerator else 0

    @property
    def on_tpu(self) -> bool:
        return bool(self.accelerator) and "tpu" in self.accelerator.lower()

    def check(self, key: str) -> None:
        super().check(key)
        if self.accelerator_count is not None and not self.accelerator:
            raise ValueError(f"{key}.accelerator_count: {self.accelerator_count} accelerators of no type; set "
                             f"{key}.accelerator (nvidia.com/gpu on Kubeflow Pipelines, NVIDIA_TESLA_T4 on Vertex AI)")
        if self.accelerator_count is not None and self.accelerator_count < 1:
            raise ValueError(f"{key}.accelerator_count must be at least 1, got {self.accelerator_count}")
        if self.accelerator and not (_K8S_RESOURCE.fullmatch(self.accelerator)
                                     or _VERTEX_ACCELERATOR.fullmatch(self.accelerator)):
            raise ValueError(f"{key}.accelerator: expected a Kubernetes resource name (nvidia.com/gpu) or a Vertex "
                             f"AI accelerator type (NVIDIA_TESLA_T4), got {self.accelerator!r}")

    def ir_fields(self) -> Dict:
        fields = super().ir_fields()
        if self.accelerator:
            fields["accelerator"] = {"type": self.accelerator, "count": self.accelerators}
        return fields


@dataclasses.dataclass
class KubeflowResources:
    """kubeflow.resources: the Trainer, Transform and the Evaluator sized apart; ``default`` for every other
    step. The defaults fit the sample with room for its data to grow (docs/kubeflow.md#resources-per-step)."""
    default: StepResources = dataclasses.field(default_factory=StepResources)
    transform: TransformResources = dataclasses.field(default_factory=TransformResources)
    trainer: TrainerResources = dataclasses.field(default_factory=TrainerResources)
    evaluator: EvaluatorResources = dataclasses.field(default_factory=EvaluatorResources)

    def check(self) -> None:
        for name in ("default", "transform", "trainer", "evaluator"):
            getattr(self, name).check(f"kubeflow.resources.{name}")

    def for_node(self, node_id: str) -> StepResources:
        """The resources of the step with this node id (tfxp/nodes.py)."""
        return {nodes.TRANSFORM: self.transform, nodes.TRAINER: self.trainer,
                nodes.EVALUATOR: self.evaluator}.get(node_id, self.default)


@dataclasses.dataclass
class KubeflowOptions:
    """The config's ``kubeflow:`` section; only `tfxp compile` and `tfxp submit` read it (local runs ignore it)."""
    resources: KubeflowResources = dataclasses.field(default_factory=KubeflowResources)
    # Where the Trainer trains: its own pod, a Vertex AI CustomJob or a TFJob (components/training/engines.py).
    training: KubeflowTrainingOptions = dataclasses.field(default_factory=KubeflowTrainingOptions)

    def check(self, training) -> None:
        """Raises ValueError naming the ``kubeflow.<key>`` that cannot work, with ``training`` (TrainingOptions)."""
        self.resources.check()
        self.training.check(training.strategy)
        trainer = self.resources.trainer
        if not trainer.accelerator:
            return
        if self.training.engine != "pod":
            raise ValueError(f"kubeflow.resources.trainer.accelerator: with kubeflow.training.engine "
                             f"{self.training.engine} the Trainer step only launches the job and waits; its "
                             f"replicas' accelerators are kubeflow.training.accelerator_type and accelerator_count")
        key = "kubeflow.resources.trainer.accelerator"
        gpus = f"{trainer.accelerator} x {trainer.accelerators}"
        if trainer.on_tpu:
            if training.strategy != "tpu":
                raise ValueError(f"{key}: {gpus} needs training.strategy tpu, not {training.strategy}")
            return
        # One pod: a strategy that starts local worker processes or splits the CPU would leave the GPUs idle.
        if training.strategy not in GPU_STRATEGIES:
            raise ValueError(f"{key}: {gpus} needs a training.strategy that trains on the pod's GPUs "
                             f"({', '.join(GPU_STRATEGIES)}); training.strategy is {training.strategy}")
        if training.cpu_devices > 1:
            raise ValueError(f"{key}: {gpus} with training.cpu_devices {training.cpu_devices}: splitting the CPU "
                             f"into replicas is for CPU-only training (it moves training into a worker process); "
                             f"set training.cpu_devices to 0")
        if training.strategy == "one_device" and trainer.accelerators > 1:
            raise ValueError(f"{key}: {gpus} with training.strategy one_device trains on one of them; use "
                             f"mirrored or auto")
