"""The Evaluator's TFMA config for each task, and TFMA itself computing and gating with it."""
import numpy as np
import pytest
import tensorflow_model_analysis as tfma

from pipeline.config import load_config
from pipeline.evaluation import describe_gate, make_eval_config
from tests.support.marks import uses

EXPECTED_METRICS = {
    "synth_binary": {"binary_accuracy", "auc", "example_count"},
    "synth_multiclass": {"sparse_categorical_accuracy", "example_count"},
    "synth_regression": {"mean_absolute_error", "root_mean_squared_error", "example_count"},
}


def _config(tmp_path, package, *overrides):
    path = tmp_path / "config.yaml"
    path.write_text(f"pipeline_name: t\ndata_root: /data\nuser_package: {package}\n")
    return load_config(str(path), list(overrides))


def _gated(eval_config):
    (gated,) = [m for spec in eval_config.metrics_specs for m in spec.metrics if m.per_slice_thresholds]
    return gated


def test_the_sample_gates_on_binary_accuracy_with_the_configured_bounds():
    cfg = load_config(overrides=["evaluation.threshold=0.7", "evaluation.max_degradation=0.02"])
    gated = _gated(make_eval_config(cfg))
    assert gated.class_name == "BinaryAccuracy"
    (per_slice,) = gated.per_slice_thresholds
    assert list(per_slice.slicing_specs) == [tfma.SlicingSpec()]  # the overall slice only
    assert per_slice.threshold.value_threshold.lower_bound.value == 0.7
    assert per_slice.threshold.change_threshold.absolute.value == -0.02
    assert per_slice.threshold.change_threshold.direction == tfma.MetricDirection.HIGHER_IS_BETTER
    assert describe_gate(cfg) == "accuracy >= 0.7 and at most 0.02 worse than the last blessed model's accuracy"


def test_regression_gates_lower_is_better_with_an_upper_bound_and_a_relative_change(tmp_path):
    cfg = _config(tmp_path, "synth_regression", "evaluation.threshold=3.5", "evaluation.max_degradation=0.05")
    threshold = _gated(make_eval_config(cfg)).per_slice_thresholds[0].threshold
    assert threshold.value_threshold.upper_bound.value == 3.5 and not threshold.value_threshold.HasField("lower_bound")
    assert threshold.change_threshold.direction == tfma.MetricDirection.LOWER_IS_BETTER
    assert threshold.change_threshold.relative.value == 0.05
    assert describe_gate(cfg) == "mae <= 3.5 and at most 5% worse than the last blessed model's mae"


def test_without_a_threshold_a_first_run_is_still_validated_and_so_blessed(tmp_path, package):
    """TFMA drops change thresholds when there is no baseline; without a value threshold TFX's Evaluator
    would validate nothing and bless nothing, and a pipeline could never push its first model."""
    from tensorflow_model_analysis.evaluators import metrics_validator
    from tensorflow_model_analysis.metrics import metric_types
    cfg = _config(tmp_path, package)
    assert cfg.evaluation.threshold is None
    gate = cfg.gate_metric
    config = _first_run(make_eval_config(cfg))
    assert _gated(config).per_slice_thresholds[0].threshold.HasField("value_threshold")
    worst = 0.0 if gate.higher_is_better else 1e12
    sliced = ((), {metric_types.MetricKey(name=gate.tfma_name): worst})
    assert metrics_validator.validate_metrics(sliced, config).validation_ok


def test_multiclass_never_uses_binary_metrics(tmp_path):
    eval_config = make_eval_config(_config(tmp_path, "synth_multiclass"))
    names = {m.class_name for spec in eval_config.metrics_specs for m in spec.metrics}
    assert names == {"ExampleCount", "SparseCategoricalAccuracy"}


def test_slices_are_the_package_s_unless_the_config_names_others(tmp_path):
    assert [list(s.feature_keys) for s in make_eval_config(_config(tmp_path, "synth_regression")).slicing_specs] \
        == [[], ["district"]]
    cfg = _config(tmp_path, "synth_regression", "evaluation.slice_features=[floor, rooms]")
    assert [list(s.feature_keys) for s in make_eval_config(cfg).slicing_specs] == [[], ["floor"], ["rooms"]]


def test_another_gate_metric_can_be_chosen(tmp_path):
    cfg = _config(tmp_path, "synth_binary", "evaluation.gate_metric=auc")
    assert _gated(make_eval_config(cfg)).class_name == "AUC"


def _first_run(eval_config):
    """The config without change thresholds: what TFMA applies when there is no baseline yet
    (TFX's Evaluator rubber-stamps its first run)."""
    config = tfma.EvalConfig()
    config.CopyFrom(eval_config)
    for spec in config.metrics_specs:
        for metric in spec.metrics:
            for per_slice in metric.per_slice_thresholds:
                per_slice.threshold.ClearField("change_threshold")
    return config


@pytest.fixture(scope="module")
@uses("beam", "training")
def tfma_results(workspace, tmp_path_factory):
    """TFMA run on each test dataset's trained model with the pipeline's eval config (one run each)."""
    results = {}

    def run(package):
        if package not in results:
            tmp = tmp_path_factory.mktemp(f"tfma-{package}")
            cfg = _config(tmp, package)
            eval_config = _first_run(make_eval_config(cfg))
            model = tfma.default_eval_shared_model(eval_saved_model_path=workspace.trained(package)["serving"],
                                                   eval_config=eval_config)
            result = tfma.run_model_analysis(eval_shared_model=model, eval_config=eval_config,
                                             data_location=workspace.tfrecords(package)["patterns"]["eval"],
                                             output_path=str(tmp / "out"))
            overall = next(m[""][""] for key, m in result.slicing_metrics if key == ())
            results[package] = (cfg, eval_config, {k: v["doubleValue"] for k, v in overall.items()})
        return results[package]
    return run


def test_tfma_computes_the_task_s_metrics_as_the_task_defines_them(workspace, package, tfma_results):
    from serving import predict
    cfg, _, metrics = tfma_results(package)
    assert set(metrics) == EXPECTED_METRICS[package]
    task = cfg.user_code.task
    raw = predict.first_raw_examples(workspace.tfrecords(package)["root"], "eval", 100_000)
    model_dir = workspace.trained(package)["serving"]
    ours = task.compute_metrics(predict.labels_of(model_dir, raw, task.label_key),
                                predict.predict_serialized(model_dir, raw))
    for metric in task.METRICS:
        assert metrics[metric.tfma_name] == pytest.approx(ours[metric.name], rel=1e-3, abs=1e-3), metric.name
    assert metrics["example_count"] == len(raw)


def test_tfma_s_validator_blesses_and_refuses_in_the_task_s_direction(package, tfma_results, tmp_path):
    from tensorflow_model_analysis.evaluators import metrics_validator
    from tensorflow_model_analysis.metrics import metric_types
    cfg, _, metrics = tfma_results(package)
    gate = cfg.gate_metric
    value = metrics[gate.tfma_name]
    sliced = ((), {metric_types.MetricKey(name=gate.tfma_name): value})

    def ok(threshold):
        config = _first_run(make_eval_config(_config(tmp_path, package, f"evaluation.threshold={threshold}")))
        return metrics_validator.validate_metrics(sliced, config).validation_ok

    better, worse = (value - 0.01, value + 0.01) if gate.higher_is_better else (value + 0.01, value - 0.01)
    assert ok(np.clip(better, 0, 1) if gate.bounded else better)
    assert not ok(np.clip(worse, 0, 1) if gate.bounded else worse)
