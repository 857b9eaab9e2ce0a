"""What a run may change without a rebuild: the data root, the Trainer's steps and the gate threshold.

On Kubeflow each is a pipeline parameter (TFX's ``RuntimeParameter``, compiled into the root's
``inputDefinitions`` with the config's value as its default: the KFP UI's run form, and
``create_run_from_pipeline_package(..., arguments={...})``). A local run takes the config's values as they are.

Each lands on an execution property that holds a plain value, since TFX 1.16's KubeflowV2DagRunner
compiles a RuntimeParameter only there (nested in a proto such as TrainArgs, it becomes a constant holding
its JSON): ImportExampleGen's ``input_base``, the Trainer's ``train_steps``/``eval_steps``
(components/training/component.py) and the Evaluator's ``gate_threshold`` (components/custom/evaluator.py).
"""
from __future__ import annotations

import dataclasses
from typing import Any

from pipeline.config import PipelineConfig

# Parameter names: lowercase letters, digits and '_' (valid for Kubeflow Pipelines and Vertex AI alike).
DATA_ROOT, TRAIN_STEPS, EVAL_STEPS, GATE_THRESHOLD = "data_root", "train_steps", "eval_steps", "gate_threshold"
DESCRIPTIONS = {
    DATA_ROOT: "pre-split TFRecords of tf.Example: <data_root>/train/*, <data_root>/eval/*",
    TRAIN_STEPS: "training steps (not used when training.train_epochs is set)",
    EVAL_STEPS: "evaluation steps during training",
    GATE_THRESHOLD: "the Evaluator's bound on the gate metric (at least this for accuracy and AUC, at most this for "
                    "errors)",
}


@dataclasses.dataclass(frozen=True)
class RunParameters:
    """The values ``create_pipeline`` wires in: the config's own, or RuntimeParameters that default to them."""
    data_root: Any
    train_steps: Any
    eval_steps: Any
    gate_threshold: Any

    @classmethod
    def from_config(cls, cfg: PipelineConfig) -> "RunParameters":
        from pipeline.evaluation import gate_bound

        return cls(data_root=cfg.resolved_data_root, train_steps=int(cfg.training.train_steps),
                   eval_steps=int(cfg.training.eval_steps), gate_threshold=gate_bound(cfg))

    @classmethod
    def runtime(cls, cfg: PipelineConfig) -> "RunParameters":
        """Kubeflow: each a RuntimeParameter named as above, of its value's type, defaulting to the config's value."""
        from tfx.orchestration.data_types import RuntimeParameter

        values = dataclasses.asdict(cls.from_config(cfg))
        return cls(**{name: RuntimeParameter(name=name, ptype=type(value), default=value,
                                             description=DESCRIPTIONS[name])
                      for name, value in values.items()})
