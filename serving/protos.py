"""TF Serving's config files, read with TF Serving's own message definitions.

``ModelServerConfig`` comes from the ``tensorflow-serving-api`` wheel. The wheel does not ship
``BatchingParameters`` (``servables/tensorflow/session_bundle_config.proto``) nor
``MonitoringConfig`` (``config/monitoring_config.proto``): their descriptors are declared here with
the same package, names, field numbers and types, so the same text files parse the same way.
"""
from __future__ import annotations

import functools

from google.protobuf import descriptor_pb2, descriptor_pool, text_format, wrappers_pb2
from google.protobuf import message_factory

_F = descriptor_pb2.FieldDescriptorProto
_INT64_VALUE, _STRING_VALUE, _BOOL_VALUE = (".google.protobuf.Int64Value", ".google.protobuf.StringValue",
                                            ".google.protobuf.BoolValue")

# (name, number, type, type_name or None, label)
_BATCHING_FIELDS = [
    ("max_batch_size", 1, _F.TYPE_MESSAGE, _INT64_VALUE, _F.LABEL_OPTIONAL),
    ("batch_timeout_micros", 2, _F.TYPE_MESSAGE, _INT64_VALUE, _F.LABEL_OPTIONAL),
    ("max_enqueued_batches", 3, _F.TYPE_MESSAGE, _INT64_VALUE, _F.LABEL_OPTIONAL),
    ("num_batch_threads", 4, _F.TYPE_MESSAGE, _INT64_VALUE, _F.LABEL_OPTIONAL),
    ("thread_pool_name", 5, _F.TYPE_MESSAGE, _STRING_VALUE, _F.LABEL_OPTIONAL),
    ("allowed_batch_sizes", 6, _F.TYPE_INT64, None, _F.LABEL_REPEATED),
    ("pad_variable_length_inputs", 7, _F.TYPE_BOOL, None, _F.LABEL_OPTIONAL),
    ("enable_large_batch_splitting", 8, _F.TYPE_MESSAGE, _BOOL_VALUE, _F.LABEL_OPTIONAL),
    ("max_execution_batch_size", 9, _F.TYPE_MESSAGE, _INT64_VALUE, _F.LABEL_OPTIONAL),
]
_PROMETHEUS_FIELDS = [
    ("enable", 1, _F.TYPE_BOOL, None, _F.LABEL_OPTIONAL),
    ("path", 2, _F.TYPE_STRING, None, _F.LABEL_OPTIONAL),
]
_MONITORING_FIELDS = [
    ("prometheus_config", 1, _F.TYPE_MESSAGE, ".tensorflow.serving.PrometheusConfig", _F.LABEL_OPTIONAL),
]


def _message(file_proto, name, fields):
    message = file_proto.message_type.add(name=name)
    for field_name, number, field_type, type_name, label in fields:
        field = message.field.add(name=field_name, number=number, type=field_type, label=label)
        if type_name:
            field.type_name = type_name


@functools.lru_cache(maxsize=None)
def _classes():
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(wrappers_pb2.DESCRIPTOR.serialized_pb)
    batching = descriptor_pb2.FileDescriptorProto(
        name="tensorflow_serving/servables/tensorflow/session_bundle_config.proto",
        package="tensorflow.serving", syntax="proto3", dependency=["google/protobuf/wrappers.proto"])
    _message(batching, "BatchingParameters", _BATCHING_FIELDS)
    monitoring = descriptor_pb2.FileDescriptorProto(
        name="tensorflow_serving/config/monitoring_config.proto", package="tensorflow.serving", syntax="proto3")
    _message(monitoring, "PrometheusConfig", _PROMETHEUS_FIELDS)
    _message(monitoring, "MonitoringConfig", _MONITORING_FIELDS)
    pool.Add(batching)
    pool.Add(monitoring)
    factory = message_factory.MessageFactory(pool)
    return {name: factory.GetPrototype(pool.FindMessageTypeByName(f"tensorflow.serving.{name}"))
            for name in ("BatchingParameters", "MonitoringConfig")}


def BatchingParameters(**kwargs):  # noqa: N802 (a message class, as the generated module would name it)
    return _classes()["BatchingParameters"](**kwargs)


def MonitoringConfig(**kwargs):  # noqa: N802
    return _classes()["MonitoringConfig"](**kwargs)


class ConfigFileError(ValueError):
    """A config file that cannot be read or parsed: names the file and the parser's complaint."""


def read_text_proto(path: str, message):
    """Parses the text proto at ``path`` (any tf.io.gfile path) into ``message``; returns it."""
    import tensorflow as tf

    try:
        with tf.io.gfile.GFile(path, "r") as f:
            text = f.read()
    except (tf.errors.OpError, OSError) as e:
        raise ConfigFileError(f"{path}: cannot read: {getattr(e, 'message', e)}") from None
    try:
        return text_format.Parse(text, message)
    except text_format.ParseError as e:
        raise ConfigFileError(f"{path}: not a valid {message.DESCRIPTOR.name} text proto: {e}") from None


def read_model_server_config(path: str):
    from tensorflow_serving.config import model_server_config_pb2

    return read_text_proto(path, model_server_config_pb2.ModelServerConfig())


def read_batching_parameters(path: str):
    return read_text_proto(path, BatchingParameters())


def read_monitoring_config(path: str):
    return read_text_proto(path, MonitoringConfig())
