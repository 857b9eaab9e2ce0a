"""What `tfxp drift` compares: serialized tf.Examples from request logs, TFRecords of tf.Example, or a CSV.

    read_examples(path, features, max_examples)   -> Window (the examples, their kind, the versions that answered)

``path`` is a CSV file (raw rows: the feature list's columns, the label may be missing), a TFRecord file
or a directory of them (plain or gzip; PredictionLog or tf.Example, told by the first record), or a
request-log ``filename_prefix`` (tfxp/request_logs.py: complete files only). With more than
``max_examples`` examples, the newest are kept.
"""
from __future__ import annotations

import collections
import os
from dataclasses import dataclass, field
from typing import Dict, List, Sequence

from tfxp import request_logs
from tfxp.errors import TfxpError

LOGS, EXAMPLES, CSV = "request logs", "tf.Examples", "CSV rows"


class DriftInputError(ValueError, TfxpError):
    """The data to check cannot be read: the message names the file and what was expected."""


@dataclass
class Window:
    path: str
    kind: str                                   # LOGS, EXAMPLES or CSV
    files: List[str]
    examples: List[bytes]                       # serialized tf.Examples, oldest first
    versions: Dict[int, int] = field(default_factory=dict)   # model version -> logged requests (logs only)
    dropped: int = 0                            # older examples left out (max_examples)

    def describe(self) -> str:
        files = f"{len(self.files)} file{'s' if len(self.files) != 1 else ''}"
        kept = f" (the newest; {self.dropped:,} older left out)" if self.dropped else ""
        return f"{len(self.examples):,} examples{kept} from {self.kind} in {files} at {self.path}"


def _files(path: str) -> List[str]:
    import tensorflow as tf

    if tf.io.gfile.isdir(path):
        found = []
        for root, _, names in tf.io.gfile.walk(path):
            found += [os.path.join(root, n) for n in sorted(names)
                      if not n.startswith(".") and not n.endswith(request_logs.TEMP_SUFFIX)]
        return sorted(found)
    if tf.io.gfile.exists(path):
        return [path]
    return request_logs.log_files(path)


def _first_record_kind(path: str) -> str:
    """LOGS or EXAMPLES, from the first record of a TFRecord file (DriftInputError when neither)."""
    import tensorflow as tf
    from google.protobuf import message
    from tensorflow_serving.apis import prediction_log_pb2

    try:
        first = next(request_logs.read_records([path]), None)
    except tf.errors.OpError as e:
        raise DriftInputError(f"{path}: not a TFRecord file ({e.message.splitlines()[0]}); expected request logs "
                              "(PredictionLog), TFRecords of tf.Example or a .csv file") from None
    if first is None:
        raise DriftInputError(f"{path}: an empty TFRecord file")
    try:
        if prediction_log_pb2.PredictionLog.FromString(first).WhichOneof("log_type"):
            return LOGS
    except message.DecodeError:
        pass
    try:
        if tf.train.Example.FromString(first).features.feature:
            return EXAMPLES
    except message.DecodeError:
        pass
    raise DriftInputError(f"{path}: the records are neither tensorflow.serving.PredictionLog nor tf.train.Example")


def _from_logs(files: Sequence[str], window: Window) -> None:
    versions: Dict[int, int] = collections.Counter()
    try:
        for log in request_logs.read_logs(files):
            window.examples.extend(request_logs.examples_of(log))
            versions[log.log_metadata.model_spec.version.value] += 1
    except ValueError as e:
        raise DriftInputError(str(e)) from None
    window.versions = dict(versions)


def _from_examples(files: Sequence[str], window: Window) -> None:
    import tensorflow as tf

    for path in files:
        if path != files[0] and _first_record_kind(path) != EXAMPLES:
            raise DriftInputError(f"{path}: request logs among files of tf.Examples (give one kind at a time)")
        try:
            window.examples.extend(request_logs.read_records([path]))
        except tf.errors.OpError as e:
            raise DriftInputError(f"{path}: not a readable TFRecord file ({e.message.splitlines()[0]})") from None


def _from_csv(path: str, features, window: Window) -> None:
    from data import tfrecords

    with open(path, newline="", encoding="utf-8") as f:
        try:
            for line, cells, index in tfrecords.read_csv_rows(f, path):
                values = {name: cells[i] for name, i in index.items()}
                window.examples.append(tfrecords.make_example(values, features, f"{path}, line {line}")
                                       .SerializeToString())
        except tfrecords.DataError as e:
            raise DriftInputError(str(e)) from None


def read_examples(path: str, features, max_examples: int) -> Window:
    """The examples at ``path`` (see the module's docstring); DriftInputError when there are none."""
    if path.endswith(".csv"):
        if not os.path.isfile(path):
            raise DriftInputError(f"{path}: no such CSV file")
        window = Window(path, CSV, [path], [])
        _from_csv(path, features, window)
    else:
        files = _files(path)
        if not files:
            raise DriftInputError(f"{path}: no request logs, TFRecord files or CSV there (expected a .csv file, a "
                                  f"directory of TFRecord files, or a request log filename_prefix)")
        kind = _first_record_kind(files[0])
        window = Window(path, kind, files, [])
        (_from_logs if kind == LOGS else _from_examples)(files, window)
    if not window.examples:
        raise DriftInputError(f"{path}: {window.kind} with no examples in them (a predict request logs its "
                              f"examples only when it sends serialized tf.Examples)")
    if len(window.examples) > max_examples:
        window.dropped = len(window.examples) - max_examples
        window.examples = window.examples[-max_examples:]
    return window
