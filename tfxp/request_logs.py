"""Request logs on disk: TFRecord files of ``tensorflow.serving.PredictionLog`` (the proto of TF Serving's
warmup file and of TFX's BulkInferrer), as `tfxp serve` and `tfxp log-sink` write them and `tfxp drift`
reads them. TensorFlow is imported only when a file is read (tf.io.gfile: local or gs://).

A log collector's ``filename_prefix`` (TF Serving's LogCollectorConfig) names its files:

    <filename_prefix>-<UTC time the file was opened, %Y%m%dT%H%M%S>-<pid>-<sequence, 6 digits>.tfrecord

written under ``<name>.tfrecord.tmp`` and renamed when complete, so a reader sees whole files only.
Their names sort in the order they were opened, per writer.

    log_files(location)        the complete files under a prefix or in a directory, oldest first
    is_file_of(prefix, name)   whether a base name is one of a prefix's complete files (a writer's disk bound)
    read_logs(files)           the PredictionLog protos in them
    examples_of(log)           the serialized tf.Examples a PredictionLog's request carried
    input_examples(input)      the serialized tf.Examples of a classify/regress request's Input
"""
from __future__ import annotations

import os
import posixpath
import re
from typing import Iterable, Iterator, List, Optional

from tfxp import contract

SUFFIX = ".tfrecord"
TEMP_SUFFIX = ".tmp"                 # a file being written: readers skip it
_GZIP_MAGIC = b"\x1f\x8b"


def _is_remote(path: str) -> bool:
    return "://" in path


def file_name(prefix: str, opened_utc: str, pid: int, sequence: int) -> str:
    """A complete file's name (``opened_utc`` as %Y%m%dT%H%M%S); its temporary name adds TEMP_SUFFIX."""
    return f"{prefix}-{opened_utc}-{pid}-{sequence:06d}{SUFFIX}"


_NAME_AFTER_PREFIX = re.compile(r"-\d{8}T\d{6}-\d+-\d{6,}" + re.escape(SUFFIX))


def is_file_of(prefix_name: str, name: str) -> bool:
    """Whether the base name ``name`` is a complete file (file_name) of the prefix whose last part (after
    the last '/') is ``prefix_name``: ``chicago_taxi`` owns ``chicago_taxi-20261203T101500-42-000001.tfrecord``,
    not ``chicago_taxi_v2-...``. What a writer may count and delete to keep its prefix's disk bound."""
    return name.startswith(prefix_name) and _NAME_AFTER_PREFIX.fullmatch(name, len(prefix_name)) is not None


def log_files(location: str) -> List[str]:
    """The complete log files at ``location``: every ``*.tfrecord`` (or BulkInferrer's ``*.gz``) in it when it
    is a directory, else those whose name starts with it (a filename_prefix). Oldest first by name."""
    import tensorflow as tf

    location = location.rstrip("/") if location not in ("/", "") else location
    if tf.io.gfile.isdir(location):
        directory, start = location, ""
    else:
        directory, start = (posixpath if _is_remote(location) else os.path).split(location)
        directory = directory or "."
        if not tf.io.gfile.isdir(directory):
            return []
    names = sorted(n.rstrip("/") for n in tf.io.gfile.listdir(directory))
    join = posixpath.join if _is_remote(directory) else os.path.join
    return [join(directory, n) for n in names
            if n.startswith(start) and (n.endswith(SUFFIX) or n.endswith(".gz")) and not n.endswith(TEMP_SUFFIX)]


def _compression(path: str) -> str:
    import tensorflow as tf

    with tf.io.gfile.GFile(path, "rb") as f:
        return "GZIP" if f.read(2) == _GZIP_MAGIC else ""


def read_records(files: Iterable[str]) -> Iterator[bytes]:
    """The serialized records of TFRecord files, plain or gzip (told by their first bytes)."""
    import tensorflow as tf

    for path in files:
        for record in tf.data.TFRecordDataset(path, compression_type=_compression(path)):
            yield record.numpy()


def read_logs(files: Iterable[str]) -> Iterator:
    """The PredictionLog protos of log files. A record that is not one raises ValueError naming the file."""
    from google.protobuf import message
    from tensorflow_serving.apis import prediction_log_pb2

    for path in files:
        for record in read_records([path]):
            log = prediction_log_pb2.PredictionLog()
            try:
                log.ParseFromString(record)
            except message.DecodeError:
                raise ValueError(f"{path}: a record is not a tensorflow.serving.PredictionLog") from None
            if log.WhichOneof("log_type") is None:
                raise ValueError(f"{path}: a record is not a tensorflow.serving.PredictionLog "
                                 "(it has none of predict_log, classify_log, regress_log)")
            yield log


def examples_of(log) -> List[bytes]:
    """The serialized tf.Examples of a PredictionLog's request: a predict request's ``examples`` tensor
    (contract.EXAMPLES), or a classify/regress request's examples (after their context, as the server
    reads them). Other requests (raw tensors, multi-inference) carry none."""
    kind = log.WhichOneof("log_type")
    if kind == "predict_log":
        tensor = log.predict_log.request.inputs.get(contract.EXAMPLES)
        return list(tensor.string_val) if tensor is not None else []
    if kind in ("classify_log", "regress_log"):
        return input_examples(getattr(log, kind).request.input) or []
    return []


def input_examples(input_proto) -> Optional[List[bytes]]:
    """TF Serving's util.cc InputToSerializedExampleTensor: each example of a classify/regress ``Input``,
    after the context when there is one (concatenated serialized protos merge, the example's features
    winning). None for an empty Input."""
    kind = input_proto.WhichOneof("kind")
    if kind == "example_list":
        return [e.SerializeToString() for e in input_proto.example_list.examples]
    if kind == "example_list_with_context":
        context = input_proto.example_list_with_context.context.SerializeToString()
        return [context + e.SerializeToString() for e in input_proto.example_list_with_context.examples]
    return None
