"""Served requests checked for skew against the training data of the sample's pushed model (marked e2e: it
needs the sample's run). `tfxp serve` on loopback logs what it answers over REST and gRPC; `tfxp drift`
finds that model's training statistics through MLMD from the version the logs name. Windows without the
pipeline: tests/platform/test_drift.py."""
import base64
import os
import re
import subprocess
import sys

import grpc
import pytest
import requests
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from bench.model_server import ModelServerProcess
from pipeline.drift import inputs
from tests.conftest import write_csv_slice
from tests.support.skew import SKEWED, skew_csv
from tfxp import contract, request_logs

pytestmark = pytest.mark.e2e
PER_REQUEST = 20


def _send(server, model, examples):
    """Half the examples over REST, half over gRPC, PER_REQUEST to a predict call."""
    channel = grpc.insecure_channel(server.grpc_target)
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    for i in range(0, len(examples), PER_REQUEST):
        batch = examples[i:i + PER_REQUEST]
        if (i // PER_REQUEST) % 2:
            request = predict_pb2.PredictRequest()
            request.model_spec.name = model
            request.inputs[contract.EXAMPLES].CopyFrom(tf.make_tensor_proto(batch, dtype=tf.string))
            stub.Predict(request, timeout=30)
        else:
            body = {"instances": [{contract.EXAMPLES: {"b64": base64.b64encode(e).decode()}} for e in batch]}
            requests.post(f"{server.url}/v1/models/{model}:predict", json=body, timeout=30).raise_for_status()
    channel.close()


@pytest.fixture(scope="module")
def logged(sample_run, tmp_path_factory):
    """(cfg, config path, the unskewed log prefix, the skewed one): the pushed model served twice with logging."""
    tmp = tmp_path_factory.mktemp("served")
    _, config_path, cfg, _ = sample_run
    eval_examples = list(request_logs.read_records(sorted(
        os.path.join(cfg.resolved_data_root, "eval", name) for name in os.listdir(os.path.join(
            cfg.resolved_data_root, "eval")))))
    skewed_csv = skew_csv(write_csv_slice(tmp / "rows.csv", 600, start=2000), tmp / "skewed.csv")
    skewed = inputs.read_examples(skewed_csv, cfg.user_code.features, 10 ** 6).examples
    prefixes = {}
    for name, examples in (("unskewed", eval_examples), ("skewed", skewed)):
        prefixes[name] = str(tmp / name / cfg.pipeline_name)
        server = ModelServerProcess([f"--model_name={cfg.pipeline_name}", f"--model_base_path={cfg.serving_model_dir}",
                                     f"--request_log_filename_prefix={prefixes[name]}"], str(tmp),
                                    wait_for_model=cfg.pipeline_name)
        try:
            _send(server, cfg.pipeline_name, examples)
        finally:
            assert server.stop() == 0, server.log()[-3000:]  # SIGTERM: the queue is written, the file completed
        logged = sum(len(request_logs.examples_of(log)) for log in
                     request_logs.read_logs(request_logs.log_files(prefixes[name])))
        assert logged == len(examples)
    return cfg, config_path, prefixes


def _drift(config_path, *args):
    return subprocess.run([sys.executable, "-m", "pipeline.cli", "drift", "--config", config_path, *args],
                          capture_output=True, text=True, cwd=os.path.dirname(config_path), timeout=600)


def test_the_served_eval_split_is_within_the_thresholds_of_the_model_s_training_data(logged):
    from serving import predict

    cfg, config_path, prefixes = logged
    result = _drift(config_path, "--data", prefixes["unskewed"])
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    version = os.path.basename(predict.latest_version(cfg.serving_model_dir))
    assert re.search(rf"from request logs in 1 file .* skew against the training data of model version {version} "
                     rf"\(\S+/StatisticsGen/statistics/\d+, split train\): none of 17 features crossed",
                     result.stdout.replace("\n", " ")), result.stdout


def test_served_skewed_rows_cross_exit_3_and_the_run_report_shows_the_verdict(logged, tmp_path):
    from pipeline import report

    cfg, config_path, prefixes = logged
    result = _drift(config_path, "--data", prefixes["skewed"])
    assert result.returncode == 3, result.stdout[-3000:] + result.stderr[-3000:]
    assert set(SKEWED) <= set(re.search(r"threshold: (.*) \(see the page\)", result.stderr).group(1).split(", "))
    page = re.search(r"wrote the page to (\S+)", result.stdout).group(1)
    assert page.startswith(os.path.join(cfg.resolved_output_root, "drift", cfg.pipeline_name))
    for name in SKEWED:
        assert f'<tr id="feature-{name}" class="crossed">' in open(page).read()
    html = open(report.write_report(cfg, path=str(tmp_path / "report.html"))).read()
    assert re.search(r'<dd id="drift"><span class="badge failed">\d+ of 17 features crossed</span>', html)
    assert f'href="file://{page}"' in html
