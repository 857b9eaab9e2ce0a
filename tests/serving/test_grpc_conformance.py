"""TF Serving's gRPC API conformance (PredictionService, ModelService) on saved_model_half_plus_two,
with TF Serving's status codes and messages, against a real `tfxp serve` on loopback."""
import socket

import grpc
import pytest
import tensorflow as tf
from tensorflow_serving.apis import (classification_pb2, get_model_metadata_pb2, get_model_status_pb2,
                                     model_service_pb2_grpc, predict_pb2, prediction_service_pb2_grpc,
                                     regression_pb2)

from tests.serving.conftest import LABEL, MODEL


@pytest.fixture(scope="module")
def stubs(tfs):
    channel = grpc.insecure_channel(tfs.grpc_target)
    yield (prediction_service_pb2_grpc.PredictionServiceStub(channel),
           model_service_pb2_grpc.ModelServiceStub(channel))
    channel.close()


def predict_request(x, name=MODEL, version=None, label=None, signature=None, key="x"):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    if version is not None:
        request.model_spec.version.value = version
    if label is not None:
        request.model_spec.version_label = label
    if signature is not None:
        request.model_spec.signature_name = signature
    request.inputs[key].CopyFrom(tf.make_tensor_proto(x))
    return request


def rpc_error(call, request) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as raised:
        call(request, timeout=30)
    return raised.value


@pytest.mark.parametrize("spec", [{}, {"version": 123}, {"label": LABEL}])
def test_predict(stubs, spec):
    response = stubs[0].Predict(predict_request([[1.0], [2.0]], **spec), timeout=30)
    assert tf.make_ndarray(response.outputs["y"]).tolist() == [[2.5], [3.0]]
    assert response.outputs["y"].float_val == [2.5, 3.0] and not response.outputs["y"].tensor_content
    assert (response.model_spec.name, response.model_spec.version.value,
            response.model_spec.signature_name) == (MODEL, 123, "serving_default")


@pytest.mark.parametrize("request_, code, message", [
    (predict_request([[1.0]], name="foo"), grpc.StatusCode.NOT_FOUND, "Servable not found for request: Latest(foo)"),
    (predict_request([[1.0]], version=7), grpc.StatusCode.NOT_FOUND,
     f"Servable not found for request: Specific({MODEL}, 7)"),
    (predict_request([[1.0]], label="nope"), grpc.StatusCode.INVALID_ARGUMENT, "Unrecognized servable version label: nope"),
    (predict_request([[1.0]], signature="nope"), grpc.StatusCode.FAILED_PRECONDITION,
     'Serving signature key "nope" not found.'),
    (predict_request([["a"]]), grpc.StatusCode.INVALID_ARGUMENT, "Expects arg[0] to be float but string is provided"),
    (predict_request([[1.0]], key="z"), grpc.StatusCode.INVALID_ARGUMENT,
     "Signature input alias: x(feed name: x:0) not found in request"),
    (predict_request([[1.0]], name=""), grpc.StatusCode.INVALID_ARGUMENT, "ModelSpec has no name specified."),
])
def test_predict_errors(stubs, request_, code, message):
    error = rpc_error(stubs[0].Predict, request_)
    assert error.code() == code and message in error.details(), error.details()


def test_predict_output_filter(stubs):
    request = predict_request([[1.0]])
    request.output_filter.append("nope")
    error = rpc_error(stubs[0].Predict, request)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == "output tensor alias not found in signature: nope Outputs expected to be in the set {y}."


def examples_input(request, *xs):
    for x in xs:
        request.input.example_list.examples.add().features.feature["x"].float_list.value.append(x)
    return request


def test_classify_and_regress(stubs):
    classify = examples_input(classification_pb2.ClassificationRequest(), 20.0, 10.0)
    classify.model_spec.name, classify.model_spec.signature_name = MODEL, "classify_x_to_y"
    result = stubs[0].Classify(classify, timeout=30)
    assert [[(c.label, c.score) for c in row.classes] for row in result.result.classifications] == [[("", 12.0)],
                                                                                                   [("", 7.0)]]
    regress = examples_input(regression_pb2.RegressionRequest(), 80.0)
    regress.model_spec.name, regress.model_spec.signature_name = MODEL, "regress_x_to_y"
    regress.model_spec.version_label = LABEL
    response = stubs[0].Regress(regress, timeout=30)
    assert [r.value for r in response.result.regressions] == [42.0] and response.model_spec.version.value == 123


def test_classify_errors(stubs):
    request = examples_input(classification_pb2.ClassificationRequest(), 1.0)
    request.model_spec.name = MODEL  # serving_default is a predict signature: no "inputs" input
    error = rpc_error(stubs[0].Classify, request)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith("No classification inputs found in SignatureDef")
    request.model_spec.signature_name = "nope"
    assert rpc_error(stubs[0].Classify, request).details() == "No signature was found with the name: nope"
    empty = regression_pb2.RegressionRequest()
    empty.model_spec.name, empty.model_spec.signature_name = MODEL, "regress_x_to_y"
    assert rpc_error(stubs[0].Regress, empty).details() == "Input is empty."


def test_get_model_metadata(stubs):
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = MODEL
    response = stubs[0].GetModelMetadata(request, timeout=30)
    signatures = get_model_metadata_pb2.SignatureDefMap()
    response.metadata["signature_def"].Unpack(signatures)
    assert response.model_spec.version.value == 123
    assert signatures.signature_def["serving_default"].outputs["y"].dtype == tf.float32.as_datatype_enum
    bad = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["nope"])
    bad.model_spec.name = MODEL
    assert rpc_error(stubs[0].GetModelMetadata, bad).details() == "Metadata field nope is not supported"


def test_get_model_status(stubs):
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = MODEL
    response = stubs[1].GetModelStatus(request, timeout=30)
    assert [(s.version, s.state, s.status.error_code) for s in response.model_version_status] == [
        (123, get_model_status_pb2.ModelVersionStatus.AVAILABLE, 0)]
    request.model_spec.name = "foo"
    error = rpc_error(stubs[1].GetModelStatus, request)
    assert error.code() == grpc.StatusCode.NOT_FOUND and error.details() == "Could not find any versions of model foo"


def test_garbage_on_the_grpc_port_leaves_the_server_serving(tfs, stubs):
    for payload in (b"\x00" * 64, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", bytes(range(256)) * 8):
        with socket.create_connection(("127.0.0.1", tfs.grpc_port), timeout=5) as sock:
            sock.sendall(payload)
            sock.settimeout(2)
            try:
                sock.recv(1024)
            except OSError:
                pass
    response = stubs[0].Predict(predict_request([[3.0]]), timeout=30)
    assert tf.make_ndarray(response.outputs["y"]).tolist() == [[3.5]]


def test_grpc_requests_are_in_the_access_log_and_metrics(tfs, stubs):
    stubs[0].Predict(predict_request([[1.0]]), timeout=30)
    assert any(line.endswith("ms") and "grpc Predict model=half_plus_two version=123 OK" in line
               for line in tfs.access_lines())
    import requests
    page = requests.get(tfs.url + "/monitoring/prometheus/metrics", timeout=10).text
    assert 'api="Predict",model="half_plus_two",protocol="grpc",signature="serving_default",status="OK"' in page
