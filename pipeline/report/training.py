"""The report's training section: the Trainer's TensorBoard logs (its model_run output) read back as
training and validation curves."""
from __future__ import annotations

import logging
import os
from typing import Any, Dict, Tuple

import pipeline.report.plots as plots
from pipeline.report.plots import Points
from pipeline.report.runs import Run
from tfxp import nodes

log = logging.getLogger(__name__)


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


def _named(tags: Dict[str, Points], prefix: str, suffix: str = "") -> Dict[str, Points]:
    """The tags ``<prefix><metric><suffix>``, by metric."""
    return {tag[len(prefix):len(tag) - len(suffix)]: points for tag, points in tags.items()
            if tag.startswith(prefix) and tag.endswith(suffix) and len(tag) > len(prefix) + len(suffix)}


def training_curves(scalars: Dict[str, Dict[str, Points]]) -> Tuple[str, Dict[str, Dict[str, Points]]]:
    """(x unit: 'step' or 'epoch', {metric: {'train': points, 'validation': points}}) from Keras's logs.

    tf_keras's TensorBoard callback logs, in train/, ``epoch_<metric>`` once per epoch (step: the
    epoch) and, with ``update_freq=N`` and ``write_steps_per_second=True`` (in tf_keras 2.16 its
    batch hooks run only then), ``batch_<metric>`` every N batches (step: the iteration; the value:
    the mean over the epoch so far); in validation/, ``epoch_<metric>`` and
    ``evaluation_<metric>_vs_iterations`` (step: the iteration the epoch ended at). Everything is
    placed on iterations when they are known.
    """
    train, validation = scalars.get("train", {}), scalars.get("validation", {})
    batch, epoch_train = _named(train, "batch_"), _named(train, "epoch_")
    by_iteration, epoch_validation = _named(validation, "evaluation_", "_vs_iterations"), _named(validation, "epoch_")
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


def training_section(run: Run) -> Dict[str, Any]:
    note = run.missing(nodes.TRAINER)
    if note is not None:
        return {"note": note}
    log_dir = run.artifact(nodes.TRAINER, "model_run").uri
    log.info("reading the training logs...")
    scalars = read_scalars(log_dir)
    unit, curves = training_curves(scalars)
    if not curves:
        return {"note": f"the Trainer wrote no TensorBoard scalars under {log_dir}"}
    points = max(len(p) for series in curves.values() for p in series.values())
    return {"note": None, "log_dir": log_dir, "unit": unit, "plot": plots.curves_plot(unit, curves),
            "single_points": points == 1, "per_batch": any(t.startswith("batch_") for t in scalars.get("train", {})),
            "finals": [{"metric": metric, **{split: (p[-1][1] if p else None) for split, p in series.items()}}
                       for metric, series in curves.items()]}
