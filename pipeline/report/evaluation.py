"""The report's evaluation section: the Evaluator's TFMA output (metrics overall and per slice, the
candidate beside its baseline, the thresholds in words, the validation) and its blessing."""
from __future__ import annotations

import logging
import sys
from typing import Any, Dict, List, Optional, Tuple

from pipeline import run_summary
import pipeline.report.plots as plots
from pipeline.report.runs import Run
from tfxp import nodes

log = logging.getLogger(__name__)


def describe_threshold(metric: str, threshold) -> str:
    """A TFMA MetricThreshold in words, e.g. "auc >= 0.6 and auc at most 0.01 below the baseline's"."""
    import tensorflow_model_analysis as tfma

    parts = []
    value = threshold.value_threshold
    # pipeline/evaluation.py writes an unbounded side as +-float max.
    if value.HasField("lower_bound") and value.lower_bound.value > -sys.float_info.max:
        parts.append(f"{metric} >= {value.lower_bound.value:g}")
    if value.HasField("upper_bound") and value.upper_bound.value < sys.float_info.max:
        parts.append(f"{metric} <= {value.upper_bound.value:g}")
    change = threshold.change_threshold
    for field in ("absolute", "relative"):
        if change.HasField(field):
            bound = getattr(change, field).value
            amount = f"{abs(bound):g}" if field == "absolute" else f"{abs(bound):.0%}"
            higher = change.direction == tfma.MetricDirection.HIGHER_IS_BETTER
            worse = (bound <= 0) == higher  # the bound allows the candidate to be worse by ``amount``
            side = ("below" if higher else "above") if worse else ("above" if higher else "below")
            parts.append(f"{metric} {'at most' if worse else 'at least'} {amount} {side} the baseline's")
    return " and ".join(parts) or "no bound"


def _sort_key(slice_key) -> tuple:
    return len(slice_key), tuple((column, (isinstance(value, str), value)) for column, value in slice_key)


def _read_metrics(output_path: str, baseline: Optional[str]) -> Dict[tuple, Dict[str, Dict[str, float]]]:
    """{slice key: {metric: {'candidate' | 'baseline' | 'change': value}}}; structured values (confusion
    matrices...) left out."""
    import tensorflow_model_analysis as tfma

    slices: Dict[tuple, Dict[str, Dict[str, float]]] = {}
    for record in tfma.load_metrics(output_path):
        slice_key = tfma.slicer.deserialize_slice_key(record.slice_key)
        metrics = slices.setdefault(slice_key, {})
        for item in record.metric_keys_and_values:
            if item.value.WhichOneof("type") != "double_value":
                continue
            key = item.key
            name = key.name + (f" ({str(key.sub_key).strip()})" if key.HasField("sub_key") else "")
            role = "change" if key.is_diff else "baseline" if baseline and key.model_name == baseline else "candidate"
            metrics.setdefault(name, {})[role] = item.value.double_value.value
    return slices


def _read_thresholds(eval_config, baseline: Optional[str]) -> List[Dict[str, str]]:
    """The candidate's thresholds: [{metric, slice, bound (in words)}]."""
    import tensorflow_model_analysis as tfma

    thresholds = []
    for key, per_slice in tfma.metrics.metric_thresholds_from_metrics_specs(eval_config.metrics_specs,
                                                                              eval_config).items():
        if key.model_name == baseline and baseline:
            continue
        for slice_spec, threshold in per_slice:
            # TFMA lists a value bound under the metric's key and a change bound under its diff key.
            wrapped = tfma.MetricThreshold(**({"change_threshold": threshold} if key.is_diff
                                              else {"value_threshold": threshold}))
            where = tfma.slicer.SingleSliceSpec(spec=slice_spec) if slice_spec is not None else None
            thresholds.append({"metric": key.name, "slice": "Overall" if where is None or where.is_overall()
                               else str(where), "bound": describe_threshold(key.name, wrapped)})
    return thresholds


def _read_validation(output_path: str) -> Dict[str, Any]:
    import tensorflow_model_analysis as tfma

    validation = tfma.load_validation_result(output_path)
    failures = [f"{tfma.slicer.stringify_slice_key(tfma.slicer.deserialize_slice_key(v.slice_key))}: "
                f"{failure.metric_key.name}: {failure.message}"
                for v in validation.metric_validations_per_slice for failure in v.failures]
    return {"validation_ok": validation.validation_ok, "rubber_stamp": validation.rubber_stamp, "failures": failures}


def read_evaluation(output_path: str) -> Dict[str, Any]:
    """The Evaluator's output: model names, metrics by slice and model, thresholds and validation."""
    import tensorflow_model_analysis as tfma
    from tensorflow_model_analysis.writers.eval_config_writer import load_eval_run

    eval_config = load_eval_run(output_path)[0]
    baseline = next((spec.name for spec in eval_config.model_specs if spec.is_baseline), None)
    slices = _read_metrics(output_path, baseline)
    thresholds = _read_thresholds(eval_config, baseline)
    ordered = sorted(slices, key=_sort_key)
    return {"baseline": baseline, "thresholds": thresholds, **_read_validation(output_path),
            "slices": [(tfma.slicer.stringify_slice_key(k), slices[k]) for k in ordered],
            "slice_keys": ordered}


def _slices_plot(evaluation: Dict[str, Any], metric: str) -> Optional[str]:
    """``metric`` per value of each slicing feature, the candidate's bars beside the baseline's."""
    by_feature: Dict[str, List[Tuple[str, Dict[str, float]]]] = {}
    for slice_key, (_, metrics) in zip(evaluation["slice_keys"], evaluation["slices"]):
        if len(slice_key) == 1 and metric in metrics:
            (column, value), = slice_key
            by_feature.setdefault(column, []).append((str(value), metrics[metric]))
    if not by_feature:
        return None
    return plots.slices_plot(by_feature, metric, ["candidate"] + (["baseline"] if evaluation["baseline"] else []))


def evaluation_section(run: Run) -> Dict[str, Any]:
    note = run.missing(nodes.EVALUATOR)
    if note is not None:
        return {"note": note}
    log.info("reading the evaluation...")
    evaluation = read_evaluation(run.artifact(nodes.EVALUATOR, "evaluation").uri)
    blessing = run.artifact(nodes.EVALUATOR, "blessing")
    verdict = run_summary.blessing_from(blessing.mlmd_artifact) if blessing is not None else None
    properties = blessing.mlmd_artifact.custom_properties if blessing is not None else {}
    names = []
    for _, metrics in evaluation["slices"]:
        names += [n for n in metrics if n not in names]
    gated = [t["metric"] for t in evaluation["thresholds"]]
    plotted = next((n for n in gated if n in names), next((n for n in names if n != "example_count"), None))
    return {"note": None, **evaluation, "metrics": names,
            "overall": evaluation["slices"][0][1] if evaluation["slices"] else {},
            "blessed": verdict[0] if verdict else None,
            "candidate_model": properties["current_model"].string_value if "current_model" in properties else "",
            "baseline_model": properties["baseline_model"].string_value if "baseline_model" in properties else "",
            "plotted_metric": plotted, "plot": _slices_plot(evaluation, plotted) if plotted else None}


def gate_in_words(evaluation: Dict[str, Any]) -> str:
    """The thresholds of an evaluation section in one line ("" when it has none)."""
    return "; ".join(f"{t['bound']}" + ("" if t["slice"] == "Overall" else f" (on {t['slice']})")
                     for t in evaluation.get("thresholds", []))
