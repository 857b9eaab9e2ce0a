"""The Evaluator's TFMA config, from the task in the user's features.py and the config's evaluation section.

Metrics are the task's (components/core/task.py): BinaryAccuracy and AUC for binary
classification, SparseCategoricalAccuracy for multi-class (TFMA's binary metrics would binarise a
softmax one-vs-rest and bless it), MeanAbsoluteError and RootMeanSquaredError for regression.
The gate is on one metric, in its direction: a value threshold (at least, or at most) and a change
threshold against the baseline (absolute for fractions, relative for errors), on the overall slice
only: slices are computed for analysis, and small ones are too noisy to block a push.
"""
from __future__ import annotations

import sys

import tensorflow_model_analysis as tfma

from pipeline.config import PipelineConfig
from tfxp import contract


def gate_bound(cfg: PipelineConfig) -> float:
    """The gate metric's value bound: evaluation.threshold, or the widest bound when it is null (without a
    value threshold, a first run (no baseline: TFMA drops change thresholds) would have nothing to validate,
    and TFX's Evaluator then writes no blessing: nothing would ever be pushed)."""
    if cfg.evaluation.threshold is not None:
        return float(cfg.evaluation.threshold)
    return -sys.float_info.max if cfg.gate_metric.higher_is_better else sys.float_info.max


def gate_threshold(cfg: PipelineConfig) -> tfma.MetricThreshold:
    metric, ev = cfg.gate_metric, cfg.evaluation
    direction = tfma.MetricDirection.HIGHER_IS_BETTER if metric.higher_is_better else tfma.MetricDirection.LOWER_IS_BETTER
    # TFMA compares candidate - baseline (absolute) or (candidate - baseline) / baseline (relative)
    # with the bound: above -d when higher is better, below +d when lower is better.
    worse = -ev.max_degradation if metric.higher_is_better else ev.max_degradation
    change = tfma.GenericChangeThreshold(direction=direction, **(
        {"absolute": {"value": worse}} if metric.bounded else {"relative": {"value": worse}}))
    side = "lower_bound" if metric.higher_is_better else "upper_bound"
    return tfma.MetricThreshold(change_threshold=change,
                                value_threshold=tfma.GenericValueThreshold(**{side: {"value": gate_bound(cfg)}}))


def make_eval_config(cfg: PipelineConfig) -> tfma.EvalConfig:
    task, gate = cfg.user_code.task, cfg.gate_metric
    metrics = [tfma.MetricConfig(class_name="ExampleCount")]
    for metric in task.METRICS:
        config = tfma.MetricConfig(class_name=metric.tfma_class)
        if metric.name == gate.name:
            config.per_slice_thresholds.append(tfma.PerSliceMetricThreshold(
                slicing_specs=[tfma.SlicingSpec()], threshold=gate_threshold(cfg)))
        metrics.append(config)
    return tfma.EvalConfig(
        model_specs=[tfma.ModelSpec(
            # The Trainer's SavedModel is read through its signatures; named, TFMA skips loading
            # it once more as Keras just to find out (about 1 s per model).
            model_type=tfma.TF_GENERIC,
            signature_name=contract.SIGNATURE,
            label_key=task.label_key,
            preprocessing_function_names=["transform_features"])],
        slicing_specs=[tfma.SlicingSpec()] + [tfma.SlicingSpec(feature_keys=[f]) for f in cfg.slice_features],
        metrics_specs=[tfma.MetricsSpec(metrics=metrics)])


def describe_gate(cfg: PipelineConfig) -> str:
    """The gate in words, for messages."""
    metric, ev = cfg.gate_metric, cfg.evaluation
    parts = []
    if ev.threshold is not None:
        parts.append(f"{metric.name} {'>=' if metric.higher_is_better else '<='} {ev.threshold:g}")
    worse = f"{ev.max_degradation:g}" if metric.bounded else f"{ev.max_degradation:.0%}"
    parts.append(f"at most {worse} worse than the last blessed model's {metric.name}")
    return " and ".join(parts)
