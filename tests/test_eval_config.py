"""The Evaluator's TFMA config: what blesses a model."""
import tensorflow_model_analysis as tfma

from components import features as F
from pipeline.config import load_config
from pipeline.pipeline import make_eval_config


def _accuracy_config(eval_config):
    return next(m for spec in eval_config.metrics_specs for m in spec.metrics if m.class_name == "BinaryAccuracy")


def test_thresholds_gate_on_the_overall_slice_only():
    accuracy = _accuracy_config(make_eval_config(load_config()))
    assert not accuracy.HasField("threshold")  # a threshold there would apply to every slice
    (per_slice,) = accuracy.per_slice_thresholds
    assert list(per_slice.slicing_specs) == [tfma.SlicingSpec()]


def test_value_and_change_thresholds_come_from_the_config():
    cfg = load_config(overrides=["evaluation.min_accuracy=0.7", "evaluation.max_accuracy_drop=0.02"])
    threshold = _accuracy_config(make_eval_config(cfg)).per_slice_thresholds[0].threshold
    assert threshold.value_threshold.lower_bound.value == 0.7
    assert threshold.change_threshold.absolute.value == -0.02
    assert threshold.change_threshold.direction == tfma.MetricDirection.HIGHER_IS_BETTER


def test_metrics_are_sliced_by_the_configured_features():
    eval_config = make_eval_config(load_config(overrides=["evaluation.slice_features=[trip_start_hour, payment_type]"]))
    assert [list(s.feature_keys) for s in eval_config.slicing_specs] == [[], ["trip_start_hour"], ["payment_type"]]
    assert eval_config.model_specs[0].label_key == F.TRANSFORMED_LABEL_KEY
