"""TF Serving's REST API conformance: the cases of tensorflow/serving's http_rest_api_handler_test.cc
(model saved_model_half_plus_two, y = 0.5x + 2, version 123 labelled Version_Label) and of
tensorflow_model_server_test.py, against a real `tfxp serve` on loopback."""
import json

import pytest
import requests

from tests.serving.conftest import LABEL, MODEL

M = MODEL


def call(tfs, method, path, body=None, raw=None):
    data = raw if raw is not None else (json.dumps(body) if body is not None else None)
    return requests.request(method, tfs.url + path, data=data, timeout=30)


@pytest.mark.parametrize("method, path", [
    ("GET", "/v1/foo"), ("POST", "/v1/foo"), ("GET", "/v1/models/debug/model_name"), ("POST", "/v1/models"),
    ("GET", "/v1/models/foo:predict"), ("GET", "/v1/models/foo/version/50:predict"),
    ("POST", "/v1/models/foo/version/50:regress"), ("POST", "/v1/models/foo/versions/HELLO:regress"),
    ("POST", "/v1/models/foo/metadata"), ("POST", "/v1/models/foo/label/some_label:regress"),
    ("POST", "/v1/models/foo/versions/50/labels/some_label:regress"),
    ("POST", "/v1/models/foo/versions/some_label:regress"), ("GET", "/v1/models/"), ("PUT", "/v1/models/foo"),
    ("POST", f"/v1/models/{M}:PREDICT"),  # the verb matches case-insensitively but dispatches case-sensitively
])
def test_malformed_requests(tfs, method, path):
    reply = call(tfs, method, path)
    assert reply.status_code == 400 and reply.headers["content-type"] == "application/json"
    assert reply.json()["error"] == f"Malformed request: {method} {path}"


def test_status_without_a_model_name(tfs):
    reply = call(tfs, "GET", "/v1/models")
    assert reply.status_code == 400 and reply.json()["error"] == "Missing model name in request."


def test_a_version_beyond_int64_is_400_with_an_empty_body(tfs):
    reply = call(tfs, "POST", "/v1/models/foo/versions/18446744073709551615:regress")
    assert reply.status_code == 400 and reply.text == ""


@pytest.mark.parametrize("path, message", [
    ("/v1/models/foo:predict", "Servable not found for request: Latest(foo)"),
    ("/v1/models/foo/versions/50:predict", "Servable not found for request: Specific(foo, 50)"),
    (f"/v1/models/{M}99:predict", f"Servable not found for request: Latest({M}99)"),
    (f"/v1/models/{M}/versions/7:predict", f"Servable not found for request: Specific({M}, 7)"),
])
def test_unknown_models_and_versions_are_404(tfs, path, message):
    reply = call(tfs, "POST", path, {"instances": [1]})
    assert reply.status_code == 404 and reply.json() == {"error": message}


@pytest.mark.parametrize("path, body, raw, message", [
    (f"/v1/models/{M}:predict", None, "", "JSON Parse error: The document is empty"),
    (f"/v1/models/{M}:predict", None, "instances = [1, 2]", "JSON Parse error"),
    (f"/v1/models/{M}:predict", {"instances": ["x", "y"]}, None, "not of expected type: float"),
    (f"/v1/models/{M}/labels/Version_Nonexistent:predict", {"instances": ["x", "y"]}, None,
     "Unrecognized servable version label: Version_Nonexistent"),
    (f"/v1/models/{M}:predict", {"signature_name": 100}, None, "'signature_name' key must be a string value."),
    (f"/v1/models/{M}:predict", {"signature_name": "nope", "instances": [1.0]}, None,
     'Serving signature name: "nope" not found in signature def'),
    (f"/v1/models/{M}:predict", {"instances": [[1.0], [2.0, 3.0]]}, None, "Expecting tensor size: 1 but got: 2"),
    (f"/v1/models/{M}:regress", {}, None, "When method is classify, key 'examples' is expected and was not found"),
    (f"/v1/models/{M}:classify", {"signature_name": "nope", "examples": [{"x": 1.0}]}, None,
     "No signature was found with the name: nope"),
    (f"/v1/models/{M}:classify", {"examples": [{"x": 1.0}]}, None, "No classification inputs found in SignatureDef"),
])
def test_bad_requests_are_400_with_tf_servings_message(tfs, path, body, raw, message):
    reply = call(tfs, "POST", path, body, raw)
    assert reply.status_code == 400 and message in reply.json()["error"], reply.text


@pytest.mark.parametrize("path, body, expected", [
    (f"/v1/models/{M}:predict", {"instances": [[1.0, 2.0], [3.0, 4.0]]}, {"predictions": [[2.5, 3.0], [3.5, 4.0]]}),
    (f"/v1/models/{M}/versions/123:predict", {"instances": [1.0, 2.0]}, {"predictions": [2.5, 3.0]}),
    (f"/v1/models/{M}/labels/{LABEL}:predict", {"instances": [1.0, 2.0]}, {"predictions": [2.5, 3.0]}),
    (f"/v1/models/{M}/versions/123:predict", {"signature_name": "serving_default", "instances": [3.0, 4.0]},
     {"predictions": [3.5, 4.0]}),
    (f"/v1/models/{M}/versions/123:predict", {"signature_name": "serving_default", "inputs": [3.0, 4.0]},
     {"outputs": [3.5, 4.0]}),
    (f"/v1/models/{M}:predict", {"instances": [2.0, 3.0, 4.0]}, {"predictions": [3.0, 3.5, 4.0]}),
    (f"/v1/models/{M}:predict", {"inputs": [2.0, 3.0, 4.0]}, {"outputs": [3.0, 3.5, 4.0]}),
    (f"/v1/models/{M}:regress", {"signature_name": "regress_x_to_y", "examples": [{"x": 80.0}]}, {"results": [42]}),
    (f"/v1/models/{M}/versions/123:regress", {"signature_name": "regress_x_to_y", "examples": [{"x": 80.0}]},
     {"results": [42]}),
    (f"/v1/models/{M}/labels/{LABEL}:regress", {"signature_name": "regress_x_to_y", "examples": [{"x": 80.0}]},
     {"results": [42]}),
    (f"/v1/models/{M}:regress", {"signature_name": "regress_x_to_y", "examples": [{"x": 2.0}]}, {"results": [3.0]}),
    (f"/v1/models/{M}:regress", {"signature_name": "regress_x_to_y2", "context": {"x": 2.0},
                                 "examples": [{"x2": 1.0}, {"x": 4.0}]}, {"results": [4.0, 5.0]}),
    (f"/v1/models/{M}:classify", {"signature_name": "classify_x_to_y", "examples": [{"x": 20.0}]},
     {"results": [[["", 12]]]}),
    (f"/v1/models/{M}/labels/{LABEL}:classify", {"signature_name": "classify_x_to_y", "examples": [{"x": 10.0}]},
     {"results": [[["", 7]]]}),
])
def test_predict_classify_regress(tfs, path, body, expected):
    reply = call(tfs, "POST", path, body)
    assert reply.status_code == 200 and reply.headers["content-type"] == "application/json", reply.text
    assert reply.json() == expected


def test_the_reply_is_laid_out_as_tf_serving_writes_it(tfs):
    reply = call(tfs, "POST", f"/v1/models/{M}:predict", {"instances": [1.0, 2.0]})
    assert reply.text == '{\n    "predictions": [2.5, 3.0\n    ]\n}'


STATUS = {"model_version_status": [{"version": "123", "state": "AVAILABLE",
                                    "status": {"error_code": "OK", "error_message": ""}}]}


@pytest.mark.parametrize("path", [f"/v1/models/{M}", f"/v1/models/{M}/versions/123", f"/v1/models/{M}/labels/{LABEL}",
                                  f"/v1/models/{M}/labels/anything"])  # GET status ignores labels, as TF Serving
def test_model_status(tfs, path):
    reply = call(tfs, "GET", path)
    assert reply.status_code == 200 and reply.json() == STATUS


@pytest.mark.parametrize("path, message", [("/v1/models/foo", "Could not find any versions of model foo"),
                                           (f"/v1/models/{M}/versions/7", f"Could not find version 7 of model {M}")])
def test_status_of_unknown_models_and_versions(tfs, path, message):
    reply = call(tfs, "GET", path)
    assert reply.status_code == 404 and reply.json() == {"error": message}


def test_model_metadata(tfs):
    reply = call(tfs, "GET", f"/v1/models/{M}/metadata")
    assert reply.status_code == 200
    metadata = reply.json()
    assert metadata["model_spec"] == {"name": M, "signature_name": "", "version": "123"}
    signatures = metadata["metadata"]["signature_def"]["signature_def"]
    assert sorted(signatures) == ["classify_x_to_y", "regress_x2_to_y3", "regress_x_to_y", "regress_x_to_y2",
                                  "serving_default"]
    assert signatures["serving_default"] == {
        "inputs": {"x": {"dtype": "DT_FLOAT", "tensor_shape": {"dim": [{"size": "-1", "name": ""},
                                                                      {"size": "1", "name": ""}],
                                                              "unknown_rank": False}, "name": "x:0"}},
        "outputs": {"y": {"dtype": "DT_FLOAT", "tensor_shape": {"dim": [{"size": "-1", "name": ""},
                                                                       {"size": "1", "name": ""}],
                                                               "unknown_rank": False}, "name": "y:0"}},
        "method_name": "tensorflow/serving/predict", "defaults": {}}
    assert signatures["classify_x_to_y"]["inputs"]["inputs"]["dtype"] == "DT_STRING"
    by_label = call(tfs, "GET", f"/v1/models/{M}/labels/{LABEL}/metadata").json()
    assert by_label["model_spec"]["version"] == "123"


def test_prometheus_metrics_count_requests_by_model_version_signature_and_status(tfs):
    call(tfs, "POST", f"/v1/models/{M}:predict", {"instances": [1.0]})
    call(tfs, "POST", f"/v1/models/{M}:predict", {"instances": ["bad"]})
    reply = call(tfs, "GET", "/monitoring/prometheus/metrics")
    assert reply.status_code == 200 and "# TYPE" in reply.text
    assert (f'tfxp_serving_requests_total{{api="predict",model="{M}",protocol="rest",signature="serving_default",'
            f'status="OK",version="123"}}') in reply.text
    assert f'status="INVALID_ARGUMENT",version="123"' in reply.text
    assert f':tensorflow:serving:request_count{{model_name="{M}",status="OK"}}' in reply.text
    assert "tfxp_serving_request_latency_seconds_bucket" in reply.text


def test_one_access_log_line_per_request(tfs):
    before = len(tfs.access_lines())
    for _ in range(3):
        call(tfs, "POST", f"/v1/models/{M}:predict", {"instances": [1.0]})
    lines = tfs.access_lines()[before:]
    assert len(lines) == 3 and all(f"POST /v1/models/{M}:predict 200" in line for line in lines)
