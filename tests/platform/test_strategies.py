"""Every distribution strategy trains on real transformed data and exports a working model."""
import json
import os
import re
import signal
import threading
import time

import pytest
import tensorflow as tf

from components.training import launcher, strategy as strategy_lib, trainer
from tests.support.workspace import fn_args

PACKAGE = "synth_binary"


def _run(workspace, out, **options):
    args = fn_args(workspace.user(PACKAGE), workspace.transformed(PACKAGE), str(out),
                   train_steps=options.pop("train_steps", 8), **options)
    trainer.run_fn(args)
    return args


def _assert_serves(workspace, out):
    raw = [r for r in tf.data.TFRecordDataset(tf.io.gfile.glob(workspace.tfrecords(PACKAGE)["patterns"]["eval"]),
                                              compression_type="GZIP").take(4)]
    serve = tf.saved_model.load(str(out / "model" / "Format-Serving")).signatures["serving_default"]
    out = serve(examples=tf.stack(raw))["outputs"].numpy()
    assert out.shape == (4, 1) and ((out >= 0) & (out <= 1)).all()


def _worker_logs(out):
    workers = out / "run" / launcher.WORKERS_DIR
    return {p.name: p.read_text() for p in workers.glob("worker-*.log")} if workers.exists() else {}


@pytest.mark.parametrize("name", ["one_device", "auto"])
@pytest.mark.beam
@pytest.mark.training
def test_in_process_strategy_trains_and_exports(name, workspace, tmp_path):
    _run(workspace, tmp_path, strategy=name)
    _assert_serves(workspace, tmp_path)


@pytest.mark.beam
@pytest.mark.training
def test_mirrored_on_two_logical_cpus_runs_two_replicas(workspace, tmp_path):
    _run(workspace, tmp_path, strategy="mirrored", cpu_devices=2)
    _assert_serves(workspace, tmp_path)
    log = _worker_logs(tmp_path)["worker-0.log"]
    assert "strategy: mirrored (MirroredStrategy) with 2 replica(s) in sync" in log, log[-2000:]
    assert "16 per replica x 2 replica(s) = 32 global" in log


@pytest.mark.beam
@pytest.mark.training
def test_multi_worker_mirrored_with_two_local_workers_exports_once(workspace, tmp_path):
    _run(workspace, tmp_path, strategy="multi_worker_mirrored", num_workers=2)
    _assert_serves(workspace, tmp_path)
    logs = _worker_logs(tmp_path)
    assert set(logs) == {"worker-0.log", "worker-1.log"}
    assert all("strategy: multi_worker_mirrored (CollectiveAllReduceStrategy) with 2 replica(s) in sync" in text
               for text in logs.values())
    # Exactly one export: the chief's, in the Trainer's model dir; the other worker's temp dir is gone.
    exports = [d for d, _, files in os.walk(tmp_path) if "saved_model.pb" in files]
    assert exports == [str(tmp_path / "model" / "Format-Serving")]


def _trainer_artifacts(transformed, model_uri, run_uri):
    """The Trainer's input and output artifacts as TFX hands them to its executor."""
    from tfx.types import artifact_utils, standard_artifacts

    examples, graph = standard_artifacts.Examples(), standard_artifacts.TransformGraph()
    examples.uri, graph.uri = transformed["examples_uri"], transformed["transform_output"]
    examples.split_names = artifact_utils.encode_split_names(["train", "eval"])
    model, model_run = standard_artifacts.Model(), standard_artifacts.ModelRun()
    model.uri, model_run.uri = model_uri, run_uri
    return {"examples": [examples], "transform_graph": [graph]}, {"model": [model], "model_run": [model_run]}


@pytest.mark.beam
@pytest.mark.training
def test_tfjob_replicas_train_with_the_operators_tf_config_and_write_the_model_and_logs_to_gcs(
        workspace, tmp_path, monkeypatch):
    """Several machines, as a TFJob runs them, on this one. The TFJob Trainer's step creates its TFJob through the
    kubernetes client (a local fake API server); a stand-in for the Training Operator runs each replica's own
    command (TFX's run_executor of the project's Trainer executor) as a process with the TF_CONFIG the operator gives it
    (cluster chief + worker, on loopback). Each replica's run_fn trains in one worker process with that TF_CONFIG;
    the chief exports to gs://; the worker replica waits for the chief's model, so TFX's model-dir check passes on
    it too; the step sees Succeeded and the model. On Kubeflow the Trainer's dirs are gs://: the model, the
    manifest and the workers' logs are written there, and nothing lands in a local ./gs: folder."""
    from tfx.proto import trainer_pb2
    from tfx.utils import json_utils, proto_utils

    from components.training import engines, tfjob_executor
    from components.training.options import TrainingOptions, trainer_custom_config
    from tests.support import tfjob_schema
    from tests.support.fake_gcs import FakeGCS
    from tests.support.fake_tfjob_operator import FakeTFJobOperator

    user, transformed = workspace.user(PACKAGE), workspace.transformed(PACKAGE)
    monkeypatch.chdir(tmp_path)  # where a gs:// path used as a local one would appear
    monkeypatch.setattr(tfjob_executor.Executor, "poll_seconds", 0.5)
    engine = engines.KubeflowTrainingOptions(engine="tfjob", workers=2, tfjob=engines.TFJobOptions(namespace="ml"))
    custom_config = {**trainer_custom_config(TrainingOptions(batch_size=16, strategy="multi_worker_mirrored"),
                                             user.package, 0, "test"),
                     **engines.engine_custom_config(engine, "registry/image:1", "synth")}
    exec_properties = {"run_fn": "components.training.trainer.run_fn", "custom_config": json_utils.dumps(custom_config),
                       "train_args": proto_utils.proto_to_json(trainer_pb2.TrainArgs()),
                       "eval_args": proto_utils.proto_to_json(trainer_pb2.EvalArgs()),
                       # The project's Trainer: the step counts are execution properties (run parameters on Kubeflow).
                       "train_steps": 8, "eval_steps": 2}
    with FakeGCS() as gcs:
        inputs, outputs = _trainer_artifacts(transformed, gcs.url("model"), gcs.url("run"))
        with FakeTFJobOperator(str(tmp_path / "cluster"), run_replicas=True) as operator:
            monkeypatch.setenv("KUBECONFIG", operator.kubeconfig)
            tfjob_executor.Executor().Do(inputs, outputs, exec_properties)
            (job,) = operator.jobs.values()
            pod_logs = {pod: _read(path) for pod, path in job.logs.items()}
        tfjob_schema.validate_tfjob(operator.created[0])
        assert {pod.rsplit("-", 2)[-2] for pod in pod_logs} == {"chief", "worker"}
        assert tf.io.gfile.exists(gcs.url("model", "Format-Serving", "saved_model.pb"))
        assert [name.rstrip("/") for name in tf.io.gfile.listdir(gcs.url("model"))] == ["Format-Serving"]
        assert {name.rstrip("/") for name in tf.io.gfile.listdir(gcs.url("run"))} >= {"tfjob.yaml", launcher.WORKERS_DIR}
        logs = {name.rstrip("/") for name in tf.io.gfile.listdir(gcs.url("run", launcher.WORKERS_DIR))}
        assert logs == {"chief-0.log", "chief-0.json", "worker-0.log", "worker-0.json"}
        for name in ("chief-0.log", "worker-0.log"):
            log = tf.io.gfile.GFile(gcs.url("run", launcher.WORKERS_DIR, name)).read()
            assert "strategy: multi_worker_mirrored (CollectiveAllReduceStrategy) with 2 replica(s) in sync" in log
    chief, worker = (next(text for pod, text in pod_logs.items() if f"-{role}-0" in pod) for role in ("chief", "worker"))
    assert "in 1 worker process(es) as replica chief-0 of the engine's cluster" in chief
    assert "replica worker-0 trained; waiting for the chief's model" in worker and "Training complete" in worker
    assert not [p for p in os.listdir(tmp_path) if p.startswith("gs:")]
    assert not [p for p in os.listdir(tmp_path / "cluster") if p.startswith("gs:")]


@pytest.mark.beam
@pytest.mark.training
def test_parameter_server_strategy_trains_with_fit_and_exports(workspace, tmp_path):
    _run(workspace, tmp_path, strategy="parameter_server", num_workers=2, num_parameter_servers=1)
    _assert_serves(workspace, tmp_path)
    assert "strategy: parameter_server (ParameterServerStrategyV2)" in _worker_logs(tmp_path)["worker-0.log"]


@pytest.mark.beam
@pytest.mark.training
def test_a_killed_worker_fails_the_training_in_bounded_time(workspace, tmp_path):
    outcome = {}

    def train():
        try:
            _run(workspace, tmp_path, strategy="multi_worker_mirrored", num_workers=2, train_steps=100000)
        except Exception as e:  # noqa: BLE001  (the test inspects it)
            outcome["error"] = e
        outcome["done"] = time.monotonic()

    thread = threading.Thread(target=train, daemon=True)
    thread.start()
    workers_json = tmp_path / "run" / launcher.WORKERS_DIR / "workers.json"
    deadline = time.monotonic() + 180
    # Kill worker 1 once both workers have joined the cluster and training is under way (its
    # live log is local while it runs: workers.json says where).
    while time.monotonic() < deadline:
        if workers_json.exists():
            live_log = json.loads(workers_json.read_text())["live_logs"][1]
            if re.search(r"replica\(s\) in sync", _read(live_log)):
                break
        time.sleep(0.5)
    pids = json.loads(workers_json.read_text())["pids"]
    killed_at = time.monotonic()
    os.kill(pids[1], signal.SIGKILL)
    thread.join(timeout=60)
    assert "done" in outcome, "training did not stop within 60 s of a worker being killed"
    assert outcome["done"] - killed_at < 30
    assert isinstance(outcome["error"], launcher.WorkerFailedError)
    assert "worker 1" in str(outcome["error"]) and "killed by signal 9" in str(outcome["error"])
    for pid in pids:  # nothing left running
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    # The logs were kept, where the Trainer's run dir is.
    assert set(_worker_logs(tmp_path)) == {"worker-0.log", "worker-1.log"}


def _read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def test_tpu_is_a_clear_error_without_a_tpu():
    with pytest.raises(strategy_lib.StrategyError, match="no TPU is reachable"):
        strategy_lib.build_strategy("tpu")


@pytest.mark.beam
def test_an_unknown_strategy_fails_before_any_training(workspace, tmp_path):
    with pytest.raises(ValueError, match="unknown strategy 'warp'"):
        _run(workspace, tmp_path, strategy="warp")
    assert not (tmp_path / "model").exists()


def test_splitting_the_cpu_after_initialization_is_a_clear_error():
    tf.constant(1.0)  # TensorFlow is initialized in this process by now (with 1 logical CPU)
    with pytest.raises(strategy_lib.StrategyError, match="already initialized"):
        strategy_lib.split_cpu(3)
