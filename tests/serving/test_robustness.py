"""What a model server must survive: bad and oversized requests, more requests than it takes at once,
SIGTERM with requests in flight, and batching that hands each request its own rows."""
import concurrent.futures
import signal
import threading
import time

import grpc
import pytest
import requests
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from tests.serving.conftest import MODEL
from bench.model_server import ModelServerProcess

SLOW_BATCHES = "max_batch_size { value: 64 } batch_timeout_micros { value: 1500000 } num_batch_threads { value: 1 }"


def grpc_predict(target, x, timeout=30):
    stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(target))
    request = predict_pb2.PredictRequest()
    request.model_spec.name = MODEL
    request.inputs["x"].CopyFrom(tf.make_tensor_proto([[x]], dtype=tf.float32))
    return tf.make_ndarray(stub.Predict(request, timeout=timeout).outputs["y"])[0][0]


@pytest.fixture(scope="module")
def small(half_plus_two_base, tmp_path_factory):
    """A server with a 4 KiB body limit."""
    tmp = tmp_path_factory.mktemp("small")
    server = ModelServerProcess([f"--model_name={MODEL}", f"--model_base_path={half_plus_two_base}",
                                 "--max_request_bytes=4096"], str(tmp), wait_for_model=MODEL)
    yield server
    assert server.stop() == 0


def test_an_oversized_body_gets_413_and_an_oversized_grpc_message_resource_exhausted(small):
    reply = requests.post(f"{small.url}/v1/models/{MODEL}:predict", data=b"{" + b" " * 10_000 + b"}", timeout=30)
    assert reply.status_code == 413 and "larger than the server's limit of 4096 bytes" in reply.json()["error"]
    with pytest.raises(grpc.RpcError) as raised:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(small.grpc_target))
        request = predict_pb2.PredictRequest()
        request.model_spec.name = MODEL
        request.inputs["x"].CopyFrom(tf.make_tensor_proto([[1.0]] * 5000, dtype=tf.float32))
        stub.Predict(request, timeout=30)
    assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert grpc_predict(small.grpc_target, 2.0) == 3.0


@pytest.mark.parametrize("body", [b"\xff\xfe garbage", b'{"instances": [[1.0]', b"null", b'{"instances": [[true]]}',
                                  b'{"instances": [{"b64": 5}]}', b'{"inputs": {"x": "a"}}'])
def test_malformed_json_gets_a_4xx_json_error_and_the_server_keeps_answering(small, body):
    reply = requests.post(f"{small.url}/v1/models/{MODEL}:predict", data=body, timeout=30)
    assert 400 <= reply.status_code < 500 and reply.json()["error"]
    ok = requests.post(f"{small.url}/v1/models/{MODEL}:predict", json={"instances": [[1.0]]}, timeout=30)
    assert ok.json() == {"predictions": [[2.5]]}


def test_paths_outside_the_api_are_404(small):
    reply = requests.get(f"{small.url}/index.html", timeout=10)
    assert reply.status_code == 404 and reply.json()["error"]
    assert requests.get(f"{small.url}/monitoring/prometheus/metrics", timeout=10).status_code == 404  # not enabled


def batching_file(tmp_path, text):
    path = tmp_path / "batching.config"
    path.write_text(text)
    return str(path)


@pytest.mark.slow
def test_more_requests_than_the_bound_get_429_and_resource_exhausted(half_plus_two_base, tmp_path):
    flags = [f"--model_name={MODEL}", f"--model_base_path={half_plus_two_base}", "--max_concurrent_requests=2",
             "--enable_batching", f"--batching_parameters_file={batching_file(tmp_path, SLOW_BATCHES)}"]
    with ModelServerProcess(flags, str(tmp_path), wait_for_model=MODEL) as server:
        url = f"{server.url}/v1/models/{MODEL}:predict"
        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            replies = list(pool.map(lambda _: requests.post(url, json={"instances": [[1.0]]}, timeout=30), range(6)))
        codes = sorted(r.status_code for r in replies)
        assert codes.count(200) >= 1 and codes.count(429) >= 3, codes
        assert all("retry later" in r.json()["error"] for r in replies if r.status_code == 429)

        def call(_):
            try:
                return grpc_predict(server.grpc_target, 1.0)
            except grpc.RpcError as e:
                return e.code()
        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            results = list(pool.map(call, range(6)))
        assert results.count(grpc.StatusCode.RESOURCE_EXHAUSTED) >= 3 and 2.5 in results, results
        assert requests.post(url, json={"instances": [[2.0]]}, timeout=30).json() == {"predictions": [[3.0]]}


@pytest.mark.slow
def test_sigterm_finishes_the_requests_in_flight_and_exits_0(half_plus_two_base, tmp_path):
    flags = [f"--model_name={MODEL}", f"--model_base_path={half_plus_two_base}", "--enable_batching",
             f"--batching_parameters_file={batching_file(tmp_path, SLOW_BATCHES)}"]
    server = ModelServerProcess(flags, str(tmp_path), wait_for_model=MODEL)
    results = {}

    def rest():
        results["rest"] = requests.post(f"{server.url}/v1/models/{MODEL}:predict", json={"instances": [[4.0]]},
                                        timeout=30)

    def rpc():
        results["grpc"] = grpc_predict(server.grpc_target, 6.0)
    threads = [threading.Thread(target=rest), threading.Thread(target=rpc)]
    for thread in threads:
        thread.start()
    time.sleep(0.5)  # both are waiting in the 1.5 s batch
    server.process.send_signal(signal.SIGTERM)
    for thread in threads:
        thread.join(30)
    assert server.process.wait(30) == 0, server.log()[-2000:]
    assert results["rest"].status_code == 200 and results["rest"].json() == {"predictions": [[4.0]]}
    assert results["grpc"] == 5.0
    assert "received SIGTERM" in server.log() and "server stopped" in server.log()


@pytest.mark.parametrize("implementation", ["scheduler", "tf_op"])
@pytest.mark.slow
def test_batched_requests_each_get_their_own_rows(half_plus_two_base, tmp_path, implementation):
    params = "max_batch_size { value: 16 } batch_timeout_micros { value: 20000 } num_batch_threads { value: 2 }"
    flags = [f"--model_name={MODEL}", f"--model_base_path={half_plus_two_base}", "--enable_batching",
             f"--batching_parameters_file={batching_file(tmp_path, params)}",
             f"--batching_implementation={implementation}"]
    with ModelServerProcess(flags, str(tmp_path), wait_for_model=MODEL) as server:
        xs = [float(i) for i in range(48)]
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            ys = list(pool.map(lambda x: grpc_predict(server.grpc_target, x), xs))
            rows = list(pool.map(lambda n: requests.post(f"{server.url}/v1/models/{MODEL}:predict",
                                                         json={"instances": [[float(n)]] * n}, timeout=30).json(),
                                 range(1, 9)))
        assert ys == [0.5 * x + 2 for x in xs]
        assert rows == [{"predictions": [[0.5 * n + 2]] * n} for n in range(1, 9)]


@pytest.mark.slow
def test_bad_flags_and_files_end_with_one_line_and_exit_2(tmp_path):
    import subprocess
    import sys

    bad = tmp_path / "models.config"
    bad.write_text("model_config_list { config { name: 'x' nonsense: 1 } }")
    cases = [
        (["--model_config_file", str(bad)], f"{bad}: not a valid ModelServerConfig text proto"),
        (["--model_base_path", str(tmp_path), "--batching_parameters_file", str(bad)],
         "batching_parameters_file is set without setting server_options.enable_batching to true."),
        (["--model_base_path", str(tmp_path), "--ssl_config_file", "x"],
         "--ssl_config_file is a tensorflow_model_server flag that tfxp serve does not implement"),
    ]
    for flags, message in cases:
        result = subprocess.run([sys.executable, "-m", "pipeline.cli", "serve", *flags], capture_output=True,
                                text=True, timeout=120, cwd=str(tmp_path))
        assert result.returncode == 2 and message in result.stderr, result.stderr[-2000:]
        assert "Traceback" not in result.stderr
