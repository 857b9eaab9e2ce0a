"""The messages a client sends to a model server, without TensorFlow.

``tf.train.Example`` (tensorflow/core/example/{example,feature}.proto) and TF Serving's predict
call (tensorflow_serving/apis/{predict,model}.proto, tensorflow/core/framework/tensor*.proto).
TensorFlow's own generated modules import ``tensorflow.core...``, which runs all of
``tensorflow/__init__.py`` (about 6 s here) before any message can be built; a client needs
only these few messages. They are declared here with the upstream names, field numbers and
types (the wire format: the bytes are the same), in a descriptor pool of their own, so they
never clash with TensorFlow's classes when both are loaded. Only the fields a client reads or
writes are declared: parsing keeps the others as unknown fields. tests/serving/test_wire.py
checks every message against TensorFlow's and TF Serving's own classes.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format, wrappers_pb2

# TF Serving's gRPC method (tensorflow_serving/apis/prediction_service.proto).
PREDICT_METHOD = "/tensorflow.serving.PredictionService/Predict"

# tensorflow/core/framework/types.proto: the DataType values a client sends or reads.
DT_FLOAT, DT_DOUBLE, DT_INT32, DT_STRING, DT_INT64 = 1, 2, 3, 7, 9
_NUMERIC = {DT_FLOAT: (np.float32, "float_val"), DT_DOUBLE: (np.float64, "double_val"),
            DT_INT32: (np.int32, "int_val"), DT_INT64: (np.int64, "int64_val")}

_EXAMPLE_PROTO = """
name: "tfxp/wire/example.proto" package: "tensorflow" syntax: "proto3"
message_type { name: "BytesList" field { name: "value" number: 1 label: LABEL_REPEATED type: TYPE_BYTES } }
message_type { name: "FloatList" field { name: "value" number: 1 label: LABEL_REPEATED type: TYPE_FLOAT } }
message_type { name: "Int64List" field { name: "value" number: 1 label: LABEL_REPEATED type: TYPE_INT64 } }
message_type {
  name: "Feature"
  field { name: "bytes_list" number: 1 type: TYPE_MESSAGE type_name: ".tensorflow.BytesList" oneof_index: 0 }
  field { name: "float_list" number: 2 type: TYPE_MESSAGE type_name: ".tensorflow.FloatList" oneof_index: 0 }
  field { name: "int64_list" number: 3 type: TYPE_MESSAGE type_name: ".tensorflow.Int64List" oneof_index: 0 }
  oneof_decl { name: "kind" }
}
message_type {
  name: "Features"
  field { name: "feature" number: 1 label: LABEL_REPEATED type: TYPE_MESSAGE
          type_name: ".tensorflow.Features.FeatureEntry" }
  nested_type {
    name: "FeatureEntry" options { map_entry: true }
    field { name: "key" number: 1 type: TYPE_STRING }
    field { name: "value" number: 2 type: TYPE_MESSAGE type_name: ".tensorflow.Feature" }
  }
}
message_type { name: "Example" field { name: "features" number: 1 type: TYPE_MESSAGE type_name: ".tensorflow.Features" } }
"""

_TENSOR_PROTO = """
name: "tfxp/wire/tensor.proto" package: "tensorflow" syntax: "proto3"
message_type {
  name: "TensorShapeProto"
  field { name: "dim" number: 2 label: LABEL_REPEATED type: TYPE_MESSAGE type_name: ".tensorflow.TensorShapeProto.Dim" }
  field { name: "unknown_rank" number: 3 type: TYPE_BOOL }
  nested_type { name: "Dim" field { name: "size" number: 1 type: TYPE_INT64 }
                            field { name: "name" number: 2 type: TYPE_STRING } }
}
message_type {
  name: "TensorProto"
  field { name: "dtype" number: 1 type: TYPE_INT32 }  # an enum (DataType) upstream: the same varint
  field { name: "tensor_shape" number: 2 type: TYPE_MESSAGE type_name: ".tensorflow.TensorShapeProto" }
  field { name: "tensor_content" number: 4 type: TYPE_BYTES }
  field { name: "float_val" number: 5 label: LABEL_REPEATED type: TYPE_FLOAT }
  field { name: "double_val" number: 6 label: LABEL_REPEATED type: TYPE_DOUBLE }
  field { name: "int_val" number: 7 label: LABEL_REPEATED type: TYPE_INT32 }
  field { name: "string_val" number: 8 label: LABEL_REPEATED type: TYPE_BYTES }
  field { name: "int64_val" number: 10 label: LABEL_REPEATED type: TYPE_INT64 }
}
"""

_PREDICT_PROTO = """
name: "tfxp/wire/predict.proto" package: "tensorflow.serving" syntax: "proto3"
dependency: "google/protobuf/wrappers.proto" dependency: "tfxp/wire/tensor.proto"
message_type {
  name: "ModelSpec"
  field { name: "name" number: 1 type: TYPE_STRING }
  field { name: "version" number: 2 type: TYPE_MESSAGE type_name: ".google.protobuf.Int64Value" oneof_index: 0 }
  field { name: "version_label" number: 4 type: TYPE_STRING oneof_index: 0 }
  field { name: "signature_name" number: 3 type: TYPE_STRING }
  oneof_decl { name: "version_choice" }
}
message_type {
  name: "PredictRequest"
  field { name: "model_spec" number: 1 type: TYPE_MESSAGE type_name: ".tensorflow.serving.ModelSpec" }
  field { name: "inputs" number: 2 label: LABEL_REPEATED type: TYPE_MESSAGE
          type_name: ".tensorflow.serving.PredictRequest.InputsEntry" }
  field { name: "output_filter" number: 3 label: LABEL_REPEATED type: TYPE_STRING }
  nested_type {
    name: "InputsEntry" options { map_entry: true }
    field { name: "key" number: 1 type: TYPE_STRING }
    field { name: "value" number: 2 type: TYPE_MESSAGE type_name: ".tensorflow.TensorProto" }
  }
}
message_type {
  name: "PredictResponse"
  field { name: "model_spec" number: 2 type: TYPE_MESSAGE type_name: ".tensorflow.serving.ModelSpec" }
  field { name: "outputs" number: 1 label: LABEL_REPEATED type: TYPE_MESSAGE
          type_name: ".tensorflow.serving.PredictResponse.OutputsEntry" }
  nested_type {
    name: "OutputsEntry" options { map_entry: true }
    field { name: "key" number: 1 type: TYPE_STRING }
    field { name: "value" number: 2 type: TYPE_MESSAGE type_name: ".tensorflow.TensorProto" }
  }
}
"""


def _build_messages() -> dict:
    """{full name: message class} for the declarations above, in a pool of their own."""
    pool = descriptor_pool.DescriptorPool()
    wrappers = descriptor_pb2.FileDescriptorProto()
    wrappers_pb2.DESCRIPTOR.CopyToProto(wrappers)
    pool.Add(wrappers)
    names = []
    for text in (_EXAMPLE_PROTO, _TENSOR_PROTO, _PREDICT_PROTO):
        file = text_format.Parse(text, descriptor_pb2.FileDescriptorProto())  # label: LABEL_OPTIONAL unless set
        pool.Add(file)
        names += [f"{file.package}.{message.name}" for message in file.message_type]
    factory = message_factory.MessageFactory(pool)
    return {name: factory.GetPrototype(pool.FindMessageTypeByName(name)) for name in names}


_MESSAGES = _build_messages()
Example = _MESSAGES["tensorflow.Example"]
Feature = _MESSAGES["tensorflow.Feature"]
TensorProto = _MESSAGES["tensorflow.TensorProto"]
PredictRequest = _MESSAGES["tensorflow.serving.PredictRequest"]
PredictResponse = _MESSAGES["tensorflow.serving.PredictResponse"]


def string_tensor(values: Sequence[bytes]) -> TensorProto:
    """A DT_STRING tensor of shape [N], as ``tf.make_tensor_proto(values, tf.string)`` writes it."""
    tensor = TensorProto(dtype=DT_STRING, string_val=list(values))
    tensor.tensor_shape.dim.add(size=len(values))
    return tensor


def tensor_to_array(tensor: TensorProto) -> np.ndarray:
    """A numeric tensor as a numpy array, as ``tf.make_ndarray`` reads it (tensor_content, else the
    typed values, the last one repeated to fill the shape). ValueError for other dtypes."""
    if tensor.dtype not in _NUMERIC:
        raise ValueError(f"a tensor of DataType {tensor.dtype}, expected a number type "
                         f"(float, double, int32 or int64)")
    dtype, values_field = _NUMERIC[tensor.dtype]
    shape = [dim.size for dim in tensor.tensor_shape.dim]
    count = int(np.prod(shape, dtype=np.int64))
    if tensor.tensor_content:
        return np.frombuffer(tensor.tensor_content, dtype=np.dtype(dtype).newbyteorder("<")).astype(dtype).reshape(shape)
    values = np.asarray(getattr(tensor, values_field), dtype=dtype)
    if values.size == 0:
        return np.zeros(shape, dtype)
    if values.size < count:
        values = np.concatenate([values, np.full(count - values.size, values[-1], dtype)])
    return values[:count].reshape(shape)
