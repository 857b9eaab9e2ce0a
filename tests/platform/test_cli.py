"""`tfxp` fails in one line with a documented exit code (tfxp/errors.py), and the commands that
need no TensorFlow (a config error, `tfxp predict`) do not import it.

Each command runs as a real `tfxp` process; a small wrapper reports at exit whether TensorFlow
was imported.
"""
import argparse
import json
import os
import subprocess
import sys

import pytest

from components.core.user_code import UserCodeError
from components.custom.anomalies_gate import AnomaliesFoundError
from data.tfrecords import DataError
from pipeline.beam_services import BeamServicesError
from pipeline.config import ConfigError
from pipeline.data_upload import UploadError
from pipeline.input_check import InputError
from pipeline.kubeflow_runner import SubmitError
from pipeline.kubeflow_schedule import ScheduleError
from pipeline.local_runner import PipelineRunError
from pipeline.run_guard import RunLockedError
from pipeline.schema_tool import SchemaError
from serving.client import ClientError, ServingRequestError, ServingUnavailable
from serving.inspect import NotAModelError
from serving.k8s import ManifestError
from serving.load_balancer import ComposeError
from serving.log_sink import SinkError
from serving.release import ReleaseError
from serving.server import ServeError
from bench.model_server import ModelServerProcess, free_port
from tfxp.errors import TfxpError

TENSORFLOW_MARK = "tensorflow imported at exit:"
_TFXP = ("import sys\nfrom pipeline.cli import main\ncode = main(sys.argv[1:])\n"
         f"print({TENSORFLOW_MARK!r}, 'tensorflow' in sys.modules)\nsys.exit(code)\n")


def tfxp(*args, cwd):
    """(exit code, stdout lines without the wrapper's, stderr lines, whether TensorFlow was imported)."""
    result = subprocess.run([sys.executable, "-c", _TFXP, *map(str, args)], capture_output=True, text=True,
                            cwd=cwd, timeout=300)
    out = result.stdout.splitlines()
    imported = [line.split(":", 1)[1].strip() == "True" for line in out if line.startswith(TENSORFLOW_MARK)]
    assert imported, f"tfxp ended before main returned (exit {result.returncode}):\n{result.stderr[-3000:]}"
    return result.returncode, [line for line in out if not line.startswith(TENSORFLOW_MARK)], \
        result.stderr.splitlines(), imported[0]


# -- the exit codes -------------------------------------------------------------------------------------

@pytest.mark.parametrize("error, code, other_base", [
    (DataError, 2, ValueError), (ConfigError, 2, ValueError), (SchemaError, 2, ValueError),
    (UserCodeError, 2, ValueError), (ServeError, 2, ValueError), (ClientError, 2, ValueError),
    (NotAModelError, 2, ValueError), (ReleaseError, 2, ValueError), (InputError, 2, ValueError),
    (ManifestError, 2, ValueError), (ComposeError, 2, ValueError), (SinkError, 2, ValueError),
    (UploadError, 2, ValueError), (ScheduleError, 2, ValueError),
    (SubmitError, 2, RuntimeError), (RunLockedError, 2, RuntimeError), (BeamServicesError, 1, RuntimeError),
    (PipelineRunError, 1, RuntimeError), (ServingRequestError, 1, RuntimeError), (ServingUnavailable, 1, RuntimeError),
    (AnomaliesFoundError, 3, RuntimeError),
])
def test_each_error_class_carries_its_documented_exit_code_and_keeps_its_other_base(error, code, other_base):
    assert issubclass(error, TfxpError) and issubclass(error, other_base)
    assert error.exit_code == code


def test_a_failed_component_carries_its_own_exit_code():
    assert PipelineRunError("component Transform failed: an input file is truncated", exit_code=2).exit_code == 2


def test_the_anomalies_gate_says_stopped_not_error():
    assert AnomaliesFoundError.outcome == "stopped" and TfxpError.outcome == "error"


def _text(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def _rows(tmp_path, name, *rows):
    path = tmp_path / name
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@pytest.mark.parametrize("case", ["config value", "config file", "bad row", "no server", "user package",
                                  "release", "data flags", "rows to score", "schedule", "upload"])
def test_a_failure_is_one_line_on_stderr_with_its_exit_code_and_no_tensorflow(tmp_path, case):
    rows = _rows(tmp_path, "rows.jsonl", {"age": 30})
    args, code, says = {
        "config value": (["run", "--set", "training.train_steps=abc"], 2,
                         "training: train_steps: expected an integer, got 'abc'"),
        "config file": (["run", "--config", tmp_path / "missing.yaml"], 2, "missing.yaml: config file not found"),
        "bad row": (["predict", _rows(tmp_path, "bad.jsonl", {"age": "thirty"}), "--package", "synth_binary", "--model", "m"], 2,
                    "line 1, column 'age'"),
        "no server": (["predict", rows, "--package", "synth_binary", "--model", "m", "--port", free_port(),
                       "--retries", "0"], 1, "cannot connect: Connection refused"),
        "user package": (["predict", rows, "--package", "no_such_package", "--model", "m"], 2,
                         "user_package 'no_such_package': no such Python package"),
        "release": (["release", "canary"], 2, "tfxp release canary needs the VERSION"),
        "data flags": (["data", "--write-csv", tmp_path / "x.csv"], 2, "--write-csv writes synthetic rows"),
        "rows to score": (["infer", "--data", _text(tmp_path, "unlabelled.csv", "x,y\n1,2\n"),
                           "--set", "user_package=synth_binary"], 2, "unlabelled.csv, line 1 (header): missing column(s)"),
        "schedule": (["submit", "--host", "http://127.0.0.1:9", "--schedule", "0 3 * * *"], 2,
                     "--schedule '0 3 * * *': 5 fields, but KFP's cron: 6 fields"),
        "upload": (["upload", "--from", tmp_path, "--set", f"data_root={tmp_path}"], 2,
                   "is the folder being uploaded (--from)"),
    }[case]
    exit_code, _, stderr, imported_tensorflow = tfxp(*args, cwd=tmp_path)
    assert (exit_code, len(stderr)) == (code, 1), stderr
    assert stderr[0].startswith(f"tfxp {args[0]}: error: ") and says in stderr[0]
    assert not imported_tensorflow


def test_a_path_that_is_not_a_model_is_one_line_exit_2(tmp_path):
    exit_code, _, stderr, _ = tfxp("inspect", tmp_path, cwd=tmp_path)  # reads SavedModels: TensorFlow allowed
    assert exit_code == 2
    assert stderr[-1].startswith(f"tfxp inspect: error: {tmp_path}: not a model")
    assert not any("Traceback" in line for line in stderr)


# -- tfxp predict against a real server, without TensorFlow in the client --------------------------------

@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """`tfxp serve` on a model with the pipeline's serving contract (serialized tf.Examples in
    ``examples``, ``outputs`` out): outputs = age / 100."""
    import tensorflow as tf

    tmp = tmp_path_factory.mktemp("served")

    class AgeOverHundred(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
        def serve(self, examples):
            age = tf.io.parse_example(examples, {"age": tf.io.FixedLenFeature([1], tf.int64, default_value=[0])})
            return {"outputs": tf.cast(age["age"], tf.float32) / 100}

    module = AgeOverHundred()
    tf.saved_model.save(module, str(tmp / "model" / "1"), signatures={"serving_default": module.serve})
    server = ModelServerProcess(["--model_name=loans", f"--model_base_path={tmp / 'model'}"], str(tmp),
                                wait_for_model="loans")
    yield server
    assert server.stop() == 0, server.log()[-3000:]


@pytest.mark.parametrize("protocol", ["rest", "grpc"])
def test_predict_prints_the_servers_predictions_without_importing_tensorflow(served, tmp_path, protocol):
    rows = tmp_path / "rows.csv"
    rows.write_text("age,city,defaulted\n30,Chicago,0\n45,,1\n")
    port = served.rest_port if protocol == "rest" else served.grpc_port
    exit_code, out, stderr, imported_tensorflow = tfxp(
        "predict", rows, "--protocol", protocol, "--port", port, "--model", "loans", "--package", "synth_binary",
        cwd=tmp_path)
    assert exit_code == 0, stderr
    assert out == ["row 1: P(defaulted) = 0.300", "row 2: P(defaulted) = 0.450"]
    assert not imported_tensorflow


# -- every subcommand ---------------------------------------------------------------------------------

def subcommands():
    from pipeline.cli import build_parser

    (action,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return sorted(action.choices)


# A bad config value (or, for the commands that read no config, a bad argument) per subcommand: what the
# line must say, and the exit code tfxp/errors.py documents for it.
BAD_INPUT_BY_COMMAND = {
    "init": (["init", "1st", "--csv", "{tmp}/rows.csv", "--label", "y"], "'1st'"),
    "data": (["data", "--write-csv", "{tmp}/x.csv"], "--write-csv writes synthetic rows"),
    "schema": (["schema", "--set", "training.train_steps=abc"], "expected an integer, got 'abc'"),
    "run": (["run", "--set", "training.strategy=warp"], "training.strategy"),
    "dev": (["dev", "--config", "{tmp}/missing.yaml"], "missing.yaml: config file not found"),
    "infer": (["infer", "--data", "{tmp}/missing.csv"], "missing.csv: no such file or folder"),
    "runs": (["runs", "--set", "serving.replicas=0"], "serving.replicas must be at least 1"),
    "compile": (["compile", "--set", "serving.kubernetes.namespace=ML_Serving"],
                "serving.kubernetes.namespace must be a Kubernetes name"),
    "submit": (["submit", "--host", "http://127.0.0.1:9", "--set", "serving.batching.max_batch_size=0"],
               "serving.batching.max_batch_size"),
    "upload": (["upload"], "data_root gs://YOUR_BUCKET/tfx/data/chicago_taxi still holds the preset's placeholder"),
    "report": (["report", "--set", "nosuchkey=1"], "nosuchkey"),
    "drift": (["drift", "--data", "{tmp}/no_logs"], "no request logs, TFRecord files or CSV there"),
    "diagnose-input": (["diagnose-input", "--set", "training.batch_size=many"], "training: batch_size"),
    "serve": (["serve", "--set", "serving.infra_validation.platform=mars"], "serving.infra_validation.platform"),
    "predict": (["predict", "{tmp}/rows.jsonl", "--set", "pipeline_name="], "pipeline_name"),
    "serving-config": (["serving-config", "--set", "serving.kubernetes.namespace=ML_Serving"],
                       "serving.kubernetes.namespace must be a Kubernetes name"),
    "release": (["release", "canary"], "tfxp release canary needs the VERSION"),
    "inspect": (["inspect", "{tmp}"], "not a model"),
    "log-sink": (["log-sink", "--filename_prefix", "s3://bucket/logs/taxi"], "must be a local path or gs://"),
}


def test_the_table_below_covers_every_subcommand():
    assert sorted(BAD_INPUT_BY_COMMAND) == subcommands()


@pytest.mark.parametrize("command", sorted(BAD_INPUT_BY_COMMAND))
def test_every_subcommand_fails_on_bad_input_in_one_line_exit_2_without_a_traceback(tmp_path, command):
    (tmp_path / "rows.csv").write_text("x,y\n1,2\n")
    _rows(tmp_path, "rows.jsonl", {"age": 30})
    template, says = BAD_INPUT_BY_COMMAND[command]
    exit_code, _, stderr, _ = tfxp(*[arg.format(tmp=tmp_path) for arg in template], cwd=tmp_path)
    assert (exit_code, len(stderr)) == (2, 1), stderr
    assert stderr[0].startswith(f"tfxp {command}: error: ") and says in stderr[0], stderr[0]


@pytest.mark.parametrize("command", subcommands())
def test_every_subcommand_refuses_an_unknown_flag_in_one_line_exit_2(tmp_path, command):
    result = subprocess.run([sys.executable, "-m", "pipeline.cli", command, "--no-such-flag"], capture_output=True,
                            text=True, cwd=tmp_path, timeout=120)
    assert (result.returncode, result.stderr.splitlines()) == (2, [
        f"tfxp {command}: error: unrecognized arguments: --no-such-flag (see tfxp {command} --help)"]) or (
        result.returncode == 2 and len(result.stderr.splitlines()) == 1
        and result.stderr.startswith(f"tfxp {command}: error: the following arguments are required")), result.stderr
