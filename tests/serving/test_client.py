"""tfxp predict's client: TF Serving's documented requests, rows typed by the feature list, retries.

The servers here are real and local (``http.server`` and ``grpc.server`` on 127.0.0.1, scripted to
answer errors), so the client's requests, retries and connections run as they would against
tensorflow/serving.
"""
import argparse
import base64
import http.server
import io
import json
import socket
import threading
import time
from concurrent import futures

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from components.core.user_code import load_user_code
from data import tfrecords
from pipeline import cli
from pipeline import predict_command
from serving import client
from serving.client import ClientError, ModelSpec, ServingRequestError, ServingUnavailable
from tests.support import synthetic
from tests.support.examples import read_examples

USER = load_user_code("synth_binary")
FAST = dict(timeout=2.0, retries=3, backoff=0.01)


def _example(**features) -> bytes:
    return tfrecords.make_example(features, USER.features, "test").SerializeToString()


def _values(serialized: bytes) -> dict:
    """name -> list of values of a serialized tf.Example."""
    feature = tf.train.Example.FromString(serialized).features.feature
    return {name: list(getattr(f, f.WhichOneof("kind")).value) for name, f in feature.items()}


# -- real local servers, scripted --------------------------------------------------------------------

class RestServer:
    """An HTTP server answering predict requests from a script of (status, body, delay) steps.

    The last step repeats. A body of None answers ``{"predictions": [[age / 100] per instance]}``.
    """

    def __init__(self, script):
        self.script, self.requests = list(script), []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as TF Serving

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append({"path": self.path, "body": body, "port": self.client_address[1],
                                        "content_type": self.headers["Content-Type"]})
                status, answer, delay = server.script[min(len(server.requests), len(server.script)) - 1]
                time.sleep(delay)
                if answer is None:
                    answer = {"predictions": [[_age(i["b64"]) / 100] for i in body["instances"]]}
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def _age(b64: str) -> int:
    return int(_values(base64.b64decode(b64)).get("age", [0])[0])


OK = (200, None, 0)


class ScriptedPredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    """Answers Predict from a script of gRPC status codes (None: answer 0.25 per example); the last repeats."""

    def __init__(self, script):
        self.script, self.requests = list(script), []

    def Predict(self, request, context):
        self.requests.append(request)
        code = self.script[min(len(self.requests), len(self.script)) - 1]
        if code is not None:
            context.abort(code, f"scripted {code.name} from the test server")
        n = request.inputs["examples"].tensor_shape.dim[0].size
        response = predict_pb2.PredictResponse()
        response.outputs["outputs"].CopyFrom(tf.make_tensor_proto(np.full((n, 1), 0.25, np.float32)))
        return response


@pytest.fixture
def rest_server():
    servers = []

    def start(*script):
        servers.append(RestServer(script or [OK]))
        return servers[-1]
    yield start
    for server in servers:
        server.close()


@pytest.fixture
def grpc_server():
    servers = []

    def start(*script):
        service = ScriptedPredictionService(script or [None])
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(service, server)
        service.port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        servers.append(server)
        return service
    yield start
    for server in servers:
        server.stop(grace=None)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- (a) REST: TF Serving's documented URL and body --------------------------------------------------

@pytest.mark.parametrize("spec, path", [
    (ModelSpec("loans"), "/v1/models/loans:predict"),
    (ModelSpec("loans", version=1795255735), "/v1/models/loans/versions/1795255735:predict"),
    (ModelSpec("loans", label="canary"), "/v1/models/loans/labels/canary:predict"),
])
def test_rest_url_names_the_model_and_a_version_or_label(spec, path):
    assert client.rest_url("127.0.0.1", 8501, spec) == "http://127.0.0.1:8501" + path


def test_rest_body_is_the_row_format_with_one_base64_value_per_example():
    examples = [_example(age=30), _example(city="x")]
    body = client.rest_body(examples, ModelSpec("loans", signature_name="serving_default"))
    assert body == {"signature_name": "serving_default",
                    "instances": [{"b64": base64.b64encode(e).decode()} for e in examples]}
    assert json.loads(json.dumps(body)) == body


def test_a_version_and_a_label_together_are_refused():
    with pytest.raises(ClientError, match="a version or a label, not both"):
        ModelSpec("loans", version=3, label="stable")


def test_the_rest_client_posts_exactly_that_body_as_json(rest_server):
    server = rest_server()
    examples = [_example(age=30), _example(age=40)]
    spec = ModelSpec("loans", label="stable", signature_name="serving_default")
    with client.RestClient("127.0.0.1", server.port, spec, **FAST) as rest:
        outputs = rest.predict(examples)
    assert server.requests == [{"path": "/v1/models/loans/labels/stable:predict", "content_type": "application/json",
                                "body": client.rest_body(examples, spec), "port": server.requests[0]["port"]}]
    np.testing.assert_allclose(outputs, [[0.30], [0.40]])


# -- (b) gRPC: TF Serving's PredictRequest ----------------------------------------------------------

@pytest.mark.parametrize("spec", [ModelSpec("loans"), ModelSpec("loans", version=7),
                                  ModelSpec("loans", label="canary", signature_name="other")])
def test_grpc_request_carries_the_model_spec_and_the_examples_as_a_string_tensor(spec):
    examples = [_example(age=30), _example(city="x"), _example()]
    request = client.grpc_request(examples, spec)
    assert request.model_spec.name == "loans"
    assert request.model_spec.signature_name == spec.signature_name
    assert request.model_spec.HasField("version") == (spec.version is not None)
    assert request.model_spec.version.value == (spec.version or 0)
    assert request.model_spec.version_label == (spec.label or "")
    assert list(request.inputs) == ["examples"]
    tensor = request.inputs["examples"]
    assert tensor.dtype == tf.string.as_datatype_enum
    assert [d.size for d in tensor.tensor_shape.dim] == [3]
    assert list(tensor.string_val) == examples


def test_the_grpc_client_sends_that_request_and_reads_the_outputs_tensor(grpc_server):
    service = grpc_server()
    examples = [_example(age=30), _example(age=40)]
    spec = ModelSpec("loans", version=7)
    with client.GrpcClient("127.0.0.1", service.port, spec, **FAST) as stub:
        outputs = stub.predict(examples)
    assert [r.SerializeToString() for r in service.requests] == [client.grpc_request(examples, spec).SerializeToString()]
    np.testing.assert_allclose(outputs, [[0.25], [0.25]])


# -- (c) rows typed by the feature list -------------------------------------------------------------

def _jsonl(tmp_path, *rows, name="rows.jsonl"):
    path = tmp_path / name
    path.write_text("".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows))
    return str(path)


def _read(path, warnings=None, **kwargs):
    return predict_command.read_examples(path, USER.features, not_sent=USER.label_source_names,
                                warn=(warnings.append if warnings is not None else print), **kwargs)


def test_json_values_are_typed_by_the_feature_list(tmp_path):
    signature = bytes([0, 1, 255])
    path = _jsonl(tmp_path, {"income": 52000, "age": 41.0, "latitude": "41.9", "weekday": 3, "city": "Chicago",
                             "branch_id": [1003, 1010], "signature": base64.b64encode(signature).decode()})
    [example] = _read(path)
    assert _values(example) == {"income": [52000.0], "age": [41], "latitude": [pytest.approx(41.9)],
                                "weekday": [3], "city": [b"Chicago"], "branch_id": [1003, 1010],
                                "signature": [signature]}


def test_null_empty_and_missing_values_are_absent_features(tmp_path):
    path = _jsonl(tmp_path, {"income": None, "city": "", "branch_id": [], "age": 30})
    assert [_values(e) for e in _read(path)] == [{"age": [30]}]


def test_the_label_columns_are_accepted_but_not_sent(tmp_path):
    path = _jsonl(tmp_path, {"age": 30, "defaulted": 1})
    warnings = []
    assert [_values(e) for e in _read(path, warnings)] == [{"age": [30]}]
    assert warnings == []


def test_a_csv_is_typed_as_the_data_tool_types_it_without_the_label(tmp_path):
    csv_path = synthetic.write_csv(tmp_path / "rows.csv", USER, 60)
    tfrecords.convert_csv(csv_path, str(tmp_path / "out"), features=USER.features, shards=1, compression="none")
    by_data_tool = [{k: v for k, v in row.items() if k != "defaulted"}
                    for row in read_examples(str(tmp_path / "out" / "*" / "*"))]
    by_client = [_values(e) for e in _read(csv_path)]
    key = lambda row: repr(sorted(row.items()))  # noqa: E731
    assert len(by_client) == 60 and sorted(map(key, by_client)) == sorted(map(key, by_data_tool))


def test_a_csv_and_the_same_rows_as_json_lines_give_the_same_examples(tmp_path):
    csv_path = tmp_path / "rows.csv"
    csv_path.write_text("age,city,income\n30,Chicago,\n,Evanston,1.5\n")
    jsonl = _jsonl(tmp_path, {"age": 30, "city": "Chicago"}, {"city": "Evanston", "income": 1.5})
    assert [_values(e) for e in _read(str(csv_path))] == [_values(e) for e in _read(jsonl)] == [
        {"age": [30], "city": [b"Chicago"]}, {"city": [b"Evanston"], "income": [1.5]}]


@pytest.mark.parametrize("value, expected", [
    ('"old"', "expected an integer (int64), got 'old'"),
    ("2.5", "expected an integer (int64), got 2.5"),
    ("true", "expected an integer (int64), got true"),
    ("[30, null]", "expected an integer (int64), got null"),
])
def test_a_wrong_type_names_the_file_line_and_column_and_what_was_expected(tmp_path, value, expected):
    path = _jsonl(tmp_path, {"age": 30}, "", '{"city": "x", "age": %s}' % value)
    with pytest.raises(ClientError) as error:
        _read(path)
    assert str(error.value) == f"{path}, line 3, column 'age': {expected}"


def test_a_number_for_a_bytes_feature_is_a_wrong_type(tmp_path):
    with pytest.raises(ClientError, match=r"line 1, column 'city': expected a string \(bytes\), got 60601"):
        _read(_jsonl(tmp_path, {"city": 60601}))


def test_a_bad_csv_cell_names_the_file_line_and_column(tmp_path):
    path = tmp_path / "rows.csv"
    path.write_text("age,income\n30,1.5\n31,lots\n")
    with pytest.raises(ClientError) as error:
        _read(str(path))
    assert str(error.value) == f"{path}, line 3, column 'income': expected a number (float), got 'lots'"


def test_an_unknown_column_is_warned_about_once_and_ignored(tmp_path):
    path = _jsonl(tmp_path, {"age": 30, "colour": "red"}, {"age": 31, "colour": "blue"})
    warnings = []
    examples = _read(path, warnings)
    assert warnings == [f"{path}, line 1: column 'colour' is not in the feature list; ignored"]
    assert [_values(e) for e in examples] == [{"age": [30]}, {"age": [31]}]


def test_an_unknown_csv_column_is_warned_about_at_the_header(tmp_path):
    path = tmp_path / "rows.csv"
    path.write_text("age,colour\n30,red\n31,blue\n")
    warnings = []
    assert len(_read(str(path), warnings)) == 2
    assert warnings == [f"{path}, line 1 (header): column 'colour' is not in the feature list; ignored"]


@pytest.mark.parametrize("line, message", [
    ('{"age": 30', "line 2: not valid JSON"),
    ("[30, 31]", "line 2: expected a JSON object of column: value, got list"),
])
def test_a_line_that_is_not_a_json_object_is_named(tmp_path, line, message):
    path = _jsonl(tmp_path, {"age": 1}, line)
    with pytest.raises(ClientError, match=message):
        _read(path)


def test_the_format_comes_from_the_extension_or_the_flag(tmp_path):
    assert predict_command.input_format("rows.jsonl") == predict_command.input_format("rows.json") == "jsonl"
    assert predict_command.input_format("rows.csv") == "csv"
    assert predict_command.input_format("rows.txt", "csv") == "csv"
    with pytest.raises(ClientError, match="pass --format"):
        predict_command.input_format("rows.txt")
    with pytest.raises(ClientError, match="stdin"):
        predict_command.input_format("-")


def test_rows_can_come_from_stdin(monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO('{"age": 30}\n{"age": 31}\n'))
    assert [_values(e) for e in _read("-", fmt="jsonl")] == [{"age": [30]}, {"age": [31]}]


def test_an_input_without_rows_is_an_error(tmp_path):
    with pytest.raises(ClientError, match="no rows to predict"):
        _read(_jsonl(tmp_path, ""))
    with pytest.raises(ClientError, match="file not found"):
        _read(str(tmp_path / "missing.jsonl"))


# -- (d) retries, against real servers ----------------------------------------------------------------

UNAVAILABLE_503 = (503, {"error": "Servable not found for request: Latest(loans)"}, 0)


def test_rest_retries_503_with_backoff_then_returns_the_predictions(rest_server):
    server = rest_server(UNAVAILABLE_503, UNAVAILABLE_503, OK)
    with client.RestClient("127.0.0.1", server.port, ModelSpec("loans"), **FAST) as rest:
        outputs = rest.predict([_example(age=30)])
    assert len(server.requests) == 3
    assert server.requests[0]["body"] == server.requests[2]["body"]
    np.testing.assert_allclose(outputs, [[0.30]])


def test_rest_gives_up_after_the_retries_with_the_servers_message(rest_server):
    server = rest_server(UNAVAILABLE_503)
    with client.RestClient("127.0.0.1", server.port, ModelSpec("loans"), timeout=2.0, retries=2,
                           backoff=0.01) as rest, pytest.raises(ServingUnavailable) as error:
        rest.predict([_example(age=30)])
    assert len(server.requests) == 3 and error.value.attempts == 3 and error.value.status == 503
    assert str(error.value) == (f"POST http://127.0.0.1:{server.port}/v1/models/loans:predict: HTTP 503: "
                                f"Servable not found for request: Latest(loans) (after 3 attempts)")


def test_rest_does_not_retry_a_400_and_carries_the_servers_message(rest_server):
    server = rest_server((400, {"error": "Could not parse example input, value: 'x'"}, 0))
    with client.RestClient("127.0.0.1", server.port, ModelSpec("loans"), **FAST) as rest, \
            pytest.raises(ServingRequestError) as error:
        rest.predict([_example(age=30)])
    assert type(error.value) is ServingRequestError
    assert len(server.requests) == 1 and error.value.status == 400
    assert error.value.message == "Could not parse example input, value: 'x'"
    assert "HTTP 400: Could not parse example input" in str(error.value)


def test_rest_retries_a_refused_connection():
    port = _closed_port()
    start = time.monotonic()
    with client.RestClient("127.0.0.1", port, ModelSpec("loans"), timeout=2.0, retries=2, backoff=0.05) as rest, \
            pytest.raises(ServingUnavailable) as error:
        rest.predict([_example(age=30)])
    assert error.value.attempts == 3 and error.value.status is None
    assert "cannot connect: Connection refused (after 3 attempts)" in str(error.value)
    assert time.monotonic() - start >= 0.05 + 0.1  # backed off 0.05 s, then 0.1 s


def test_rest_does_not_retry_a_timeout(rest_server):
    server = rest_server((200, None, 0.6))
    with client.RestClient("127.0.0.1", server.port, ModelSpec("loans"), timeout=0.1, retries=3,
                           backoff=0.01) as rest, pytest.raises(ServingRequestError, match="no answer within 0.1 s"):
        rest.predict([_example(age=30)])
    assert len(server.requests) == 1


def test_rest_sends_rows_in_batches_over_one_kept_alive_connection(rest_server):
    server = rest_server()
    examples = [_example(age=age) for age in range(10, 15)]
    with client.RestClient("127.0.0.1", server.port, ModelSpec("loans"), **FAST) as rest:
        outputs = rest.predict(examples, batch_size=2)
    assert [len(r["body"]["instances"]) for r in server.requests] == [2, 2, 1]
    assert len({r["port"] for r in server.requests}) == 1
    np.testing.assert_allclose(outputs[:, 0], [0.10, 0.11, 0.12, 0.13, 0.14])


def test_grpc_retries_unavailable_then_returns_the_predictions(grpc_server):
    service = grpc_server(grpc.StatusCode.UNAVAILABLE, None)
    with client.GrpcClient("127.0.0.1", service.port, ModelSpec("loans"), **FAST) as stub:
        outputs = stub.predict([_example(age=30), _example(age=31)])
    assert len(service.requests) == 2
    np.testing.assert_allclose(outputs, [[0.25], [0.25]])


def test_grpc_gives_up_after_the_retries_with_the_servers_message(grpc_server):
    service = grpc_server(grpc.StatusCode.UNAVAILABLE)
    with client.GrpcClient("127.0.0.1", service.port, ModelSpec("loans"), timeout=2.0, retries=1,
                           backoff=0.01) as stub, pytest.raises(ServingUnavailable) as error:
        stub.predict([_example(age=30)])
    assert len(service.requests) == 2 and error.value.attempts == 2 and error.value.status == "UNAVAILABLE"
    assert "UNAVAILABLE: scripted UNAVAILABLE from the test server (after 2 attempts)" in str(error.value)


def test_grpc_does_not_retry_invalid_argument_and_carries_the_servers_message(grpc_server):
    service = grpc_server(grpc.StatusCode.INVALID_ARGUMENT)
    with client.GrpcClient("127.0.0.1", service.port, ModelSpec("loans"), **FAST) as stub, \
            pytest.raises(ServingRequestError) as error:
        stub.predict([_example(age=30)])
    assert type(error.value) is ServingRequestError and len(service.requests) == 1
    assert str(error.value) == (f"gRPC 127.0.0.1:{service.port} Predict: INVALID_ARGUMENT: "
                                f"scripted INVALID_ARGUMENT from the test server")


def test_grpc_retries_a_refused_connection():
    with client.GrpcClient("127.0.0.1", _closed_port(), ModelSpec("loans"), timeout=2.0, retries=2,
                           backoff=0.01) as stub, pytest.raises(ServingUnavailable) as error:
        stub.predict([_example(age=30)])
    assert error.value.attempts == 3 and error.value.status == "UNAVAILABLE"


# -- tfxp predict ------------------------------------------------------------------------------------

def _run(*argv):
    parser = argparse.ArgumentParser()
    predict_command.add_predict_arguments(parser)
    cli._add_config_args(parser)
    return predict_command.run_predict(parser.parse_args(list(argv)))


def test_predict_prints_one_prediction_per_row_in_the_tasks_words(tmp_path, rest_server, capsys):
    server = rest_server()
    rows = _jsonl(tmp_path, {"age": 30, "defaulted": 0}, {"age": 45}, {"age": 60})
    assert _run(rows, "--port", str(server.port), "--model", "loans", "--package", "synth_binary",
                "--batch-size", "2") == 0
    assert capsys.readouterr().out.splitlines() == [
        "row 1: P(defaulted) = 0.300", "row 2: P(defaulted) = 0.450", "row 3: P(defaulted) = 0.600"]
    assert len(server.requests) == 2


def test_predict_json_prints_one_object_per_row_over_grpc(tmp_path, grpc_server, capsys):
    service = grpc_server()
    rows = tmp_path / "rows.csv"
    rows.write_text("age,city\n30,Chicago\n31,\n")
    assert _run(str(rows), "--protocol", "grpc", "--port", str(service.port), "--model", "loans",
                "--version", "7", "--package", "synth_binary", "--json") == 0
    assert [json.loads(line) for line in capsys.readouterr().out.splitlines()] == [
        {"row": 1, "outputs": [0.25]}, {"row": 2, "outputs": [0.25]}]
    assert service.requests[0].model_spec.version.value == 7


def test_predict_takes_the_model_name_and_package_from_the_config(tmp_path, rest_server, capsys):
    server = rest_server()
    config = tmp_path / "config.yaml"
    config.write_text(f"pipeline_name: loans\nuser_package: synth_binary\ndata_root: {tmp_path / 'data'}\n")
    assert _run(_jsonl(tmp_path, {"age": 30}), "--port", str(server.port), "--config", str(config),
                "--label", "canary") == 0
    assert server.requests[0]["path"] == "/v1/models/loans/labels/canary:predict"
    assert capsys.readouterr().out == "row 1: P(defaulted) = 0.300\n"


def test_predict_checks_every_row_before_sending_any(tmp_path, rest_server):
    server = rest_server()
    rows = _jsonl(tmp_path, {"age": 30}, {"age": "thirty"})
    with pytest.raises(ClientError, match="line 2, column 'age'"):
        _run(rows, "--port", str(server.port), "--model", "loans", "--package", "synth_binary")
    assert server.requests == []
