"""Every distribution strategy trains on real transformed data and exports a working model."""
import json
import os
import re
import signal
import threading
import time

import pytest
import tensorflow as tf

from components import distributed, strategy as strategy_lib, trainer


def _fn_args(transformed, out, **config):
    from tfx.components.trainer.fn_args_utils import FnArgs
    return FnArgs(
        train_files=[transformed["files"]["train"]], eval_files=[transformed["files"]["eval"]],
        transform_output=transformed["transform_output"], serving_model_dir=str(out / "model" / "Format-Serving"),
        model_run_dir=str(out / "run"), train_steps=config.pop("train_steps", 8), eval_steps=2,
        custom_config={"batch_size": 16, **config})


def _assert_serves(serving_dir, transformed):
    raw = [r for r in tf.data.TFRecordDataset(tf.io.gfile.glob(transformed["raw"]["eval"]),
                                              compression_type="GZIP").take(4)]
    out = tf.saved_model.load(serving_dir).signatures["serving_default"](examples=tf.stack(raw))["outputs"].numpy()
    assert out.shape == (4, 1) and ((out >= 0) & (out <= 1)).all()


def _worker_logs(out):
    workers = out / "run" / "workers"
    return {p.name: p.read_text() for p in workers.glob("worker-*.log")} if workers.exists() else {}


@pytest.mark.parametrize("name", ["one_device", "auto"])
def test_in_process_strategy_trains_and_exports(name, transformed, tmp_path):
    trainer.run_fn(_fn_args(transformed, tmp_path, strategy=name))
    _assert_serves(str(tmp_path / "model" / "Format-Serving"), transformed)


def test_mirrored_on_two_logical_cpus_runs_two_replicas(transformed, tmp_path):
    trainer.run_fn(_fn_args(transformed, tmp_path, strategy="mirrored", cpu_devices=2))
    _assert_serves(str(tmp_path / "model" / "Format-Serving"), transformed)
    log = _worker_logs(tmp_path)["worker-0.log"]
    assert "strategy: mirrored (MirroredStrategy) with 2 replica(s) in sync" in log, log[-2000:]
    assert "16 per replica x 2 replica(s) = 32 global" in log


def test_multi_worker_mirrored_with_two_local_workers_exports_once(transformed, tmp_path):
    trainer.run_fn(_fn_args(transformed, tmp_path, strategy="multi_worker_mirrored", num_workers=2))
    _assert_serves(str(tmp_path / "model" / "Format-Serving"), transformed)
    logs = _worker_logs(tmp_path)
    assert set(logs) == {"worker-0.log", "worker-1.log"}
    assert all("strategy: multi_worker_mirrored (CollectiveAllReduceStrategy) with 2 replica(s) in sync" in text
               for text in logs.values())
    # Exactly one export: the chief's, in the Trainer's model dir; the other worker's temp dir is gone.
    exports = [d for d, _, files in os.walk(tmp_path) if "saved_model.pb" in files and d.endswith("Format-Serving")]
    assert exports == [str(tmp_path / "model" / "Format-Serving")]


def test_parameter_server_strategy_trains_with_fit_and_exports(transformed, tmp_path):
    trainer.run_fn(_fn_args(transformed, tmp_path, strategy="parameter_server", num_workers=2,
                            num_parameter_servers=1))
    _assert_serves(str(tmp_path / "model" / "Format-Serving"), transformed)
    assert "strategy: parameter_server (ParameterServerStrategyV2)" in _worker_logs(tmp_path)["worker-0.log"]


def test_a_killed_worker_fails_the_training_in_bounded_time(transformed, tmp_path):
    fn_args = _fn_args(transformed, tmp_path, strategy="multi_worker_mirrored", num_workers=2, train_steps=100000)
    outcome = {}

    def train():
        try:
            trainer.run_fn(fn_args)
        except Exception as e:  # noqa: BLE001  (the test inspects it)
            outcome["error"] = e
        outcome["done"] = time.monotonic()

    thread = threading.Thread(target=train, daemon=True)
    thread.start()
    workers_json = tmp_path / "run" / "workers" / "workers.json"
    log_1 = tmp_path / "run" / "workers" / "worker-1.log"
    deadline = time.monotonic() + 180
    # Kill worker 1 once both workers have joined the cluster and training is under way.
    while time.monotonic() < deadline:
        if workers_json.exists() and re.search(r"replica\(s\) in sync", _read(log_1)):
            break
        time.sleep(0.5)
    pids = json.loads(workers_json.read_text())["pids"]
    killed_at = time.monotonic()
    os.kill(pids[1], signal.SIGKILL)
    thread.join(timeout=60)
    assert "done" in outcome, "training did not stop within 60 s of a worker being killed"
    assert outcome["done"] - killed_at < 30
    assert isinstance(outcome["error"], distributed.WorkerFailedError)
    assert "worker 1" in str(outcome["error"]) and "killed by signal 9" in str(outcome["error"])
    for pid in pids:  # nothing left running
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def _read(path):
    try:
        return path.read_text()
    except OSError:
        return ""


def test_tpu_is_a_clear_error_without_a_tpu():
    with pytest.raises(strategy_lib.StrategyError, match="no TPU is reachable"):
        strategy_lib.build_strategy("tpu")


def test_unknown_strategy_fails_before_any_training(transformed, tmp_path):
    with pytest.raises(ValueError, match="unknown strategy 'warp'"):
        trainer.run_fn(_fn_args(transformed, tmp_path, strategy="warp"))
    assert not (tmp_path / "model").exists()


def test_splitting_the_cpu_after_initialization_is_a_clear_error():
    tf.constant(1.0)  # TensorFlow is initialized in this process by now (with 1 logical CPU)
    with pytest.raises(strategy_lib.StrategyError, match="already initialized"):
        strategy_lib.split_cpu(3)
