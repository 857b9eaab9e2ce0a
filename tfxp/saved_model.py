"""A model version directory on disk, as TF Serving reads it: its files' names, its saved_model.pb(txt)
and its warmup requests. TensorFlow is imported only when a file is read (tf.io.gfile: local or gs://).

    read_saved_model(version_dir)        the SavedModel proto, without loading the model
    warmup_records(version_dir)          the serialized records of its warmup file, one by one
"""
from __future__ import annotations

from typing import Iterator

from tfxp.files import join

SAVED_MODEL_PB = "saved_model.pb"          # the Pusher copies it last: a version without it is incomplete
SAVED_MODEL_PBTXT = "saved_model.pbtxt"
ASSETS_DIR = "assets"
VARIABLES_DIR = "variables"
EXTRA_ASSETS_DIR = "assets.extra"
WARMUP_FILE_NAME = "tf_serving_warmup_requests"
WARMUP_PATH = f"{EXTRA_ASSETS_DIR}/{WARMUP_FILE_NAME}"   # relative to a version dir; TF Serving replays it at load
MAX_WARMUP_RECORDS = 1000                               # TF Serving's kMaxNumRecordsToRead


class SavedModelParseError(ValueError):
    """saved_model.pb(txt) exists but is no SavedModel proto: the message names the file."""


def read_saved_model(version_dir: str):
    """The ``SavedModel`` proto of ``saved_model.pb`` (else ``saved_model.pbtxt``, as TensorFlow's loader
    falls back). Raises FileNotFoundError when neither exists, SavedModelParseError when unparsable."""
    import tensorflow as tf
    from google.protobuf import message, text_format
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    path = join(version_dir, SAVED_MODEL_PB)
    try:
        if tf.io.gfile.exists(path):
            with tf.io.gfile.GFile(path, "rb") as f:
                proto.ParseFromString(f.read())
            return proto
        path = join(version_dir, SAVED_MODEL_PBTXT)
        if not tf.io.gfile.exists(path):
            raise FileNotFoundError(f"{version_dir}: no {SAVED_MODEL_PB} or {SAVED_MODEL_PBTXT}")
        with tf.io.gfile.GFile(path, "r") as f:
            text_format.Parse(f.read(), proto)
    except (message.DecodeError, text_format.ParseError) as e:
        raise SavedModelParseError(f"{path}: not a SavedModel: cannot parse it ({e})") from e
    return proto


def warmup_file(version_dir: str) -> str:
    return join(version_dir, EXTRA_ASSETS_DIR, WARMUP_FILE_NAME)


def warmup_records(version_dir: str) -> Iterator[bytes]:
    """The serialized records of the version's warmup file, in order (none when it has no such file).
    A corrupt file raises tf.errors.OpError after the records before the damage."""
    import tensorflow as tf

    path = warmup_file(version_dir)
    if tf.io.gfile.exists(path):
        for record in tf.data.TFRecordDataset(path):
            yield record.numpy()
