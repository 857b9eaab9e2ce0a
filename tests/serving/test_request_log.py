"""Request logging in `tfxp serve` (serving/request_log.py), on real servers on loopback: TF Serving's
logging_config per model, each sampled predict/classify/regress over REST and gRPC a PredictionLog read back
with tfxp.request_logs, sampling, config reloads, SIGTERM, drops under load counted, bad configs refused."""
import base64
import concurrent.futures
import os
import re
import shutil
import time

import grpc
import pytest
import requests
import tensorflow as tf
from google.protobuf import text_format
from tensorflow_serving.apis import (classification_pb2, model_management_pb2, model_service_pb2_grpc, predict_pb2,
                                     prediction_service_pb2_grpc, regression_pb2)
from tensorflow_serving.config import model_server_config_pb2

from bench.model_server import ModelServerProcess
from serving.options import RequestLogOptions, ServingOptions, ServingTarget
from tests.serving.conftest import MODEL
from tests.support import half_plus_two
from tfxp import request_logs
from tfxp.files import write_atomically

EX = "ex"  # the serving contract's shape: serialized tf.Examples in `examples`, y = 0.5 x + 2 out
METRICS = "/monitoring/prometheus/metrics"


@pytest.fixture(scope="session")
def examples_model_base(tmp_path_factory):
    base = tmp_path_factory.mktemp("models") / EX
    half_plus_two.write_examples_model(str(base / "1"))
    return str(base)


def example(x: float) -> bytes:
    return tf.train.Example(features=tf.train.Features(feature={
        "x": tf.train.Feature(float_list=tf.train.FloatList(value=[x]))})).SerializeToString()


def model_entry(name, base, prefix=None, rate=1.0, kind="tfrecord"):
    logging = (f' logging_config {{ sampling_config {{ sampling_rate: {rate} }} '
               f'log_collector_config {{ type: "{kind}" filename_prefix: "{prefix}" }} }}') if prefix is not None else ""
    return f'config {{ name: "{name}" base_path: "{base}" model_platform: "tensorflow"{logging} }}'


def config_text(entries) -> str:
    return "model_config_list {\n  " + "\n  ".join(entries) + "\n}\n"


def monitoring_file(tmp):
    path = tmp / "monitoring.config"
    path.write_text(f'prometheus_config {{ enable: true, path: "{METRICS}" }}\n')
    return str(path)


def logs_of(prefix, count, timeout=20.0):
    """The PredictionLogs of the complete files under ``prefix`` once there are at least ``count``."""
    deadline = time.monotonic() + timeout
    while True:
        found = list(request_logs.read_logs(request_logs.log_files(prefix)))
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def metric(server, name, **labels) -> float:
    """A sample's value on the server's Prometheus page (0 when absent)."""
    page = requests.get(server.url + METRICS, timeout=10).text
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in page.splitlines():
        match = re.fullmatch(r"([^{ ]+)(?:\{(.*)\})? (\S+)", line)
        if match and match.group(1) == name and ",".join(sorted((match.group(2) or "").split(","))) == wanted:
            return float(match.group(3))
    return 0.0


@pytest.fixture(scope="module")
def logged(half_plus_two_base, examples_model_base, tmp_path_factory):
    """Models logged by TF Serving's logging_config: `ex` and half_plus_two at 1.0 into one prefix, `never` at 0,
    `half` at 0.5; `later` not logged (until a reload). Files complete 0.3 s after they open."""
    tmp = tmp_path_factory.mktemp("request_log")
    logs = tmp / "logs"
    entries = [model_entry(EX, examples_model_base, logs / "all"), model_entry(MODEL, half_plus_two_base, logs / "all"),
               model_entry("never", examples_model_base, logs / "never", rate=0.0),
               model_entry("half", examples_model_base, logs / "half", rate=0.5),
               model_entry("later", examples_model_base), model_entry("fragile", examples_model_base, logs / "fragile" / "m")]
    config = tmp / "models.config"
    write_atomically(str(config), config_text(entries))
    server = ModelServerProcess([f"--model_config_file={config}", f"--monitoring_config_file={monitoring_file(tmp)}",
                                 "--request_log_max_file_seconds=0.3"], str(tmp), wait_for_model=EX)
    server.logs, server.entries, server.examples_model_base = logs, entries, examples_model_base
    yield server
    assert server.stop() == 0, server.log()[-3000:]


def rest(server, path, body):
    reply = requests.post(f"{server.url}/v1/models/{path}", json=body, timeout=30)
    assert reply.status_code == 200, reply.text
    return reply.json()


def stubs(server):
    channel = grpc.insecure_channel(server.grpc_target)
    return prediction_service_pb2_grpc.PredictionServiceStub(channel), model_service_pb2_grpc.ModelServiceStub(channel)


def the_log_of(prefix, kind, serialized):
    """The one record of ``kind`` whose request carried exactly this example."""
    for _ in range(100):
        found = [log for log in logs_of(prefix, 0, timeout=0) if log.WhichOneof("log_type") == kind
                 and request_logs.examples_of(log) == [serialized]]
        if found:
            assert len(found) == 1, found
            return found[0]
        time.sleep(0.1)
    raise AssertionError(f"no {kind} record with the example under {prefix}")


def assert_metadata(log, model, version, signature, started):
    metadata = log.log_metadata
    assert (metadata.model_spec.name, metadata.model_spec.version.value, metadata.model_spec.signature_name) == (
        model, version, signature)
    assert metadata.sampling_config.sampling_rate == 1.0 and list(metadata.saved_model_tags) == ["serve"]
    assert int(started) <= metadata.timestamp_secs <= time.time()


def test_a_rest_predict_is_a_predict_log_with_the_request_s_examples(logged):
    started, x = time.time(), 11.0
    reply = rest(logged, f"{EX}:predict", {"instances": [{"b64": base64.b64encode(example(x)).decode()}]})
    log = the_log_of(str(logged.logs / "all"), "predict_log", example(x))
    assert_metadata(log, EX, 1, "serving_default", started)
    assert log.predict_log.request.model_spec.name == EX and not log.predict_log.request.model_spec.signature_name
    assert tf.make_ndarray(log.predict_log.response.outputs["outputs"]).tolist() == reply["predictions"] == [[7.5]]


def test_a_grpc_predict_is_a_predict_log_of_the_call_s_own_request_and_response(logged):
    started, x = time.time(), 12.0
    request = predict_pb2.PredictRequest()
    request.model_spec.name = EX
    request.model_spec.version.value = 1
    request.inputs["examples"].CopyFrom(tf.make_tensor_proto([example(x)], dtype=tf.string))
    response = stubs(logged)[0].Predict(request, timeout=30)
    log = the_log_of(str(logged.logs / "all"), "predict_log", example(x))
    assert_metadata(log, EX, 1, "serving_default", started)
    assert log.predict_log.request == request and log.predict_log.response == response


@pytest.mark.parametrize("protocol", ["rest", "grpc"])
def test_a_classify_is_a_classify_log(logged, protocol):
    started, x = time.time(), 13.0 if protocol == "rest" else 14.0
    if protocol == "rest":
        reply = rest(logged, f"{MODEL}:classify", {"signature_name": "classify_x_to_y", "examples": [{"x": x}]})
        scores = [score for _, score in reply["results"][0]]
    else:
        request = classification_pb2.ClassificationRequest()
        request.model_spec.name, request.model_spec.signature_name = MODEL, "classify_x_to_y"
        request.input.example_list.examples.add().ParseFromString(example(x))
        response = stubs(logged)[0].Classify(request, timeout=30)
        scores = [c.score for c in response.result.classifications[0].classes]
    log = the_log_of(str(logged.logs / "all"), "classify_log", example(x))
    assert_metadata(log, MODEL, 123, "classify_x_to_y", started)
    assert log.classify_log.request.model_spec.signature_name == "classify_x_to_y"
    assert [c.score for c in log.classify_log.response.result.classifications[0].classes] == scores == [0.5 * x + 2]


@pytest.mark.parametrize("protocol", ["rest", "grpc"])
def test_a_regress_is_a_regress_log(logged, protocol):
    started, x = time.time(), 15.0 if protocol == "rest" else 16.0
    if protocol == "rest":
        reply = rest(logged, f"{MODEL}/versions/123:regress", {"signature_name": "regress_x_to_y", "examples": [{"x": x}]})
        values = reply["results"]
    else:
        request = regression_pb2.RegressionRequest()
        request.model_spec.name, request.model_spec.signature_name = MODEL, "regress_x_to_y"
        request.input.example_list.examples.add().ParseFromString(example(x))
        values = [r.value for r in stubs(logged)[0].Regress(request, timeout=30).result.regressions]
    log = the_log_of(str(logged.logs / "all"), "regress_log", example(x))
    assert_metadata(log, MODEL, 123, "regress_x_to_y", started)
    assert [r.value for r in log.regress_log.response.result.regressions] == values == [0.5 * x + 2]
    if protocol == "rest":  # the version the path named, as TF Serving's REST handler puts it in the request
        assert log.regress_log.request.model_spec.version.value == 123


def test_a_failed_request_is_not_logged(logged):
    before = metric(logged, ":tensorflow:serving:request_log_count", model_name=EX, status_code="OK")
    reply = requests.post(f"{logged.url}/v1/models/{EX}:predict", json={"instances": [{"b64": "bm90IGFuIGV4YW1wbGU="}]},
                          timeout=30)
    assert reply.status_code == 400
    rest(logged, f"{EX}:predict", {"instances": [{"b64": base64.b64encode(example(17.0)).decode()}]})
    the_log_of(str(logged.logs / "all"), "predict_log", example(17.0))
    assert metric(logged, ":tensorflow:serving:request_log_count", model_name=EX, status_code="OK") == before + 1


def test_a_failed_write_is_counted_and_the_request_still_answered(logged):
    folder, body = logged.logs / "fragile", {"instances": [{"b64": base64.b64encode(example(1.0)).decode()}]}

    def counted(status):
        return metric(logged, ":tensorflow:serving:request_log_count", model_name="fragile", status_code=status)
    rest(logged, "fragile:predict", body)
    assert len(logs_of(str(folder / "m"), 1)) == 1  # written, the file complete
    shutil.rmtree(folder)
    folder.write_text("a file where the logs' folder was")
    try:
        assert rest(logged, "fragile:predict", body) == {"predictions": [[2.5]]}
        deadline = time.monotonic() + 10
        while counted("INTERNAL") < 1:
            assert time.monotonic() < deadline, "the failed write was not counted"
            time.sleep(0.05)
        assert metric(logged, "tfxp_serving_request_log_dropped_total", model="fragile", reason="error") == 1
    finally:
        folder.unlink()
    rest(logged, "fragile:predict", body)  # the folder is back: logging goes on
    assert len(logs_of(str(folder / "m"), 1)) == 1 and counted("OK") == 2
    assert "request log" in logged.log() and "cannot write a record of model fragile" in logged.log()


def test_sampling_0_logs_nothing_and_0_5_about_half(logged):
    body = {"instances": [{"b64": base64.b64encode(example(1.0)).decode()}]}
    with requests.Session() as session:
        for model in ("never", "half"):
            for _ in range(200):
                assert session.post(f"{logged.url}/v1/models/{model}:predict", json=body, timeout=30).ok
    deadline = time.monotonic() + 20
    while metric(logged, ":tensorflow:serving:request_log_count", model_name="half", status_code="OK") < 50:
        assert time.monotonic() < deadline, "the half-sampled model logged almost nothing"
        time.sleep(0.1)
    time.sleep(0.5)  # the last file completes 0.3 s after it opened
    written = metric(logged, ":tensorflow:serving:request_log_count", model_name="half", status_code="OK")
    assert 50 <= written <= 150  # Binomial(200, 0.5): 7 standard deviations either side
    assert len(logs_of(str(logged.logs / "half"), int(written))) == written
    assert request_logs.log_files(str(logged.logs / "never")) == []
    assert metric(logged, ":tensorflow:serving:request_log_count", model_name="never", status_code="OK") == 0


def test_a_config_reload_applies_each_model_s_new_logging_config(logged):
    body = {"instances": [{"b64": base64.b64encode(example(21.0)).decode()}]}
    rest(logged, "later:predict", body)
    prefix = str(logged.logs / "later")
    config = model_server_config_pb2.ModelServerConfig()
    entries = [model_entry("later", logged.examples_model_base, prefix) if '"later"' in entry else entry
               for entry in logged.entries]
    text_format.Parse(config_text(entries), config)
    stubs(logged)[1].HandleReloadConfigRequest(model_management_pb2.ReloadConfigRequest(config=config), timeout=60)
    rest(logged, "later:predict", body)
    assert len(logs_of(prefix, 1)) == 1  # the request after the reload only


def test_a_reload_with_a_logging_config_it_cannot_apply_is_refused_and_changes_nothing(logged):
    config = model_server_config_pb2.ModelServerConfig()
    bad = [model_entry("gone", logged.examples_model_base, logged.logs / "x", kind="kafka")]
    text_format.Parse(config_text(bad), config)
    with pytest.raises(grpc.RpcError) as raised:
        stubs(logged)[1].HandleReloadConfigRequest(model_management_pb2.ReloadConfigRequest(config=config), timeout=60)
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    assert "Cannot find LogCollector::Factory for type: kafka" in raised.value.details()
    rest(logged, f"{EX}:predict", {"instances": [{"b64": base64.b64encode(example(22.0)).decode()}]})
    the_log_of(str(logged.logs / "all"), "predict_log", example(22.0))  # still served, still logged


@pytest.mark.slow
def test_sigterm_writes_what_is_queued_and_completes_the_file(half_plus_two_base, tmp_path):
    """`tfxp serve` on a pipeline config's pushed model, logging as its serving.request_log says."""
    config = pipeline_config(tmp_path, half_plus_two_base, enabled=True, max_file_seconds=3600)
    prefix = str(tmp_path / "runs" / "request_logs" / MODEL / MODEL)  # PipelineConfig.request_log_prefix
    server = ModelServerProcess(["--config", config], str(tmp_path), wait_for_model=MODEL)
    try:
        predict, _ = stubs(server)
        for x in range(10):
            rest(server, f"{MODEL}:predict", {"instances": [[float(x)]]})
            request = predict_pb2.PredictRequest()
            request.model_spec.name = MODEL
            request.inputs["x"].CopyFrom(tf.make_tensor_proto([[float(x)]], dtype=tf.float32))
            predict.Predict(request, timeout=30)
        directory = tmp_path / "runs" / "request_logs" / MODEL
        assert request_logs.log_files(prefix) == []  # the file being written is not listed ...
        assert [p.name.endswith(".tfrecord.tmp") for p in directory.iterdir()] == [True]  # ... but is there
    finally:
        assert server.stop() == 0, server.log()[-3000:]
    logs = list(request_logs.read_logs(request_logs.log_files(prefix)))
    assert len(logs) == 20 and {log.log_metadata.model_spec.name for log in logs} == {MODEL}
    assert not [p for p in directory.iterdir() if p.name.endswith(".tmp")]


def pipeline_config(tmp_path, half_plus_two_base, **request_log):
    """A pipeline config whose pushed model is half_plus_two (<serving_dir>/<pipeline_name>/<version>)."""
    import yaml

    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({
        "pipeline_name": MODEL, "data_root": str(tmp_path / "data"), "output_root": str(tmp_path / "runs"),
        "serving_dir": os.path.dirname(half_plus_two_base), "serving": {"request_log": request_log}}))
    return str(path)


@pytest.mark.slow  # imports TFX (the dev loop's InfraValidator runner is beside its server): about 7 s
def test_the_dev_loop_s_server_logs_as_the_config_s_serving_request_log_says(half_plus_two_base, tmp_path):
    from bench.model_server import free_port
    from pipeline.config import load_config
    from pipeline.dev.warm_server import ServedModel

    cfg = load_config(pipeline_config(tmp_path, half_plus_two_base, enabled=True, sampling_rate=1.0))
    served = ServedModel(cfg.pipeline_name, cfg.serving_model_dir, free_port(), free_port(), cfg.request_log_server_flags)
    served.start()
    try:
        reply = requests.post(f"http://127.0.0.1:{served.rest_port}/v1/models/{MODEL}:predict",
                              json={"instances": [[3.0]]}, timeout=30)
        assert reply.json() == {"predictions": [[3.5]]}
    finally:
        served.stop()
    logs = list(request_logs.read_logs(request_logs.log_files(cfg.request_log_prefix)))
    assert [tf.make_ndarray(log.predict_log.request.inputs["x"]).tolist() for log in logs] == [[[3.0]]]


@pytest.mark.slow
def test_under_load_the_records_written_are_the_sampled_requests_minus_the_counted_drops(examples_model_base,
                                                                                          tmp_path):
    prefix = str(tmp_path / "logs" / EX)
    flags = [f"--model_name={EX}", f"--model_base_path={examples_model_base}", f"--request_log_filename_prefix={prefix}",
             "--request_log_queue_size=1", "--request_log_max_file_bytes=4096",  # a busy writer, a tiny queue
             f"--monitoring_config_file={monitoring_file(tmp_path)}"]
    server = ModelServerProcess(flags, str(tmp_path), wait_for_model=EX)
    bodies = [{"instances": [{"b64": base64.b64encode(example(float(i))).decode()}]} for i in range(8)]
    per_client = 15

    def rest_client(n):
        with requests.Session() as session:
            return sum(session.post(f"{server.url}/v1/models/{EX}:predict", json=bodies[(n + i) % 8], timeout=60).ok
                       for i in range(per_client))

    def grpc_client(n):
        stub, _ = stubs(server)
        request = predict_pb2.PredictRequest()
        request.model_spec.name = EX
        request.inputs["examples"].CopyFrom(tf.make_tensor_proto([example(float(n))], dtype=tf.string))
        return sum(bool(stub.Predict(request, timeout=60).outputs) for _ in range(per_client))
    def counted(status):
        return metric(server, ":tensorflow:serving:request_log_count", model_name=EX, status_code=status)
    try:
        with concurrent.futures.ThreadPoolExecutor(32) as pool:  # 32 clients at once: 16 REST, 16 gRPC
            answered = sum(pool.map(lambda n: (rest_client if n % 2 else grpc_client)(n), range(32)))
        assert answered == 32 * per_client  # every request answered: logging failed none
        deadline = time.monotonic() + 30
        while counted("OK") + counted("RESOURCE_EXHAUSTED") + counted("INTERNAL") < answered:  # sampled: all
            assert time.monotonic() < deadline, "not every sampled request was accounted for"
            time.sleep(0.1)
        dropped = metric(server, "tfxp_serving_request_log_dropped_total", model=EX, reason="queue_full")
        written = counted("OK")
    finally:
        assert server.stop() == 0, server.log()[-3000:]
    records = list(request_logs.read_logs(request_logs.log_files(prefix)))
    assert dropped > 0 and "cannot write a record" not in server.log()  # drops from the full queue, no failures
    assert len(records) == written == answered - dropped


BAD_LOGGING = {
    "kafka": ('type: "kafka" filename_prefix: "/tmp/x"', 1.0,
              "logging_config: Cannot find LogCollector::Factory for type: kafka (tfxp serve has: tfrecord)"),
    "rate above 1": ('type: "tfrecord" filename_prefix: "/tmp/x"', 1.5,
                     "logging_config.sampling_config.sampling_rate must be in [0, 1], got 1.5"),
    "negative rate": ('type: "tfrecord" filename_prefix: "/tmp/x"', -0.1,
                      "logging_config.sampling_config.sampling_rate must be in [0, 1], got -0.1"),
    "empty prefix": ('type: "tfrecord"', 1.0, "logging_config.log_collector_config.filename_prefix is empty"),
}


def tfxp_serve(capsys, *flags):
    """`tfxp serve` in this process (it stops before loading anything): exit code, stderr lines."""
    from pipeline import cli

    code = cli.main(["serve", "--port=0", "--rest_api_port=0", "--access_log=", *flags])
    return code, capsys.readouterr().err.strip().splitlines()


@pytest.mark.parametrize("case", BAD_LOGGING)
def test_a_logging_config_tfxp_serve_cannot_apply_is_one_line_and_exit_2(case, half_plus_two_base, tmp_path, capsys):
    collector, rate, message = BAD_LOGGING[case]
    config = tmp_path / "models.config"
    config.write_text(f'model_config_list {{ config {{ name: "m" base_path: "{half_plus_two_base}" '
                      f'logging_config {{ sampling_config {{ sampling_rate: {rate} }} '
                      f'log_collector_config {{ {collector} }} }} }} }}\n')
    code, lines = tfxp_serve(capsys, f"--model_config_file={config}")
    assert code == 2 and len(lines) == 1 and lines[0].startswith(f"tfxp serve: error: {config}: model m: {message}")


def test_a_filename_prefix_under_a_file_is_one_line_and_exit_2(half_plus_two_base, tmp_path, capsys):
    (tmp_path / "blocker").write_text("")
    prefix = tmp_path / "blocker" / "logs" / "m"
    code, lines = tfxp_serve(capsys, "--model_base_path", half_plus_two_base, f"--request_log_filename_prefix={prefix}")
    assert code == 2 and lines == [f"tfxp serve: error: --request_log_filename_prefix: model default: cannot log "
                                   f"requests under {prefix}: {tmp_path / 'blocker'} is not a folder"]


@pytest.mark.parametrize("flags, message", [
    (["--request_log_filename_prefix=/tmp/x", "--request_log_sampling_rate=2"],
     "--request_log_sampling_rate must be in [0, 1], got 2.0"),
    (["--request_log_filename_prefix="], "--request_log_filename_prefix is empty"),
    (["--request_log_filename_prefix=/tmp/x", "--request_log_max_file_bytes=2000", "--request_log_max_total_bytes=1000"],
     "--request_log_max_total_bytes (1000) must be at least --request_log_max_file_bytes (2000)"),
    (["--request_log_sampling_rate=0.5"], "--request_log_sampling_rate needs --request_log_filename_prefix"),
    (["--request_log_filename_prefix=/tmp/x", "--model_config_file=models.config"],
     "--request_log_filename_prefix is for one model"),
])
def test_bad_request_log_flags_are_one_line_and_exit_2(flags, message, half_plus_two_base, capsys):
    code, lines = tfxp_serve(capsys, "--model_base_path", half_plus_two_base, *flags)
    assert code == 2 and len(lines) == 1 and lines[0].startswith(f"tfxp serve: error: {message}")


def test_the_config_s_serving_request_log_is_checked_with_the_key_named():
    with pytest.raises(ValueError, match=r"serving.request_log.sampling_rate must be in \[0, 1\], got 1.5"):
        ServingOptions(request_log=RequestLogOptions(enabled=True, sampling_rate=1.5)).check()
    with pytest.raises(ValueError, match="serving.request_log.filename_prefix must be a local path"):
        RequestLogOptions(filename_prefix="gs://bucket/logs/m").check()


def test_the_real_server_s_models_config_never_gets_a_logging_config(half_plus_two_base, tmp_path):
    """TF Serving fails at start on any logging_config ("No request-logger-creator provided")."""
    from serving import release

    options = ServingOptions(request_log=RequestLogOptions(enabled=True))
    target = ServingTarget(MODEL, half_plus_two_base, str(tmp_path / "config"), options)
    release.write_serving_config(target)
    text = (tmp_path / "config" / "models.config").read_text()
    assert f'name: "{MODEL}"' in text and "logging_config" not in text
