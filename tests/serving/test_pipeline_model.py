"""The model the pipeline pushed, served by `tfxp serve --config`, queried by `tfxp predict` over REST
and gRPC, by TFX's own InfraValidator client, and described by `tfxp inspect` (e2e: needs the run)."""
import base64
import json
import os
import shutil
import subprocess
import sys
import time

import grpc
import numpy as np
import pytest
import requests
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from components.core.user_code import load_user_code
from pipeline import predict_command
from serving import predict
from bench.model_server import ModelServerProcess

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def served(sample_run, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("served")
    _, config_path, cfg, _ = sample_run
    server = ModelServerProcess([f"--config={config_path}"], str(tmp), wait_for_model=cfg.pipeline_name)
    status = requests.get(f"{server.url}/v1/models/{cfg.pipeline_name}", timeout=10).json()
    version = max(int(v["version"]) for v in status["model_version_status"] if v["state"] == "AVAILABLE")
    yield server, cfg, os.path.join(cfg.serving_model_dir, str(version)), config_path
    assert server.stop() == 0, server.log()[-3000:]


def test_rest_and_grpc_predictions_equal_the_saved_model_in_process(served):
    server, cfg, version_dir, _ = served
    examples = predict.first_raw_examples(cfg.resolved_data_root, "eval", 16)
    expected = predict.predict_serialized(version_dir, examples)
    reply = requests.post(f"{server.url}/v1/models/{cfg.pipeline_name}:predict", timeout=30,
                          json={"instances": [{"b64": base64.b64encode(e).decode()} for e in examples]})
    assert reply.status_code == 200, reply.text
    np.testing.assert_allclose(np.array(reply.json()["predictions"]), expected, rtol=1e-6)
    stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(server.grpc_target))
    request = predict_pb2.PredictRequest()
    request.model_spec.name = cfg.pipeline_name
    request.inputs["examples"].CopyFrom(tf.make_tensor_proto(examples))
    response = stub.Predict(request, timeout=30)
    np.testing.assert_array_equal(tf.make_ndarray(response.outputs["outputs"]), expected)
    assert response.model_spec.version.value == int(os.path.basename(version_dir))


@pytest.mark.parametrize("protocol", ["rest", "grpc"])
def test_tfxp_predict_prints_one_prediction_per_row(served, sample_run, tmp_path, protocol):
    server, cfg, version_dir, config_path = served
    rows = tmp_path / "rows.csv"
    with open(os.path.join(sample_run[0], "slice.csv")) as src:
        rows.write_text("".join(src.readlines()[:6]))  # the header and 5 rows, label columns included
    port = server.rest_port if protocol == "rest" else server.grpc_port
    result = subprocess.run([sys.executable, "-m", "pipeline.cli", "predict", str(rows), f"--config={config_path}",
                             f"--protocol={protocol}", f"--port={port}", "--json"],
                            capture_output=True, text=True, timeout=300, cwd=str(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    printed = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    user = load_user_code(cfg.user_package)
    examples = predict_command.read_examples(str(rows), user.features, not_sent=user.label_source_names)
    expected = predict.predict_serialized(version_dir, examples)
    assert [p["row"] for p in printed] == [1, 2, 3, 4, 5]
    np.testing.assert_allclose(np.array([p["outputs"] for p in printed]), expected, rtol=1e-5)
    readable = subprocess.run([sys.executable, "-m", "pipeline.cli", "predict", str(rows), f"--config={config_path}",
                               f"--protocol={protocol}", f"--port={port}"],
                              capture_output=True, text=True, timeout=300, cwd=str(tmp_path))
    assert readable.returncode == 0 and readable.stdout.count("P(big_tipper)") == 5, readable.stdout


def test_tfx_infra_validator_client_waits_for_the_model_and_its_requests_succeed(served, sample_run, tmp_path):
    """TFX's own TensorFlowServingClient and request builder (what InfraValidator runs against TF Serving)."""
    from tfx.components.infra_validator import request_builder
    from tfx.components.infra_validator.model_server_clients.tensorflow_serving_client import TensorFlowServingClient
    from tfx.proto import infra_validator_pb2
    from tfx.types import artifact_utils, standard_artifacts

    server, cfg, version_dir, _ = served
    model = standard_artifacts.Model()
    model.uri = str(tmp_path / "model")
    shutil.copytree(version_dir, os.path.join(model.uri, "Format-Serving"))
    examples = standard_artifacts.Examples()
    examples.uri = str(tmp_path / "examples")
    examples.split_names = artifact_utils.encode_split_names(["eval"])
    shutil.copytree(os.path.join(cfg.resolved_data_root, "eval"), os.path.join(examples.uri, "Split-eval"))
    spec = infra_validator_pb2.RequestSpec(tensorflow_serving=infra_validator_pb2.TensorFlowServingRequestSpec(),
                                           num_examples=5)
    requests_ = request_builder.build_requests(cfg.pipeline_name, model, examples, spec)
    assert len(requests_) == 5
    tfx_client = TensorFlowServingClient(server.grpc_target, cfg.pipeline_name)
    tfx_client.WaitUntilModelLoaded(deadline=time.time() + 60, polling_interval_sec=1)
    tfx_client.SendRequests(requests_)  # raises on any failed request


def test_the_pushed_version_carries_the_infra_validators_requests_and_tfxp_serve_replays_them(served, sample_run):
    from tensorflow_serving.apis import prediction_log_pb2

    server, cfg, version_dir, _ = served
    assert "infra_validator" in sample_run[3].stdout.split("executed:")[1].splitlines()[0]
    warmup = os.path.join(version_dir, "assets.extra", "tf_serving_warmup_requests")
    records = [prediction_log_pb2.PredictionLog.FromString(r.numpy()) for r in tf.data.TFRecordDataset(warmup)]
    assert len(records) == cfg.serving.infra_validation.examples
    assert {r.predict_log.request.model_spec.signature_name for r in records} == {"serving_default"}
    version = int(os.path.basename(version_dir))
    assert f"model {cfg.pipeline_name}: version {version} warmed up with {len(records)} requests" in server.log()


def test_tfxp_inspect_describes_the_pushed_model(served, tmp_path):
    _, cfg, version_dir, _ = served
    result = subprocess.run([sys.executable, "-m", "pipeline.cli", "inspect", cfg.serving_model_dir, "--json"],
                            capture_output=True, text=True, timeout=300, cwd=str(tmp_path))
    assert result.returncode == 0, result.stderr[-2000:]
    described = json.loads(result.stdout)
    assert int(os.path.basename(version_dir)) in [int(v["version"]) for v in described["versions"]]
    readable = subprocess.run([sys.executable, "-m", "pipeline.cli", "inspect", version_dir],
                              capture_output=True, text=True, timeout=300, cwd=str(tmp_path))
    assert "signature 'serving_default'" in readable.stdout and "examples  string   [-1]" in readable.stdout
    missing = subprocess.run([sys.executable, "-m", "pipeline.cli", "inspect", str(tmp_path)],
                             capture_output=True, text=True, timeout=300, cwd=str(tmp_path))
    assert missing.returncode == 2 and "not a model" in missing.stderr and "Traceback" not in missing.stderr
