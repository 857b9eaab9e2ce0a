"""TF Serving's json_tensor_test.cc cases (tensorflow/serving util/json_tensor_test.cc), on
serving/json_tensor.py: the REST request parsing, the replies, and their error messages."""
import json
import math

import numpy as np
import pytest
import tensorflow as tf

from serving import errors, json_tensor as jt


def parse(body, infomap):
    """As the REST handler: the document, its signature_name, then the inputs."""
    document = jt.parse_json(body.encode() if isinstance(body, str) else body)
    jt.signature_name(document)
    return jt.predict_inputs(document, infomap)


def error_of(body, infomap) -> errors.ServingError:
    with pytest.raises(errors.ServingError) as raised:
        parse(body, infomap)
    return raised.value


@pytest.mark.parametrize("body, dtype, shape, values", [
    ('{"instances": [[1,2],[3,4],[5,6]]}', tf.int32, [3, 2], [1, 2, 3, 4, 5, 6]),                       # SingleUnnamedTensor
    ('{"instances": [1, 2.0, 3, 4, 5.003, 0.007, 0.0]}', tf.float32, [7], [1, 2, 3, 4, 5.003, 0.007, 0]),  # MixedInputForFloat
    ('{"instances": [1.0, 2, 3, 4, 0.662, 0, 0.0]}', tf.float64, [7], [1, 2, 3, 4, 0.662, 0, 0]),        # MixedInputForDouble
    ('{"instances": [1435774380]}', tf.float32, [1], [1435774380]),                                     # PrecisionLoss
    ('{"instances": [1435774380.0]}', tf.float32, [1], [1435774380]),
    ('{"instances": [1.79769e+308]}', tf.float32, [1], [math.inf]),                                     # ExceedsMax
    ('{"instances": [-1.79769e+308]}', tf.float32, [1], [-math.inf]),
    ('{"instances": [2.22507e-308]}', tf.float32, [1], [0.0]),                                          # ExceedsMin
])
def test_single_unnamed_tensor(body, dtype, shape, values):
    inputs, form = parse(body, {"default": dtype})
    assert form == jt.ROW
    assert list(inputs["default"].shape) == shape and inputs["default"].dtype == dtype.as_numpy_dtype
    np.testing.assert_allclose(inputs["default"].reshape(-1), np.array(values, dtype=dtype.as_numpy_dtype))


def test_signature_name_is_read():
    document = jt.parse_json(b'{"signature_name": "predict_images", "instances": [[1,2]]}')
    assert jt.signature_name(document) == "predict_images"


@pytest.mark.parametrize("body, shape", [
    ('{"instances": [ { "b64" : "aGVsbG8=" }, { "b64": "d29ybGQ=" } ]}', [2]),                    # Base64Scalars
    ('{"instances": [ [{ "b64" : "aGVsbG8=" }], [{ "b64": "d29ybGQ=" }] ]}', [2, 1]),              # Base64Lists
    ('{"instances": [{"default": [ [{"b64":"aGVsbG8="}], [{"b64":"d29ybGQ="}] ]}]}', [1, 2, 1]),    # NamedTensorBase64
])
def test_base64_strings(body, shape):
    inputs, _ = parse(body, {"default": tf.string})
    assert list(inputs["default"].shape) == shape
    assert list(inputs["default"].reshape(-1)) == [b"hello", b"world"]


def test_multiple_named_tensors():
    body = ('{"instances":[{"int_tensor":[[1,2],[3,4],[5,6]],"str_tensor":["foo","bar"],"float_tensor":[1.0,NaN],'
            '"dbl_tensor":[NaN]},{"int_tensor":[[7,8],[9,0],[1,2]],"str_tensor":["baz","bat"],'
            '"float_tensor":[2.0,Infinity],"dbl_tensor":[2.0]}]}')
    inputs, _ = parse(body, {"int_tensor": tf.int32, "str_tensor": tf.string, "float_tensor": tf.float32,
                             "dbl_tensor": tf.float64})
    assert inputs["int_tensor"].shape == (2, 3, 2) and list(inputs["int_tensor"].reshape(-1)) == [1, 2, 3, 4, 5, 6,
                                                                                                    7, 8, 9, 0, 1, 2]
    assert inputs["str_tensor"].tolist() == [[b"foo", b"bar"], [b"baz", b"bat"]]
    assert inputs["float_tensor"][0, 0] == 1 and math.isnan(inputs["float_tensor"][0, 1])
    assert inputs["float_tensor"][1, 1] == math.inf and inputs["dbl_tensor"].shape == (2, 1)


@pytest.mark.parametrize("body", ['{"inputs": {"int_tensor": [[[1,2],[3,4],[5,6]]]}}',
                                  '{"inputs": [[[1,2],[3,4],[5,6]]]}'])
def test_columnar_single_tensor(body):
    inputs, form = parse(body, {"int_tensor": tf.int32})
    assert form == jt.COLUMNAR and inputs["int_tensor"].shape == (1, 3, 2)


def test_columnar_multiple_named_tensors_with_a_b64_scalar():
    inputs, _ = parse('{"inputs": {"int_tensor": [[[1,2],[3,4],[5,6]]], "str_tensor": ["foo","bar"], '
                      '"bin_tensor": {"b64":"aGVsbG8="}}}',
                      {"int_tensor": tf.int32, "str_tensor": tf.string, "bin_tensor": tf.string})
    assert inputs["bin_tensor"].shape == () and inputs["bin_tensor"][()] == b"hello"
    assert inputs["str_tensor"].tolist() == [b"foo", b"bar"]


INT32 = {"default": tf.int32}
FLOAT_X = {"x": tf.float32}
TWO = {"x": tf.float32, "y": tf.float32}


@pytest.mark.parametrize("body, infomap, message", [
    # SingleUnnamedTensorErrors
    ("", INT32, "JSON Parse error: The document is empty"),
    ('{"signature_name": 5, "instances": [[1,2],[3,4],[5,6,7]]}', INT32, "'signature_name' key must be a string value."),
    ('{"instances": [[1,2],[3,4],[5,6,7]], "inputs": [[1,2],[3,4],[5,6,7]]}', INT32,
     "Not formatted correctly expecting only one of 'inputs' or 'instances' keys to exist "),
    ('{"instances": [[1,2],[3,4],[5,6,7]]}', INT32,
     "Failed to process element: 2 of 'instances' list. Error: INVALID_ARGUMENT: Expecting tensor size: 2 but got: 3"),
    ('{"instances": [[1,2],[3,4],[[5,6]]]}', INT32, "Expecting shape [2] but got: [1,2]"),
    ('{"instances": [1, [1]]}', INT32, "Expecting shape [] but got: [1]"),
    ('{"instances": [[1,2],["a", "b"]]}', INT32, 'JSON Value: "a" Type: String is not of expected type: int32'),
    ('{"instances": [["baz","bar"], {"str_tensor": ["baz","bat"]}]}', {"str_tensor": tf.string},
     "Expecting value/list but got object at item 1 of input list"),
    # api_rest.md / http_rest_api_handler_test.cc worked errors
    ("{}", FLOAT_X, "Missing 'inputs' or 'instances' key"),
    ('{"instances": 5}', FLOAT_X, 'JSON Value: {\n    "instances": 5\n} Expecting \'instances\' to be an list/array'),
    ('{"instances": []}', FLOAT_X, 'JSON Value: {\n    "instances": []\n} No values in \'instances\' array'),
    ('{"instances": ["a"]}', FLOAT_X, "Failed to process element: 0 of 'instances' list. Error: INVALID_ARGUMENT: "
                                      'JSON Value: "a" Type: String is not of expected type: float'),
    ('{"instances": [1.5]}', {"x": tf.int32}, "JSON Value: 1.5 Type: Number is not of expected type: int32"),
    ('{"inputs": [1.5]}', {"x": tf.int32}, "JSON Value: 1.5 Type: Number is not of expected type: int32"),
    ('{"instances": [{"y": 1.0}]}', FLOAT_X, "Failed to process element: 0 key: y of 'instances' list. Error: "
                                             "INVALID_ARGUMENT: JSON object: does not have named input: y"),
    ('{"inputs": [[1.0],[2.0,3.0]]}', FLOAT_X, "Encountered list at unexpected size: 2 at level: 1 expected size: 1"),
    ('{"inputs": {"b64": "aGk="}}', FLOAT_X, 'JSON Value: {\n    "b64": "aGk="\n} Type: Object is not of expected type: float'),
    ('{"instances": [1.0]}', TWO, "instances is a plain list, but expecting list of objects as multiple input tensors"),
    ('{"inputs": {"x": [1.0]}}', TWO, "Missing named input: y in 'inputs' object."),
    ('{"instances": [{"x": 1.0}]}', TWO, "Failed to process element: 0 of 'instances' list. JSON object: "
                                         '{\n    "x": 1.0\n} keys must be equal to: x,y'),
    ('{"instances": [{"b64": "!!"}]}', {"x": tf.string}, "Unable to base64 decode"),
    ('[1]', FLOAT_X, "Is not object"),
    ('{"instances": [1', FLOAT_X, "JSON Parse error"),
])
def test_request_errors(body, infomap, message):
    error = error_of(body, infomap)
    assert error.code == errors.Code.INVALID_ARGUMENT and message in error.message, error.message


def test_an_unsupported_dtype_is_unimplemented_and_wrapped_in_rows():
    error = error_of('{"inputs": [1.0]}', {"x": tf.float16})
    assert error.code == errors.Code.UNIMPLEMENTED and error.http_status == 501
    assert error.message == "Conversion of JSON Value: 1.0 to type: half"
    wrapped = error_of('{"instances": [1.0]}', {"x": tf.float16})  # the row wrapper says INVALID_ARGUMENT
    assert wrapped.code == errors.Code.INVALID_ARGUMENT and "Error: UNIMPLEMENTED: Conversion" in wrapped.message


def test_replies_row_and_columnar():
    ints = np.array([[[1, 2], [3, 4], [5, 6]], [[7, 8], [9, 0], [1, 2]]], np.int32)
    assert json.loads(jt.predict_reply({"int_tensor": ints}, jt.ROW)) == {"predictions": ints.tolist()}
    assert json.loads(jt.predict_reply({"int_tensor": ints}, jt.COLUMNAR)) == {"outputs": ints.tolist()}
    five = np.arange(1, 6, dtype=np.int32)
    assert json.loads(jt.predict_reply({"t": five}, jt.ROW)) == {"predictions": [1, 2, 3, 4, 5]}


def test_bytes_outputs_are_base64_only_when_named_so():
    strings = np.array([[b"hello", b"world"], [b"tf", b"serving"]], dtype=object)
    assert json.loads(jt.predict_reply({"str_tensor_bytes": strings}, jt.ROW)) == {"predictions": [
        [{"b64": "aGVsbG8="}, {"b64": "d29ybGQ="}], [{"b64": "dGY="}, {"b64": "c2VydmluZw=="}]]}
    assert json.loads(jt.predict_reply({"str_tensor": strings}, jt.ROW)) == {"predictions": strings.astype(str).tolist()}


def test_floats_are_written_with_six_digits_unless_that_loses_the_value():
    floats = np.array([[9000000, 999999, 0.5], [0.0003, 0.00003, 555557.5]], np.float32)
    assert "[[9e+06, 999999.0, 0.5], [0.0003, 3e-05, 555557.5]" in jt.predict_reply({"f": floats}, jt.ROW)
    special = np.array([[np.nan, np.inf], [3, -np.inf]], np.float32)
    assert "[[NaN, Infinity], [3.0, -Infinity]" in jt.predict_reply({"f": special}, jt.ROW)
    assert "0.333333343" in jt.predict_reply({"f": np.array([1 / 3], np.float32)}, jt.ROW)


def test_multiple_named_outputs():
    outputs = {"int_tensor": np.array([[[1, 2], [3, 4], [5, 6]], [[7, 8], [9, 0], [1, 2]]], np.int32),
               "str_tensor": np.array([[b"foo", b"bar"], [b"baz", b"bat"]], dtype=object),
               "float_tensor": np.array([[1.0], [2.0]], np.float32),
               "double_scalar_tensor": np.array([8.0, 9.0]),
               "str_tensor_bytes": np.array([[b"hello", b"world"], [b"tf", b"serving"]], dtype=object)}
    row = json.loads(jt.predict_reply(outputs, jt.ROW))
    assert row["predictions"][1] == {"double_scalar_tensor": 9.0, "float_tensor": [2.0],
                                     "int_tensor": [[7, 8], [9, 0], [1, 2]], "str_tensor": ["baz", "bat"],
                                     "str_tensor_bytes": [{"b64": "dGY="}, {"b64": "c2VydmluZw=="}]}
    columnar = json.loads(jt.predict_reply(outputs, jt.COLUMNAR))
    assert columnar["outputs"]["double_scalar_tensor"] == [8.0, 9.0] and columnar["outputs"]["float_tensor"] == [[1.0], [2.0]]


@pytest.mark.parametrize("outputs, message", [
    ({}, "Cannot convert empty tensor map to JSON"),
    ({"t": np.array(1, np.int32)}, "Tensor name: t has no shape information "),
    ({"a": np.zeros([2, 3], np.int32), "b": np.zeros([1, 3], np.int32)}, "inconsistent batch size"),
])
def test_reply_errors(outputs, message):
    with pytest.raises(errors.ServingError, match=message.replace("(", r"\(")):
        jt.predict_reply(outputs, jt.ROW)


def test_zero_batch_replies_an_empty_list():
    assert json.loads(jt.predict_reply({"t": np.zeros([0, 2], np.int32)}, jt.ROW)) == {"predictions": []}


def test_classify_request_without_and_with_context():
    plain = jt.classify_regress_input(jt.parse_json(
        b'{"examples":[{"names":["foo","bar"],"ratings":[8.0,9.0],"age":20},{"names":["baz"],"ratings":6.0}]}'),
        "classify")
    first = plain.example_list.examples[0].features.feature
    assert first["names"].bytes_list.value == [b"foo", b"bar"] and first["age"].int64_list.value == [20]
    assert list(first["ratings"].float_list.value) == [8.0, 9.0]
    with_context = jt.classify_regress_input(jt.parse_json(
        b'{"signature_name":"custom_signture","context":{"query":"pizza","location":["sfo"]},"examples":'
        b'[{"names":["foo","bar"],"ratings":[8.0,9.0,NaN,Infinity],"age":20},'
        b'{"names":["baz",{"b64":"aGVsbG8="}],"ratings":6.0,"intboolmix":[1,true,false]},'
        b'{"names":"bar","ratings":-Infinity}]}'), "classify")
    assert with_context.example_list_with_context.context.features.feature["query"].bytes_list.value == [b"pizza"]
    examples = with_context.example_list_with_context.examples
    assert examples[1].features.feature["names"].bytes_list.value == [b"baz", b"hello"]
    assert examples[1].features.feature["intboolmix"].int64_list.value == [1, 1, 0]
    assert examples[2].features.feature["ratings"].float_list.value[0] == -math.inf


@pytest.mark.parametrize("body, message", [
    ('{"signature_name":["hello"],"examples":[{"names":["foo","bar"]}]}', "'signature_name' key must be a string"),
    ('{"context":[{"names":["foo","bar"]}]}', "Example must be JSON object"),
    ('{"examples":{"names":["foo","bar"]}}', "list/array"),
    ('{"examples":[[{"names":["foo","bar"]}]]}', "Example must be JSON object"),
    ('{"examples":[{"names":[10,null]}]}', "names has element with unexpected JSON type: Null"),
    ('{"examples":[{"names":[10,10.0]}]}', "feature: names expecting type: int64"),
    ('{"examples":[{"names":[10,{"test":10}]}]}', "names has element with unexpected JSON type: Object"),
    ('{"examples":[{"names":[[10],20]}]}', "names has element with unexpected JSON type: Array"),
    ('{"examples":[{"names":[20,18446744073709551603]}]}', "Only int64_t is supported"),
    ('{"examples": []}', "'examples' value is an empty array"),
    ("{}", "When method is classify, key 'examples' is expected and was not found"),
])
def test_classify_regress_request_errors(body, message):
    with pytest.raises(errors.ServingError) as raised:
        document = jt.parse_json(body.encode())
        jt.signature_name(document)
        jt.classify_regress_input(document, "classify")
    assert message in raised.value.message, raised.value.message


def test_classify_and_regress_replies():
    rows = [[(b"car", 0.2), (b"bike", 0.7), (b"bus", 0.1)], [(b"car", 0.7), (b"bike", 0.1), (b"bus", 0.2)]]
    assert json.loads(jt.classify_reply(rows)) == {"results": [[["car", 0.2], ["bike", 0.7], ["bus", 0.1]],
                                                               [["car", 0.7], ["bike", 0.1], ["bus", 0.2]]]}
    assert json.loads(jt.regress_reply([0.2, 0.9, 1.0])) == {"results": [0.2, 0.9, 1.0]}
    assert "[0.2, Infinity, 1.0, -Infinity, NaN]" in jt.regress_reply([0.2, math.inf, 1.0, -math.inf, math.nan])
    with pytest.raises(errors.ServingError, match="empty ClassificationResults"):
        jt.classify_reply([])
    with pytest.raises(errors.ServingError, match="empty RegressionResults"):
        jt.regress_reply([])


def test_error_reply():
    assert json.loads(jt.error_reply('Bad key: "key"')) == {"error": 'Bad key: "key"'}
