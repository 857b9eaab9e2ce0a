"""`tfxp report`: one self-contained HTML page about one pipeline run, from MLMD and the run's artifacts.

    write_report(cfg)                        # the newest run -> <output_root>/reports/<pipeline>/<run id>.html
    write_report(cfg, run_id, "page.html")   # a given run, to a given file

Sections: the run (status, wall time), data (rows per split, per-feature statistics, anomalies),
training (the Trainer's TensorBoard curves), evaluation (TFMA metrics overall and per slice, the
candidate beside its baseline, the thresholds, the blessing), TFLite (the tflite_evaluator's table,
the lite push), push (InfraValidator, Pusher) and components (state, wall time, timeline). Plots are
PNGs embedded as data URIs: the page needs no network, no JavaScript and no other file. A section
whose component did not run, failed or left unreadable output says so in one line: the report of a
failed run is the one most worth reading.
"""
from __future__ import annotations

import base64
import contextlib
import dataclasses
import datetime
import io
import json
import logging
import os
import sys
from typing import Any, Dict, Iterator, List, Optional, Tuple

from pipeline import run_summary
from pipeline.run_log import point_latest
from tfxp import nodes
from tfxp.files import write_atomically

log = logging.getLogger(__name__)

TEMPLATES_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "templates")
# Node ids of pipeline/pipeline.py.
STATISTICS_GEN, EXAMPLE_VALIDATOR, TRAINER, EVALUATOR = nodes.STATISTICS_GEN, nodes.EXAMPLE_VALIDATOR, nodes.TRAINER, nodes.EVALUATOR
INFRA_VALIDATOR, PUSHER, TFLITE_EVALUATOR, LITE_PUSHER = (nodes.INFRA_VALIDATOR, nodes.PUSHER, nodes.TFLITE_EVALUATOR,
                                                     nodes.LITE_PUSHER)
# MLMD execution states in the report's words.
STATES = {"COMPLETE": "executed", "CACHED": "cached", "FAILED": "failed", "RUNNING": "running", "NEW": "running",
          "CANCELED": "canceled", "UNKNOWN": "unknown"}
FINISHED = ("executed", "cached", "failed")
SPLIT_COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd"]
STATE_COLORS = {"executed": "#2e7d32", "cached": "#9e9e9e", "failed": "#c62828", "running": "#f9a825",
                "canceled": "#6d4c41", "unknown": "#6d4c41"}


# -- the run, from MLMD -------------------------------------------------------------------------------

@dataclasses.dataclass
class Component:
    node_id: str
    type_name: str                 # the component's class, e.g. Trainer
    state: str                     # a value of STATES
    start_ms: int
    end_ms: Optional[int]          # None while unfinished: MLMD's update time is not its end then
    message: str                   # what was recorded of a failure or cancellation ("" when nothing)
    outputs: Dict[str, list]       # TFX artifacts, by output key

    @property
    def done(self) -> bool:
        return self.state in ("executed", "cached")

    @property
    def seconds(self) -> Optional[float]:
        return None if self.end_ms is None else (self.end_ms - self.start_ms) / 1000


@dataclasses.dataclass
class Run:
    pipeline_name: str
    run_id: str
    is_latest: bool
    components: Dict[str, Component]   # in the order they started
    not_run: List[str]                 # the pipeline's nodes seen in other runs, absent from this one

    @property
    def start_ms(self) -> int:
        return min((c.start_ms for c in self.components.values()), default=0)

    @property
    def end_ms(self) -> int:
        return max([c.end_ms for c in self.components.values() if c.end_ms is not None] + [self.start_ms])

    def in_state(self, state: str) -> List[str]:
        return [c.node_id for c in self.components.values() if c.state == state]

    def artifact(self, node_id: str, key: str):
        """``node_id``'s first output artifact under ``key`` when it completed in this run, else None."""
        component = self.components.get(node_id)
        found = component.outputs.get(key) if component is not None and component.done else None
        return found[0] if found else None

    def missing(self, node_id: str) -> Optional[str]:
        """None when ``node_id`` completed in this run (executed or cached), else why it has no output."""
        component = self.components.get(node_id)
        if component is None:
            stopped = self.in_state("failed") or self.in_state("running") or self.in_state("canceled")
            return f"{node_id} did not run in this run" + (" (the run stopped before it)" if stopped else "")
        if component.state == "failed":
            return f"{node_id} failed" + (f": {last_line(component.message)}" if component.message else "")
        if not component.done:
            return f"{node_id} is {component.state}" + (f": {component.message}" if component.message else "")
        return None


def last_line(text: str) -> str:
    """The last non-empty line: a traceback's exception."""
    return next((line.strip() for line in reversed(text.splitlines()) if line.strip()), "")


def _store_and_runs(metadata_path: str, pipeline_name: str):
    """The MLMD store (read-only) and the pipeline's runs, oldest first; FileNotFoundError when it has none."""
    if not os.path.exists(metadata_path):
        raise FileNotFoundError(f"no run of pipeline {pipeline_name!r}: the metadata file {metadata_path} "
                                f"does not exist (run `tfxp run` first)")
    store = run_summary.open_store(metadata_path)
    runs = run_summary.pipeline_runs(store, pipeline_name)
    if not runs:
        raise FileNotFoundError(f"no run of pipeline {pipeline_name!r} in {metadata_path}: run `tfxp run` first")
    return store, runs


def latest_run_id(metadata_path: str, pipeline_name: str) -> str:
    return _store_and_runs(metadata_path, pipeline_name)[1][-1].name


def read_run(metadata_path: str, pipeline_name: str, run_id: Optional[str] = None) -> Run:
    """Run ``run_id`` of ``pipeline_name`` (default: its newest), with each component's artifacts."""
    from ml_metadata.proto import metadata_store_pb2 as mlmd
    from tfx.orchestration.portable.mlmd import execution_lib
    from tfx.types import artifact_utils

    # The classes artifacts deserialize to (TFX finds only those imported).
    from components.custom import anomalies_gate, tflite_converter  # noqa: F401
    from tfx.types import standard_artifacts  # noqa: F401

    store, runs = _store_and_runs(metadata_path, pipeline_name)
    run = runs[-1] if run_id is None else next((r for r in runs if r.name == run_id), None)
    if run is None:
        raise FileNotFoundError(f"no run {run_id!r} of pipeline {pipeline_name!r} in {metadata_path}; its newest "
                                f"runs: {', '.join(r.name for r in runs[-5:])}")
    executions = run_summary.run_executions(store, pipeline_name, run)
    events = store.get_events_by_execution_ids([e.id for e in executions.values()])
    artifacts = {a.id: a for a in store.get_artifacts_by_id(list({e.artifact_id for e in events}))}
    types = {t.id: t for t in store.get_artifact_types_by_id(list({a.type_id for a in artifacts.values()}))}
    outputs: Dict[int, Dict[str, list]] = {}  # cached executions have output events too, to the reused artifacts
    for event in events:
        if event.type == mlmd.Event.OUTPUT and event.path.steps:
            artifact = artifacts[event.artifact_id]
            outputs.setdefault(event.execution_id, {}).setdefault(event.path.steps[0].key, []).append(
                artifact_utils.deserialize_artifact(types[artifact.type_id], artifact))
    type_names = {t.id: t.name for t in store.get_execution_types()}
    components = []
    for node_id, execution in executions.items():
        state = STATES.get(mlmd.Execution.State.Name(execution.last_known_state), "unknown")
        result = execution_lib.get_execution_result(execution, ignore_parse_errors=True)
        abandoned = execution.custom_properties.get("abandoned_by")  # pipeline/run_guard.py
        components.append(Component(
            node_id, type_names[execution.type_id].rsplit(".", 1)[-1], state, execution.create_time_since_epoch,
            execution.last_update_time_since_epoch if state in FINISHED else None,
            (result.result_message if result else "") or (abandoned.string_value if abandoned else ""),
            outputs.get(execution.id, {})))
    components.sort(key=lambda c: c.start_ms)
    prefix = pipeline_name + "."
    resolver_types = {i for i, name in type_names.items() if name.endswith("Resolver")}
    not_run = sorted(
        node.name[len(prefix):] for node in store.get_contexts_by_type("node")
        if node.name.startswith(prefix) and node.name[len(prefix):] not in executions
        and not any(e.type_id in resolver_types for e in store.get_executions_by_context(node.id)))
    return Run(pipeline_name, run.name, run.id == runs[-1].id, {c.node_id: c for c in components}, not_run)


# -- plots --------------------------------------------------------------------------------------------

def _png(figure) -> str:
    """A matplotlib figure as a data URI."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight", pad_inches=0.05)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _figure(width: float, height: float):
    # A Figure of its own (not pyplot): no global state, and PNGs are drawn by the Agg renderer.
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height))
    figure.set_layout_engine("constrained")
    return figure


def _tiny_axes(figure):
    axes = figure.add_subplot()
    axes.set_yticks([])
    axes.tick_params(axis="x", labelsize=6, length=2, pad=1)
    for side in ("top", "right", "left"):
        axes.spines[side].set_visible(False)
    return axes


# -- data ---------------------------------------------------------------------------------------------

def _common_stats(feature):
    kind = feature.WhichOneof("stats")
    return getattr(feature, kind).common_stats if kind in ("num_stats", "string_stats", "bytes_stats") else None


def _numeric_histogram(stats) -> Optional[Tuple[List[float], List[float]]]:
    """(bucket edges, fraction of values per bucket) of the standard (equal-width) histogram."""
    from tensorflow_metadata.proto.v0 import statistics_pb2

    for histogram in stats.histograms:
        if histogram.type == statistics_pb2.Histogram.STANDARD and histogram.buckets:
            total = sum(b.sample_count for b in histogram.buckets) or 1.0
            return ([histogram.buckets[0].low_value] + [b.high_value for b in histogram.buckets],
                    [b.sample_count / total for b in histogram.buckets])
    return None


def _top_values(feature, limit: int) -> List[Tuple[str, float]]:
    stats = feature.string_stats
    buckets = [(b.label, b.sample_count) for b in stats.rank_histogram.buckets] or \
              [(v.value, v.frequency) for v in stats.top_values]
    return buckets[:limit]


def _feature_plot(per_split: Dict[str, Any]) -> Optional[str]:
    """One tiny histogram of a feature, every split overlaid as fractions: a shift shows as two shapes."""
    figure = _figure(2.2, 0.7)
    axes = _tiny_axes(figure)
    drawn = False
    first = next(iter(per_split.values()))
    if first.WhichOneof("stats") == "num_stats":
        ends = []
        for color, feature in zip(SPLIT_COLORS, per_split.values()):
            histogram = _numeric_histogram(feature.num_stats)
            if histogram:
                axes.stairs(histogram[1], histogram[0], color=color, fill=False, linewidth=1.2)
                ends += [histogram[0][0], histogram[0][-1]]
        if ends:  # label the range's ends only: there is no room for more
            drawn, low, high = True, min(ends), max(ends)
            if high > low:
                axes.set_xlim(low, high)
                axes.set_xticks([low, high], [f"{low:.4g}", f"{high:.4g}"])
                for label, align in zip(axes.get_xticklabels(), ("left", "right")):
                    label.set_horizontalalignment(align)
            else:
                axes.set_xticks([low], [f"{low:.4g}"])
    elif first.WhichOneof("stats") == "string_stats":
        labels = [label for label, _ in _top_values(first, 10)]
        width = 0.8 / len(per_split)
        for i, (color, feature) in enumerate(zip(SPLIT_COLORS, per_split.values())):
            counts = dict(_top_values(feature, 1000))
            total = _common_stats(feature).num_non_missing or 1
            axes.bar([x + i * width for x in range(len(labels))], [counts.get(l, 0) / total for l in labels],
                     width=width, color=color, align="edge")
            drawn = bool(labels)
        axes.set_xticks([])
    return _png(figure) if drawn else None


def _describe_feature(feature, num_examples: int) -> Dict[str, str]:
    common = _common_stats(feature)
    missing = (common.num_missing / num_examples) if common and num_examples else 0.0
    cells = {"missing": f"{missing:.1%}", "center": "", "spread": ""}
    kind = feature.WhichOneof("stats")
    if kind == "num_stats":
        s = feature.num_stats
        cells["center"] = f"{s.mean:.4g} ± {s.std_dev:.4g}"
        cells["spread"] = f"{s.min:.4g} … {s.median:.4g} … {s.max:.4g}"
    elif kind == "string_stats":
        cells["center"] = f"{feature.string_stats.unique:,} unique"
        total = common.num_non_missing or 1
        cells["spread"] = ", ".join(f"{label} ({count / total:.0%})" for label, count in _top_values(feature, 3))
    return cells


def read_statistics(statistics_artifact) -> Dict[str, Any]:
    """{split: the default slice's DatasetFeatureStatistics} of a StatisticsGen output."""
    from tfx.components.statistics_gen import stats_artifact_utils
    from tfx.types import artifact_utils

    return {split: stats_artifact_utils.load_statistics(statistics_artifact, split).get_default_slice_or_die().proto()
            for split in artifact_utils.decode_split_names(statistics_artifact.split_names)}


def data_section(run: Run) -> Dict[str, Any]:
    from components.custom.anomalies_gate import read_anomalies
    from tensorflow_metadata.proto.v0 import statistics_pb2

    section: Dict[str, Any] = {"note": run.missing(STATISTICS_GEN), "anomalies_note": run.missing(EXAMPLE_VALIDATOR)}
    if section["anomalies_note"] is None:
        found = read_anomalies(run.artifact(EXAMPLE_VALIDATOR, "anomalies"))
        section["anomalies"] = [dict(problem, split=split) for split, problems in found.items() for problem in problems]
    if section["note"] is not None:
        return section
    log.info("reading the statistics...")
    splits = read_statistics(run.artifact(STATISTICS_GEN, "statistics"))
    section["splits"] = [{"name": name, "rows": stats.num_examples, "color": color}
                         for (name, stats), color in zip(splits.items(), SPLIT_COLORS)]
    features: Dict[str, Dict[str, Any]] = {}
    for split, stats in splits.items():
        for feature in stats.features:
            name = ".".join(feature.path.step) or feature.name
            features.setdefault(name, {})[split] = feature
    log.info("plotting %d feature histograms...", len(features))
    section["features"] = [{
        "name": name,
        "type": statistics_pb2.FeatureNameStatistics.Type.Name(next(iter(per_split.values())).type),
        "plot": _feature_plot(per_split),
        "splits": [dict(_describe_feature(feature, splits[split].num_examples), split=split)
                   for split, feature in per_split.items()],
    } for name, per_split in features.items()]
    return section


# -- training -----------------------------------------------------------------------------------------

Points = List[Tuple[int, float]]


def read_scalars(log_dir: str) -> Dict[str, Dict[str, Points]]:
    """{run (the sub-folder: 'train', 'validation'): {tag: [(step, value), ...]}} from TensorBoard event files.

    Keras writes its metrics as TF2 summaries (tensors of the scalars plugin); TF1 ``simple_value``
    scalars are read too.
    """
    import tensorflow as tf

    scalars: Dict[str, Dict[str, Points]] = {}
    for folder, _, files in tf.io.gfile.walk(log_dir):
        for name in sorted(f for f in files if f.startswith("events.out.tfevents")):
            run = os.path.relpath(folder, log_dir)
            for record in tf.data.TFRecordDataset(os.path.join(folder, name)):
                event = tf.compat.v1.Event.FromString(record.numpy())
                for value in event.summary.value:
                    if value.WhichOneof("value") == "simple_value":
                        number = value.simple_value
                    elif value.metadata.plugin_data.plugin_name == "scalars" and value.HasField("tensor"):
                        number = float(tf.make_ndarray(value.tensor))
                    else:
                        continue
                    scalars.setdefault(run, {}).setdefault(value.tag, []).append((event.step, number))
    return {run: {tag: sorted(points) for tag, points in tags.items()} for run, tags in scalars.items()}


def training_curves(scalars: Dict[str, Dict[str, Points]]) -> Tuple[str, Dict[str, Dict[str, Points]]]:
    """(x unit: 'step' or 'epoch', {metric: {'train': points, 'validation': points}}) from Keras's logs.

    tf_keras's TensorBoard callback logs, in train/, ``epoch_<metric>`` once per epoch (step: the
    epoch) and, with ``update_freq=N`` and ``write_steps_per_second=True`` (in tf_keras 2.16 its
    batch hooks run only then), ``batch_<metric>`` every N batches (step: the iteration; the value:
    the mean over the epoch so far); in validation/, ``epoch_<metric>`` and
    ``evaluation_<metric>_vs_iterations`` (step: the iteration the epoch ended at). Everything is
    placed on iterations when they are known.
    """
    def named(tags: Dict[str, Points], prefix: str, suffix: str = "") -> Dict[str, Points]:
        return {tag[len(prefix):len(tag) - len(suffix)]: points for tag, points in tags.items()
                if tag.startswith(prefix) and tag.endswith(suffix) and len(tag) > len(prefix) + len(suffix)}

    train, validation = scalars.get("train", {}), scalars.get("validation", {})
    batch, epoch_train = named(train, "batch_"), named(train, "epoch_")
    by_iteration, epoch_validation = named(validation, "evaluation_", "_vs_iterations"), named(validation, "epoch_")
    epoch_ends = [step for step, _ in next(iter(by_iteration.values()), [])]
    unit = "step" if batch or epoch_ends else "epoch"

    def at_epoch_ends(points: Points) -> Points:
        if unit == "epoch":
            return [(epoch + 1, value) for epoch, value in points]
        return [(epoch_ends[epoch], value) for epoch, value in points if epoch < len(epoch_ends)]

    curves = {}
    for metric in sorted(set(batch) | set(epoch_train) | set(by_iteration) | set(epoch_validation)):
        if metric == "steps_per_second":  # a speed, not a curve of the model
            continue
        curves[metric] = {"train": batch.get(metric) or at_epoch_ends(epoch_train.get(metric, [])),
                          "validation": by_iteration.get(metric) or at_epoch_ends(epoch_validation.get(metric, []))}
    # Loss first: it is what training minimises.
    return unit, dict(sorted(curves.items(), key=lambda item: (item[0] != "loss", item[0])))


def _curves_plot(unit: str, curves: Dict[str, Dict[str, Points]]) -> str:
    columns = min(len(curves), 3)
    rows = -(-len(curves) // columns)
    figure = _figure(4.0 * columns, 2.6 * rows)
    for i, (metric, series) in enumerate(curves.items()):
        axes = figure.add_subplot(rows, columns, i + 1)
        for (split, points), color in zip(series.items(), SPLIT_COLORS):
            if points:
                steps, values = zip(*points)
                axes.plot(steps, values, color=color, marker="o" if len(points) < 30 else None, markersize=4,
                          label=split)
        axes.set_title(metric, fontsize=10)
        axes.set_xlabel(unit, fontsize=8)
        axes.tick_params(labelsize=8)
        axes.grid(alpha=0.3)
        if i == 0:
            axes.legend(fontsize=8)
    return _png(figure)


def training_section(run: Run) -> Dict[str, Any]:
    note = run.missing(TRAINER)
    if note is not None:
        return {"note": note}
    log_dir = run.artifact(TRAINER, "model_run").uri
    log.info("reading the training logs...")
    scalars = read_scalars(log_dir)
    unit, curves = training_curves(scalars)
    if not curves:
        return {"note": f"the Trainer wrote no TensorBoard scalars under {log_dir}"}
    points = max(len(p) for series in curves.values() for p in series.values())
    return {"note": None, "log_dir": log_dir, "unit": unit, "plot": _curves_plot(unit, curves),
            "single_points": points == 1, "per_batch": any(t.startswith("batch_") for t in scalars.get("train", {})),
            "finals": [{"metric": metric, **{split: (p[-1][1] if p else None) for split, p in series.items()}}
                       for metric, series in curves.items()]}


# -- evaluation ---------------------------------------------------------------------------------------

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


def read_evaluation(output_path: str) -> Dict[str, Any]:
    """The Evaluator's output: model names, metrics by slice and model, thresholds and validation."""
    import tensorflow_model_analysis as tfma
    from tensorflow_model_analysis.writers.eval_config_writer import load_eval_run

    eval_config = load_eval_run(output_path)[0]
    baseline = next((spec.name for spec in eval_config.model_specs if spec.is_baseline), None)
    slices: Dict[tuple, Dict[str, Dict[str, float]]] = {}
    for record in tfma.load_metrics(output_path):
        slice_key = tfma.slicer.deserialize_slice_key(record.slice_key)
        metrics = slices.setdefault(slice_key, {})
        for item in record.metric_keys_and_values:
            if item.value.WhichOneof("type") != "double_value":
                continue  # confusion matrices and other structured values
            key = item.key
            name = key.name + (f" ({str(key.sub_key).strip()})" if key.HasField("sub_key") else "")
            role = "change" if key.is_diff else "baseline" if baseline and key.model_name == baseline else "candidate"
            metrics.setdefault(name, {})[role] = item.value.double_value.value
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
    validation = tfma.load_validation_result(output_path)
    failures = [f"{tfma.slicer.stringify_slice_key(tfma.slicer.deserialize_slice_key(v.slice_key))}: "
                f"{failure.metric_key.name}: {failure.message}"
                for v in validation.metric_validations_per_slice for failure in v.failures]
    ordered = sorted(slices, key=_sort_key)
    return {"baseline": baseline, "thresholds": thresholds, "validation_ok": validation.validation_ok,
            "rubber_stamp": validation.rubber_stamp, "failures": failures,
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
    figure = _figure(12, 2.2 * len(by_feature))
    for i, (column, values) in enumerate(by_feature.items()):
        axes = figure.add_subplot(len(by_feature), 1, i + 1)
        roles = ["candidate"] + (["baseline"] if evaluation["baseline"] else [])
        width = 0.8 / len(roles)
        for j, (role, color) in enumerate(zip(roles, ["#1f77b4", "#bdbdbd"])):
            axes.bar([x + j * width for x in range(len(values))], [m.get(role, float("nan")) for _, m in values],
                     width=width, align="edge", color=color, label=role)
        axes.set_xticks([x + 0.4 for x in range(len(values))], [label for label, _ in values], fontsize=8)
        axes.set_xlabel(column, fontsize=9)
        axes.set_ylabel(metric, fontsize=9)
        axes.tick_params(axis="y", labelsize=8)
        shown = [m[r] for _, m in values for r in roles if m.get(r) is not None]
        if shown:  # zoom on the differences, on the metric's own scale
            low, high = min(shown), max(shown)
            pad = (high - low) / 2 or abs(high) / 10 or 1.0
            axes.set_ylim(max(0.0, low - pad) if low >= 0 else low - pad, high + pad / 5)
        axes.grid(axis="y", alpha=0.3)
        axes.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _png(figure)


def evaluation_section(run: Run) -> Dict[str, Any]:
    note = run.missing(EVALUATOR)
    if note is not None:
        return {"note": note}
    log.info("reading the evaluation...")
    evaluation = read_evaluation(run.artifact(EVALUATOR, "evaluation").uri)
    blessing = run.artifact(EVALUATOR, "blessing")
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
    return "; ".join(f"{t['bound']}" + ("" if t["slice"] == "Overall" else f" (on {t['slice']})")
                     for t in evaluation.get("thresholds", []))


# -- TFLite and push ----------------------------------------------------------------------------------

def _pushed(run: Run, node_id: str) -> Dict[str, Any]:
    """What ``node_id`` (a Pusher) pushed where, from its PushedModel artifact."""
    note = run.missing(node_id)
    if note is not None:
        return {"note": note}
    artifact = run.artifact(node_id, "pushed_model")
    return {"note": None, "cached": run.components[node_id].state == "cached",
            "pushed": bool(artifact.get_int_custom_property("pushed")),
            "destination": artifact.get_string_custom_property("pushed_destination"),
            "version": artifact.get_string_custom_property("pushed_version")}


def tflite_section(run: Run) -> Dict[str, Any]:
    from components.custom.tflite_evaluator import REPORT_FILE
    from tfx.utils import io_utils

    note = run.missing(TFLITE_EVALUATOR)
    if note is not None:
        return {"note": note}
    path = os.path.join(run.artifact(TFLITE_EVALUATOR, "blessing").uri, REPORT_FILE)
    if not os.path.exists(path):
        return {"note": f"the TFLite evaluator left no {REPORT_FILE} in {os.path.dirname(path)}"}
    report = json.loads(io_utils.read_string_file(path))
    return {"note": None, "report": report, "push": _pushed(run, LITE_PUSHER)}


def push_section(run: Run, gate: str, pipeline_root: str) -> Dict[str, Any]:
    """The InfraValidator's verdict and what the Pusher pushed, or why it did not (the Evaluator's gate: ``gate``)."""
    infra = run.artifact(INFRA_VALIDATOR, "blessing")
    infra_verdict = run_summary.blessing_from(infra.mlmd_artifact) if infra is not None else None
    push = _pushed(run, PUSHER)
    if push["note"] is None and not push["pushed"]:
        evaluation = run.artifact(EVALUATOR, "blessing")
        push["why"] = run_summary.why_not_pushed(
            run_summary.blessing_from(evaluation.mlmd_artifact) if evaluation is not None else None,
            infra_verdict, gate, pipeline_root) or "the Pusher did not push"
    return {"infra_note": run.missing(INFRA_VALIDATOR) or ("the InfraValidator recorded no verdict"
                                                           if infra_verdict is None else None),
            "infra_blessed": infra_verdict[0] if infra_verdict else None,
            "infra_reason": infra_verdict[1] if infra_verdict else "", "push": push}


# -- components ---------------------------------------------------------------------------------------

def _timeline_plot(run: Run) -> str:
    components = list(run.components.values())
    figure = _figure(12, 0.25 * len(components) + 0.8)
    axes = figure.add_subplot()
    start, end = run.start_ms, run.end_ms
    shortest = (end - start) / 1000 / 300  # a component of a few milliseconds still shows
    for row, component in enumerate(components):
        finish = component.end_ms if component.end_ms is not None else end
        left, width = (component.start_ms - start) / 1000, (finish - component.start_ms) / 1000
        axes.barh(row, max(width, shortest), left=left, color=STATE_COLORS[component.state],
                  hatch=None if component.end_ms is not None else "//")
        axes.text(left + max(width, shortest), row, f" {format_seconds(width)}", va="center", fontsize=7)
    axes.set_yticks(range(len(components)), [c.node_id for c in components], fontsize=8)
    axes.invert_yaxis()
    axes.set_xlabel("seconds since the run started", fontsize=9)
    axes.tick_params(axis="x", labelsize=8)
    axes.grid(axis="x", alpha=0.3)
    return _png(figure)


def components_section(run: Run) -> Dict[str, Any]:
    return {"rows": [{"node_id": c.node_id, "type": c.type_name, "state": c.state, "seconds": c.seconds,
                      "offset": (c.start_ms - run.start_ms) / 1000, "message": c.message}
                     for c in run.components.values()],
            "not_run": run.not_run, "plot": _timeline_plot(run) if run.components else None}


def header(run: Run) -> Dict[str, Any]:
    failed, unfinished = run.in_state("failed"), run.in_state("running") + run.in_state("canceled")
    if failed:
        status, level = f"failed: {', '.join(failed)}", "failed"
    elif unfinished:
        status, level = f"unfinished: {', '.join(unfinished)}", "running"
    else:
        executed, cached = len(run.in_state("executed")), len(run.in_state("cached"))
        status, level = f"all {len(run.components)} components complete ({executed} executed, {cached} cached)", "ok"
    started = datetime.datetime.fromtimestamp(run.start_ms / 1000).astimezone()
    return {"pipeline": run.pipeline_name, "run_id": run.run_id, "status": status, "level": level,
            "started": started.strftime("%Y-%m-%d %H:%M:%S %Z"), "seconds": (run.end_ms - run.start_ms) / 1000}


# -- the page -----------------------------------------------------------------------------------------

def format_number(value: Optional[float], signed: bool = False, count: bool = False) -> str:
    if value is None:
        return "–"
    return f"{value:{'+' if signed else ''}{',.0f' if count else '.4f'}}"


def format_seconds(seconds: float) -> str:
    return f"{seconds:.2f} s" if seconds < 10 else f"{seconds:.1f} s"


@contextlib.contextmanager
def _quiet_libraries() -> Iterator[None]:
    """Keeps the progress to the report's own lines: Beam logs its type hints at import, and TFMA's
    readers log TensorFlow's deprecation warnings about their own calls."""
    loggers = {logging.getLogger(name): level for name, level in
               [("apache_beam", logging.WARNING), ("tensorflow", logging.ERROR), ("absl", logging.WARNING)]}
    saved = {logger: logger.level for logger in loggers}
    try:
        for logger, level in loggers.items():
            logger.setLevel(level)
        yield
    finally:
        for logger, level in saved.items():
            logger.setLevel(level)


def _section(name: str, build, *args) -> Dict[str, Any]:
    """``build(*args)``, or a one-line note when the artifacts cannot be read: the rest of the page still helps."""
    try:
        return build(*args)
    except Exception as e:  # noqa: BLE001  (any reader's failure; logged with its traceback)
        log.warning("the %s section could not be read", name, exc_info=True)
        return {"note": f"could not read the {name} of this run: {type(e).__name__}: {last_line(str(e))}"}


def render_report(run: Run, cfg) -> str:
    import jinja2

    from pipeline.evaluation import describe_gate

    context = {"header": header(run),
               "data": _section("data", data_section, run),
               "training": _section("training", training_section, run),
               "evaluation": _section("evaluation", evaluation_section, run),
               "tflite": _section("TFLite", tflite_section, run),
               "components": _section("components", components_section, run)}
    # The gate this run applied (its eval config), else today's config's.
    gate = gate_in_words(context["evaluation"]) or describe_gate(cfg)
    context["push"] = _section("push", push_section, run, gate, cfg.resolved_pipeline_root)
    log.info("rendering the page...")
    environment = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES_DIR), autoescape=True,
                                     undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    environment.filters.update(number=format_number, seconds=format_seconds)
    return environment.get_template("report.html.j2").render(**context)


def default_report_dir(cfg) -> str:
    return os.path.join(cfg.resolved_output_root, "reports", cfg.pipeline_name)


def write_report(cfg, run_id: Optional[str] = None, output: Optional[str] = None) -> str:
    """Writes the report of run ``run_id`` (default: the newest) of ``cfg``'s pipeline; returns its path.

    Default path: <output_root>/reports/<pipeline>/<run id>.html, and latest.html there points at
    the newest run's report.
    """
    with _quiet_libraries():
        run = read_run(cfg.resolved_metadata_path, cfg.pipeline_name, run_id)
        log.info("reporting run %s of %r (%d components)", run.run_id, run.pipeline_name, len(run.components))
        html = render_report(run, cfg)
    path = output or os.path.join(default_report_dir(cfg), f"{run.run_id.replace(os.sep, '_')}.html")
    write_atomically(path, html)  # a browser reloading the page sees the old one or the new one
    if output is None and run.is_latest:
        point_latest(os.path.join(os.path.dirname(path), "latest.html"), path)
    return path


def add_report_arguments(parser) -> None:
    parser.add_argument("--run", default=None, metavar="RUN_ID",
                        help="the pipeline run to report (default: the newest; ids are MLMD's pipeline_run names)")
    parser.add_argument("--output", default=None, metavar="PATH",
                        help="the HTML file to write (default: <output_root>/reports/<pipeline>/<run id>.html)")


def run_report(args, cfg) -> int:
    """`tfxp report`."""
    with _quiet_libraries():
        run_id = args.run or latest_run_id(cfg.resolved_metadata_path, cfg.pipeline_name)
    path = os.path.abspath(write_report(cfg, run_id, args.output))
    print(f"wrote the report of run {run_id} to {path} (file://{path})")
    return 0
