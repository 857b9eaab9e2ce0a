"""The run parameters (data root, train and eval steps, gate threshold): what each defaults to, and how the
components that take them read a value a run form may send (the whole path: test_kubeflow.py's e2e test)."""
import sys

import pytest
import tensorflow_model_analysis as tfma

from components.custom.evaluator import with_gate_threshold
from components.training.component import step_count
from pipeline.config import load_config
from pipeline.evaluation import make_eval_config
from pipeline.run_parameters import RunParameters


def test_on_kubeflow_each_is_a_typed_runtime_parameter_that_defaults_to_the_config():
    cfg = load_config(overrides=["training.train_steps=300", "evaluation.threshold=0.65"])
    run = RunParameters.runtime(cfg)
    assert {p.name: (p.ptype, p.default) for p in vars(run).values()} == {
        "data_root": (str, cfg.resolved_data_root), "train_steps": (int, 300),
        "eval_steps": (int, cfg.training.eval_steps), "gate_threshold": (float, 0.65)}
    assert vars(RunParameters.from_config(cfg)) == {name: p.default for name, p in vars(run).items()}


def test_without_a_threshold_the_gate_parameter_defaults_to_no_bound():
    run = RunParameters.runtime(load_config(overrides=["evaluation.threshold=null"]))
    assert run.gate_threshold.default == -sys.float_info.max  # accuracy: at least anything


@pytest.mark.parametrize("value", [0, -5, 2.5, "100", None, True])
def test_the_trainer_refuses_a_step_count_that_is_not_a_whole_positive_number(value):
    with pytest.raises(ValueError, match="Trainer: train_steps must be a whole number of steps, at least 1"):
        step_count({"train_steps": value}, "train_steps")


def test_the_trainer_takes_a_whole_number_sent_as_a_json_number():
    assert step_count({"eval_steps": 20.0}, "eval_steps") == 20


def _value_threshold(eval_config):
    (gated,) = [m for spec in eval_config.metrics_specs for m in spec.metrics if m.per_slice_thresholds]
    return gated.per_slice_thresholds[0].threshold


def test_a_run_s_gate_threshold_replaces_the_bound_and_keeps_the_change_threshold():
    original = make_eval_config(load_config(overrides=["evaluation.threshold=0.6"]))
    replaced = with_gate_threshold(original, 0.9)
    assert _value_threshold(replaced).value_threshold.lower_bound.value == 0.9
    assert _value_threshold(replaced).change_threshold == _value_threshold(original).change_threshold
    assert _value_threshold(original).value_threshold.lower_bound.value == 0.6  # a copy


def test_a_gate_threshold_needs_exactly_one_value_threshold_to_replace():
    with pytest.raises(ValueError, match="exactly one value threshold with one bound .* it has 0"):
        with_gate_threshold(tfma.EvalConfig(metrics_specs=[tfma.MetricsSpec(metrics=[
            tfma.MetricConfig(class_name="ExampleCount")])]), 0.5)


@pytest.mark.beam
def test_the_trainer_hands_run_fn_its_own_step_counts(workspace, tmp_path):
    """The local path as a Kubeflow task's: ints in train_steps/eval_steps become fn_args' steps."""
    from tfx.dsl.components.base import base_executor
    from tfx.types import artifact_utils, standard_artifacts

    from components.training.component import Executor

    transformed = workspace.transformed("synth_binary")
    examples = standard_artifacts.Examples()
    examples.uri, examples.split_names = transformed["examples_uri"], artifact_utils.encode_split_names(
        ["train", "eval"])
    graph = standard_artifacts.TransformGraph()
    graph.uri = transformed["transform_output"]
    model, model_run = standard_artifacts.Model(), standard_artifacts.ModelRun()
    model.uri, model_run.uri = str(tmp_path / "model"), str(tmp_path / "model_run")
    executor = Executor(base_executor.BaseExecutor.Context(tmp_dir=str(tmp_path / "tmp")))
    fn_args = executor._GetFnArgs(  # pylint: disable=protected-access
        {"examples": [examples], "transform_graph": [graph]}, {"model": [model], "model_run": [model_run]},
        {"train_args": "{}", "eval_args": "{}", "custom_config": "{}", "run_fn": "m.run_fn",
         "train_steps": 7, "eval_steps": 3})
    assert (fn_args.train_steps, fn_args.eval_steps) == (7, 3)
    assert fn_args.train_files and fn_args.transform_output == transformed["transform_output"]
