"""`tfxp dev` on the sample, driven by real saves of the data scientist's files (e2e: minutes).

One `tfxp dev` process on a 2,000-row slice and a copy of the sample's package; each test is one step of a
data scientist's session, in order: the first iteration, an edit to the model, mistakes in model.py and
preprocessing.py, the history, then Ctrl-C during an iteration. The served model is queried over REST.
"""
import base64
import fcntl
import os
import re
import shutil
import subprocess
import sys

import psutil
import pytest
import requests

from pipeline.config import PROJECT_ROOT, load_config
from pipeline.run_summary import open_store
from serving import predict
from tests.conftest import write_csv_slice
from tests.support.dev_loop import DevProcess, replace_in_file
from tests.support.sample_run import write_config

pytestmark = pytest.mark.e2e

PACKAGE = "dev_taxi"
UPSTREAM_OF_TRAINER = ["ImportExampleGen", "StatisticsGen", "ImportSchemaGen", "ExampleValidator", "Transform"]


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dev")
    package = tmp / "code" / PACKAGE
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    for name in ("features.py", "preprocessing.py", "model.py"):
        shutil.copyfile(os.path.join(PROJECT_ROOT, "components", name), package / name)
    config_path = write_config(tmp, write_csv_slice(tmp / "slice.csv", 2000), name=PACKAGE, user_package=PACKAGE,
                               tflite={"enabled": False})
    sys.path.insert(0, str(tmp / "code"))
    cfg = load_config(config_path)
    dev = DevProcess(config_path, str(tmp), pythonpath=str(tmp / "code"))
    yield dev, cfg, package, tmp
    dev.stop()
    sys.path.remove(str(tmp / "code"))


def served_versions(dev):
    status = requests.get(f"{dev.url}/v1/models/{PACKAGE}", timeout=10).json()
    return [int(v["version"]) for v in status["model_version_status"] if v["state"] == "AVAILABLE"]


def layer_sizes(version_dir):
    import tensorflow as tf

    loaded = tf.saved_model.load(version_dir)  # held: the signature's variables live as long as it does
    kernels = {v.name.split("/")[0]: v.shape for v in loaded.signatures["serving_default"].variables
               if re.match(r"hidden_\d+/kernel", v.name)}
    return tuple(int(kernels[name][-1]) for name in sorted(kernels))


def lines(summary, prefix):
    return [line.strip() for line in summary.splitlines() if line.strip().startswith(prefix)]


def test_the_first_iteration_runs_the_pipeline_and_the_pushed_model_answers_over_rest(session):
    dev, cfg, _, _ = session
    summary = dev.wait_for_iteration(1)
    assert lines(summary, "executed") and "Trainer" in lines(summary, "executed")[0]
    assert re.search(r"accuracy \d\.\d{4}", summary) and "blessed and pushed: version" in summary
    pushed = int(re.search(r"pushed: version (\d+)", summary).group(1))
    assert served_versions(dev) == [pushed]
    example = predict.first_raw_examples(cfg.resolved_data_root, "eval", 1)
    response = requests.post(f"{dev.url}/v1/models/{PACKAGE}:predict", timeout=30,
                             json={"instances": [{"b64": base64.b64encode(example[0]).decode()}]})
    assert response.status_code == 200 and 0 <= response.json()["predictions"][0][0] <= 1
    assert re.search(rf"served: version {pushed}, [\d.]+ s after the start: P\(big_tipper\) = \d\.\d{{3}} on the first "
                     rf"eval example \(its label: [01]\)", summary), summary


def test_a_new_hidden_units_reruns_the_trainer_onward_and_the_next_served_model_has_those_layers(session):
    dev, cfg, package, _ = session
    before = served_versions(dev)
    replace_in_file(package / "model.py", r"^HIDDEN_UNITS = .*$", "HIDDEN_UNITS = (48, 24)")
    summary = dev.wait_for_iteration(2)
    assert "(model.py changed)" in summary
    cached = lines(summary, "cached")[0]
    assert all(node in cached for node in UPSTREAM_OF_TRAINER), summary
    assert "Trainer" in lines(summary, "executed")[0]
    assert re.search(r"accuracy (\d\.\d{4} -> \d\.\d{4} \([+-]\d\.\d{4}\)|\d\.\d{4} \(unchanged\))", summary)
    served = served_versions(dev)
    assert len(served) == 1 and served[0] not in before
    assert layer_sizes(os.path.join(cfg.serving_model_dir, str(served[0]))) == (48, 24)
    assert re.search(rf"served: version {served[0]}, [\d.]+ s after the save: P\(big_tipper\) = \d\.\d{{3}} "
                     rf"\(was P\(big_tipper\) = \d\.\d{{3}}\)", summary), summary


def test_a_syntax_error_is_one_line_naming_the_file_and_the_loop_waits_for_the_fix(session):
    dev, _, package, _ = session
    served = served_versions(dev)
    replace_in_file(package / "model.py", r"^HIDDEN_UNITS = .*$", "HIDDEN_UNITS = (48, 24")
    summary = dev.wait_for_iteration(3)
    errors = lines(summary, "error:")
    assert len(errors) == 1 and re.search(rf"{PACKAGE}/model.py, line \d+: SyntaxError", errors[0]), summary
    assert dev.process.poll() is None and served_versions(dev) == served
    replace_in_file(package / "model.py", r"^HIDDEN_UNITS = .*$", "HIDDEN_UNITS = (48, 24)")
    summary = dev.wait_for_iteration(4)
    assert lines(summary, "executed")[0] == "executed  -" and "nothing new to push" in summary


def test_a_preprocessing_fn_that_fails_is_one_line_naming_preprocessing_py(session):
    dev, _, package, _ = session
    replace_in_file(package / "preprocessing.py", r"^    outputs = transforms.transform_by_kind\(.*$",
                    "    raise ValueError('no tips today')")
    summary = dev.wait_for_iteration(5)
    errors = lines(summary, "error:")
    assert len(errors) == 1, summary
    assert re.search(rf"{PACKAGE}/preprocessing.py, line \d+: ValueError: no tips today", errors[0]), errors
    assert "failed    Transform" in summary and dev.process.poll() is None


def test_tfxp_runs_lists_each_iteration_with_what_changed_and_what_was_pushed(session):
    dev, cfg, _, tmp = session
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp / "code"), os.environ.get("PYTHONPATH", "")]))
    result = subprocess.run([sys.executable, "-m", "pipeline.cli", "runs", "--config", str(tmp / "config.yaml")],
                            capture_output=True, text=True, env=env, cwd=str(tmp), timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [line for line in result.stdout.splitlines() if re.match(r"\d{4}-\d\d-\d\dT", line)]
    # the syntax error stopped before the pipeline: no run of its own
    assert len(rows) == 4, result.stdout
    assert "(first run)" in rows[0] and re.search(r"\byes\s+\d{10}\b", rows[0])
    assert "model.py" in rows[1] and re.search(r"\byes\s+\d{10}\b", rows[1])
    assert "nothing" in rows[2] and "cached" in rows[2]
    assert "preprocessing.py" in rows[3] and "failed" in rows[3]


def test_ctrl_c_during_an_iteration_lets_the_running_component_finish_and_leaves_everything_consistent(session):
    from ml_metadata.proto import metadata_store_pb2 as mlmd

    dev, cfg, package, _ = session
    replace_in_file(package / "preprocessing.py", r"^    raise ValueError\('no tips today'\)$",
                    "    outputs = transforms.transform_by_kind(inputs, features.FEATURES)")
    replace_in_file(package / "model.py", r"^HIDDEN_UNITS = .*$", "HIDDEN_UNITS = (40, 20)")

    def trainer_running():
        store = open_store(cfg.resolved_metadata_path)
        node = store.get_context_by_type_and_name("node", f"{PACKAGE}.Trainer")
        return any(e.last_known_state == mlmd.Execution.RUNNING for e in store.get_executions_by_context(node.id))

    dev.wait_until(trainer_running, 300, "the Trainer running", dev.output)
    children = psutil.Process(dev.process.pid).children(recursive=True)
    assert dev.stop(timeout=300) == 0, dev.output()[-3000:]
    output = dev.output()
    assert "stopping after the running components finish" in output and "tfxp dev stopped" in output
    assert "stopped: the components that were running finished; no other started" in output
    store = open_store(cfg.resolved_metadata_path)
    unfinished = [e for e in store.get_executions() if e.last_known_state in (mlmd.Execution.NEW,
                                                                             mlmd.Execution.RUNNING)]
    assert unfinished == []
    assert all(os.path.exists(os.path.join(v, "saved_model.pb")) for v in
               [os.path.join(cfg.serving_model_dir, d) for d in os.listdir(cfg.serving_model_dir)])
    assert not [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
    with open(cfg.resolved_metadata_path + ".lock") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released: a `tfxp run` could start now
