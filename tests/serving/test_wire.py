"""tfxp.wire's messages are TensorFlow's and TF Serving's on the wire: the same bytes both ways."""
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2

from components.core.user_code import load_user_code
from data import tfrecords
from serving import client
from serving.client import ModelSpec
from tfxp import wire

USER = load_user_code("synth_binary")


def test_an_example_made_without_tensorflow_parses_as_tensorflows_with_every_dtype():
    values = {"income": "1234.5", "age": -41, "city": "Chicago", "weekday": [1, 2], "latitude": None}
    ours = tfrecords.make_example(values, USER.features, "test")
    theirs = tf.train.Example(features=tf.train.Features(feature={
        "income": tf.train.Feature(float_list=tf.train.FloatList(value=[1234.5])),
        "age": tf.train.Feature(int64_list=tf.train.Int64List(value=[-41])),
        "city": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"Chicago"])),
        "weekday": tf.train.Feature(int64_list=tf.train.Int64List(value=[1, 2]))}))
    assert tf.train.Example.FromString(ours.SerializeToString()) == theirs
    assert wire.Example.FromString(theirs.SerializeToString()) == ours


@pytest.mark.parametrize("spec", [ModelSpec("loans"), ModelSpec("loans", version=7),
                                  ModelSpec("loans", label="canary", signature_name="other")])
def test_a_predict_request_is_tf_servings_byte_for_byte(spec):
    examples = [b"first", b"", b"third"]
    theirs = predict_pb2.PredictRequest()
    theirs.model_spec.name = spec.name
    if spec.version is not None:
        theirs.model_spec.version.value = spec.version
    if spec.label is not None:
        theirs.model_spec.version_label = spec.label
    theirs.model_spec.signature_name = spec.signature_name
    theirs.inputs["examples"].CopyFrom(tf.make_tensor_proto(examples, dtype=tf.string))
    assert client.grpc_request(examples, spec).SerializeToString() == theirs.SerializeToString()


@pytest.mark.parametrize("array", [
    np.array([[0.25], [0.75]], np.float32), np.arange(6, dtype=np.float32).reshape(2, 3),
    np.arange(4, dtype=np.float64).reshape(4, 1), np.array([3, -1], np.int64), np.array([[5], [6]], np.int32)])
def test_a_predict_responses_tensor_reads_as_tf_make_ndarray_reads_it(array):
    response = predict_pb2.PredictResponse()
    response.outputs["outputs"].CopyFrom(tf.make_tensor_proto(array))
    tensor = wire.PredictResponse.FromString(response.SerializeToString()).outputs["outputs"]
    read = wire.tensor_to_array(tensor)
    assert read.dtype == array.dtype and read.shape == array.shape
    np.testing.assert_array_equal(read, tf.make_ndarray(response.outputs["outputs"]))


def test_a_tensor_with_fewer_values_than_its_shape_repeats_the_last_one_as_tensorflow_does():
    proto = tf.make_tensor_proto(0.5, dtype=tf.float32, shape=[3, 1])  # one float_val for three
    read = wire.tensor_to_array(wire.TensorProto.FromString(proto.SerializeToString()))
    np.testing.assert_array_equal(read, tf.make_ndarray(proto))


def test_a_string_output_tensor_is_refused_naming_its_type():
    proto = tf.make_tensor_proto([b"x"], dtype=tf.string)
    with pytest.raises(ValueError, match="DataType 7, expected a number type"):
        wire.tensor_to_array(wire.TensorProto.FromString(proto.SerializeToString()))
