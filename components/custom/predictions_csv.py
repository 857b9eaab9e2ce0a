"""PredictionsToCsv: BulkInferrer's PredictionLogs -> one CSV of the scored rows, the prediction in the task's words.

TFX's BulkInferrer writes what the model answered as gzip'd TFRecords of ``tensorflow.serving.PredictionLog``
(``<inference_result>/prediction_logs-*.gz``): each log holds the request (serialized tf.Examples in the
``examples`` input) and the response (the ``outputs`` tensor). This component writes ``predictions.csv``:
one line per example, its columns first (the feature list's in its order, then any other the rows carry,
e.g. an id; only columns some row has, so unlabelled rows give no label column), then the prediction as
the task words it (components/core/task.py ``prediction_columns``: ``predicted_<label>`` and
``predicted_<label>_probability`` for a class, ``predicted_<label>`` for a value).

BulkInferrer scores only a model the Evaluator blessed and writes nothing otherwise: then there is no CSV
either, and ``summary.json`` says ``"scored": false``. Reads and writes through TFX's fileio and TensorFlow's
file system (artifact URIs are gs:// on Kubeflow).
"""
from __future__ import annotations

import base64
import io
import json
import logging
import os
from typing import Any, Dict, Iterator, List, Sequence, Tuple

import numpy as np
from tfx import types
from tfx.dsl.components.base import base_component, base_executor, executor_spec
from tfx.dsl.io import fileio
from tfx.types import artifact_utils, standard_artifacts
from tfx.types.component_spec import ChannelParameter, ExecutionParameter

from components.core.feature import ENCODING_BASE64, Feature
from components.core.task import Task
from components.core.user_code import load_user_code
from tfxp import contract

log = logging.getLogger(__name__)

CSV_FILE = "predictions.csv"
SUMMARY_FILE = "summary.json"
PREDICTION_LOGS = "prediction_logs-*"  # BulkInferrer's file names (tfx/components/bulk_inferrer/executor.py)
_ROWS_PER_BATCH = 4096
_DT_FLOAT = 1  # tensorflow/core/framework/types.proto
_FLUSH_CHARS = 1 << 20


class ScoredRows(types.Artifact):
    """The scored rows: ``predictions.csv`` (when the model was blessed) and ``summary.json``."""
    # KFP v2 needs "<module>.<Class>" (one dot): `components` exposes it (components/__init__.py).
    TYPE_NAME = "components.ScoredRows"


def prediction_log_files(inference_result_uri: str) -> List[str]:
    return sorted(fileio.glob(os.path.join(inference_result_uri, PREDICTION_LOGS)))


def _outputs(tensor) -> np.ndarray:
    if tensor.dtype == _DT_FLOAT and tensor.float_val:  # what RunInference writes: 5x faster than tf.make_ndarray
        return np.asarray(tensor.float_val, np.float32)
    import tensorflow as tf
    return tf.make_ndarray(tensor)


def read_predictions(files: Sequence[str]) -> Iterator[Tuple[bytes, np.ndarray]]:
    """(serialized tf.Example, the model's output row for it) for every example of every PredictionLog."""
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    options = tf.io.TFRecordOptions(compression_type="GZIP")
    for path in files:
        # TensorFlow's record iterator, not tf.data: a tenth of the time per record in a Python loop.
        for record in tf.compat.v1.io.tf_record_iterator(path, options):
            prediction_log = prediction_log_pb2.PredictionLog.FromString(record)
            if prediction_log.WhichOneof("log_type") != "predict_log":
                raise ValueError(f"{path}: expected PredictionLogs of the {contract.SIGNATURE} signature's predict "
                                 f"call, got a {prediction_log.WhichOneof('log_type')}")
            examples = prediction_log.predict_log.request.inputs[contract.EXAMPLES].string_val
            outputs = _outputs(prediction_log.predict_log.response.outputs[contract.OUTPUTS])
            yield from zip(examples, outputs.reshape(len(examples), -1))


def _text(value: Any) -> str:
    """A value as a CSV cell: floats in float32's shortest form (as the Example stores them)."""
    if isinstance(value, (float, np.floating)):
        return str(np.float32(value))
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    return str(value)


def _cell(feature, declared: Feature = None) -> str:
    """One tf.train.Feature as a CSV cell: its value as `tfxp data` reads it back; several values as a JSON list."""
    kind = feature.WhichOneof("kind")
    values = list(getattr(feature, kind).value) if kind else []
    if kind == "bytes_list" and declared is not None and declared.encoding == ENCODING_BASE64:
        values = [base64.b64encode(v).decode("ascii") for v in values]
    texts = [_text(v) for v in values]
    if len(texts) <= 1:
        return texts[0] if texts else ""
    return json.dumps(texts) if kind == "bytes_list" else f"[{', '.join(texts)}]"


def input_columns(keys: set, features: Sequence[Feature], prediction_columns: Sequence[str]) -> List[str]:
    """The feature list's columns some row has, in its order, then the rows' other columns, sorted; a column
    named like a prediction column (rows scored before) gives way to the new prediction."""
    declared = [f.name for f in features if f.name in keys]
    others = sorted(keys - {f.name for f in features})
    return [name for name in declared + others if name not in prediction_columns]


def write_csv(files: Sequence[str], csv_path: str, task: Task, features: Sequence[Feature]) -> Dict[str, Any]:
    """Writes the scored rows of the PredictionLog ``files`` to ``csv_path``; returns {rows, columns}."""
    import csv

    import tensorflow as tf

    keys = set()
    for example, _ in read_predictions(files):  # first pass: which columns the rows have
        keys.update(tf.train.Example.FromString(example).features.feature.keys())
    predicted = list(task.prediction_columns())
    columns = input_columns(keys, features, predicted)
    declared = {f.name: f for f in features}
    rows = 0
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns + predicted)
    with fileio.open(csv_path, "w") as out:
        batch: List[Tuple[bytes, np.ndarray]] = []

        def flush_batch():
            nonlocal rows
            values = task.prediction_values(np.stack([output for _, output in batch]))
            for (example, _), prediction in zip(batch, values):
                feature = tf.train.Example.FromString(example).features.feature
                cells = [_cell(feature[name], declared.get(name)) if name in feature else "" for name in columns]
                writer.writerow(cells + [_text(v) for v in prediction])
            rows += len(batch)
            batch.clear()

        for pair in read_predictions(files):
            batch.append(pair)
            if len(batch) == _ROWS_PER_BATCH:
                flush_batch()
            if buffer.tell() >= _FLUSH_CHARS:
                out.write(buffer.getvalue())
                buffer.seek(0)
                buffer.truncate()
        if batch:
            flush_batch()
        out.write(buffer.getvalue())
    return {"rows": rows, "columns": columns + predicted}


class Executor(base_executor.BaseExecutor):
    def Do(self, input_dict: Dict[str, List[types.Artifact]], output_dict: Dict[str, List[types.Artifact]],
           exec_properties: Dict[str, Any]) -> None:
        inference_result = artifact_utils.get_single_instance(input_dict["inference_result"])
        scored = artifact_utils.get_single_instance(output_dict["scored_rows"])
        user = load_user_code(exec_properties["user_package"])
        files = prediction_log_files(inference_result.uri)
        summary: Dict[str, Any] = {"scored": bool(files), "rows": 0, "prediction_logs": inference_result.uri,
                                   "csv": None, "columns": []}
        fileio.makedirs(scored.uri)
        if files:
            csv_path = os.path.join(scored.uri, CSV_FILE)
            summary.update(write_csv(files, csv_path, user.task, user.features), csv=csv_path)
            log.info("wrote %d scored rows to %s", summary["rows"], csv_path)
        else:
            log.info("no PredictionLogs in %s: BulkInferrer scores only a blessed model", inference_result.uri)
        with fileio.open(os.path.join(scored.uri, SUMMARY_FILE), "w") as f:
            f.write(json.dumps(summary, indent=1))
        scored.set_int_custom_property("rows", summary["rows"])
        scored.set_int_custom_property("scored", int(summary["scored"]))


class PredictionsToCsvSpec(types.ComponentSpec):
    PARAMETERS = {"user_package": ExecutionParameter(type=str),
                  "code_fingerprint": ExecutionParameter(type=str)}  # a code edit changes the cache key
    INPUTS = {"inference_result": ChannelParameter(type=standard_artifacts.InferenceResult)}
    OUTPUTS = {"scored_rows": ChannelParameter(type=ScoredRows)}


class PredictionsToCsv(base_component.BaseComponent):
    SPEC_CLASS = PredictionsToCsvSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

    def __init__(self, inference_result: types.BaseChannel, *, user_package: str, code_fingerprint: str):
        super().__init__(spec=PredictionsToCsvSpec(
            inference_result=inference_result, user_package=user_package, code_fingerprint=code_fingerprint,
            scored_rows=types.Channel(type=ScoredRows)))
