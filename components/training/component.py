"""TFX's Trainer whose step counts are integer execution properties of their own.

TFX's Trainer takes its steps inside the TrainArgs and EvalArgs protos. A proto-valued execution property
cannot hold a Kubeflow run parameter: TFX 1.16's KubeflowV2DagRunner compiles ``train_args={"num_steps":
RuntimeParameter(...)}`` into a constant holding the RuntimeParameter's JSON, not a pipeline parameter. An int
execution property can: the compiled task reads it from the run's parameters (``componentInputParameter``).
So the steps travel as ``train_steps`` and ``eval_steps``, plain ints on a local run and run parameters on
Kubeflow, and the executor, TFX's GenericExecutor, hands them to ``run_fn`` as ``fn_args.train_steps`` and
``fn_args.eval_steps`` as TFX does with TrainArgs' and EvalArgs' ``num_steps``. Everything else is TFX's:
the spec's inputs, outputs and parameters, the TrainArgs/EvalArgs (splits), the run_fn call.
"""
from __future__ import annotations

from typing import Any, Dict, List

from tfx import types
from tfx.components.trainer import executor as trainer_executor
from tfx.dsl.components.base import base_component, executor_spec
from tfx.proto import trainer_pb2
from tfx.types import standard_artifacts, standard_component_specs
from tfx.types.component_spec import ExecutionParameter
from tfx.utils import json_utils

TRAIN_STEPS_KEY = "train_steps"
EVAL_STEPS_KEY = "eval_steps"


def step_count(exec_properties: Dict[str, Any], key: str) -> int:
    """The ``key`` steps of this execution: on Kubeflow a run parameter, so anything a run form takes."""
    value = exec_properties.get(key)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"Trainer: {key} must be a whole number of steps, at least 1, got {value!r} (the run's "
                         f"{key} parameter on Kubeflow, training.{key} in the config)")
    return value


class Executor(trainer_executor.GenericExecutor):
    """TFX's GenericExecutor, with fn_args' step counts from ``train_steps`` and ``eval_steps``."""

    def _GetFnArgs(self, input_dict: Dict[str, List[types.Artifact]],
                   output_dict: Dict[str, List[types.Artifact]], exec_properties: Dict[str, Any]):
        fn_args = super()._GetFnArgs(input_dict, output_dict, exec_properties)
        fn_args.train_steps = step_count(exec_properties, TRAIN_STEPS_KEY)
        fn_args.eval_steps = step_count(exec_properties, EVAL_STEPS_KEY)
        return fn_args


class TrainerSpec(standard_component_specs.TrainerSpec):
    PARAMETERS = {**standard_component_specs.TrainerSpec.PARAMETERS,
                  TRAIN_STEPS_KEY: ExecutionParameter(type=int),
                  EVAL_STEPS_KEY: ExecutionParameter(type=int)}


class Trainer(base_component.BaseComponent):
    """TFX's Trainer (same inputs, outputs and run_fn call) with ``train_steps`` and ``eval_steps`` as ints
    or run parameters (``tfx.dsl.experimental.RuntimeParameter(ptype=int)``)."""
    SPEC_CLASS = TrainerSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

    def __init__(self, examples: types.BaseChannel, *, run_fn: str, train_steps, eval_steps,
                 transform_graph: types.BaseChannel = None, schema: types.BaseChannel = None,
                 hyperparameters: types.BaseChannel = None, custom_config: Dict[str, Any] = None):
        super().__init__(spec=TrainerSpec(
            examples=examples, transform_graph=transform_graph, schema=schema, hyperparameters=hyperparameters,
            train_args=trainer_pb2.TrainArgs(), eval_args=trainer_pb2.EvalArgs(), run_fn=run_fn,
            custom_config=json_utils.dumps(custom_config), train_steps=train_steps, eval_steps=eval_steps,
            model=types.Channel(type=standard_artifacts.Model),
            model_run=types.Channel(type=standard_artifacts.ModelRun)))
