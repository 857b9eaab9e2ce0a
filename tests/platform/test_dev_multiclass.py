"""The loop on another task's data, from a CSV to a served model (e2e: minutes).

The multi-class test dataset's CSV stands for a data scientist's own data: `tfxp init` writes a package, `tfxp
dev` runs it and serves it, a save of model.py is served with answers in the task's words, two Ctrl-C stop it at
once with MLMD and the serving dir consistent; then the same loop as one call per iteration from a Jupyter
kernel (nbclient + ipykernel) picks up where it stopped.
"""
import fcntl
import os
import re
import subprocess
import sys

import nbformat
import psutil
import pytest
import requests
from nbclient import NotebookClient

from components.core.user_code import load_user_code
from pipeline.config import load_config
from pipeline.run_summary import open_store
from tests.support import synthetic
from tests.support.dev_loop import DevProcess, replace_in_file
from bench.model_server import free_port

pytestmark = pytest.mark.e2e

NAME = "my_segments"
# Small and quick, and every candidate blessed (a push each time).
OVERRIDES = ["training.train_steps=60", "training.eval_steps=5", "tflite.enabled=false", "evaluation.max_degradation=1.0"]
CLASS_ANSWER = r"segment = (bronze|silver|gold) \(p = [01]\.\d{3}\)"


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    """(config path, package dir, env) of a package `tfxp init` wrote from the multi-class dataset's CSV."""
    tmp = tmp_path_factory.mktemp("dev_multiclass")
    user = load_user_code("synth_multiclass")
    csv_path = synthetic.write_csv(tmp / "segments.csv", user, 1200)
    parent = tmp / "packages"
    parent.mkdir()
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2",
               PYTHONPATH=os.pathsep.join([str(parent), os.environ.get("PYTHONPATH", "")]))
    init = subprocess.run([sys.executable, "-m", "pipeline.cli", "init", NAME, "--csv", csv_path, "--label",
                           user.task.label, "--dir", str(parent), "--output-root", str(tmp / "runs")],
                          capture_output=True, text=True, env=env, cwd=str(tmp), timeout=600)
    assert init.returncode == 0, init.stdout[-2000:] + init.stderr[-3000:]
    sys.path.insert(0, str(parent))
    yield str(parent / NAME / "config.yaml"), parent / NAME, env, tmp
    sys.path.remove(str(parent))


@pytest.fixture(scope="module")
def loop(package):
    config_path, _, env, tmp = package
    dev = DevProcess(config_path, str(tmp), pythonpath=env["PYTHONPATH"].split(os.pathsep)[0],
                     overrides=OVERRIDES)
    yield dev
    dev.stop()


def test_the_package_init_wrote_is_run_served_and_answers_in_the_task_s_words(package, loop):
    config_path, _, _, _ = package
    summary = loop.wait_for_iteration(1)
    assert "blessed and pushed" in summary or "not pushed" in summary, summary
    assert re.search(rf"served: version \d+, [\d.]+ s after the start: {CLASS_ANSWER} on the first eval example "
                     rf"\(its label: (bronze|silver|gold)\)", summary), summary
    assert re.search(r"accuracy \d\.\d{4}", summary)


def test_a_save_of_model_py_is_served_with_the_new_layers(package, loop):
    _, package_dir, _, _ = package
    replace_in_file(package_dir / "model.py", r"^HIDDEN_UNITS = .*$", "HIDDEN_UNITS = (24, 12)")
    summary = loop.wait_for_iteration(2)
    version = int(re.search(r"served: version (\d+)", summary).group(1))
    assert re.search(rf"{CLASS_ANSWER} \(was {CLASS_ANSWER}\)", summary), summary
    status = requests.get(f"{loop.url}/v1/models/{NAME}", timeout=10).json()["model_version_status"]
    assert [int(v["version"]) for v in status if v["state"] == "AVAILABLE"] == [version]


def test_two_ctrl_c_during_the_trainer_stop_at_once_and_leave_mlmd_and_the_serving_dir_consistent(package, loop):
    from ml_metadata.proto import metadata_store_pb2 as mlmd

    config_path, package_dir, _, _ = package
    cfg = load_config(config_path)
    replace_in_file(package_dir / "model.py", r"^HIDDEN_UNITS = .*$", "HIDDEN_UNITS = (20, 10)")

    def trainer_executions():
        store = open_store(cfg.resolved_metadata_path)
        node = store.get_context_by_type_and_name("node", f"{NAME}.Trainer")
        return store.get_executions_by_context(node.id)

    loop.wait_until(lambda: any(e.last_known_state == mlmd.Execution.RUNNING for e in trainer_executions()), 300,
                    "the Trainer running", loop.output)
    children = psutil.Process(loop.process.pid).children(recursive=True)
    loop.process.send_signal(2)
    loop.wait_until(lambda: "Ctrl-C again to stop at once" in loop.output(), 30, "the first Ctrl-C's answer",
                    loop.output)
    loop.process.send_signal(2)
    assert loop.process.wait(60) == 130, loop.output()[-3000:]
    killed = max(trainer_executions(), key=lambda e: e.id)
    assert killed.last_known_state == mlmd.Execution.CANCELED and "abandoned_by" in killed.custom_properties
    assert not os.path.exists(os.path.join(cfg.resolved_pipeline_root, "Trainer", "model", str(killed.id)))
    store = open_store(cfg.resolved_metadata_path)
    assert not [e for e in store.get_executions() if e.last_known_state in (mlmd.Execution.NEW,
                                                                            mlmd.Execution.RUNNING)]
    versions = [os.path.join(cfg.serving_model_dir, d) for d in os.listdir(cfg.serving_model_dir)]
    assert versions and all(os.path.exists(os.path.join(v, "saved_model.pb")) for v in versions)
    assert not [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
    with open(cfg.resolved_metadata_path + ".lock") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)


def test_the_same_loop_runs_one_call_per_iteration_in_a_jupyter_kernel(package, loop):
    config_path, _, env, tmp = package
    assert loop.process.poll() is not None  # the CLI loop has stopped: the kernel takes the pipeline's lock
    rest_port, grpc_port = free_port(), free_port()
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in [
        f"import sys\nsys.path.insert(0, {env['PYTHONPATH'].split(os.pathsep)[0]!r})\nfrom pipeline import dev",
        f"session = dev.start({config_path!r}, {OVERRIDES!r}, rest_port={rest_port}, grpc_port={grpc_port})",
        "iteration = session.iterate()",
        "import requests\n"
        f"print(requests.get('http://127.0.0.1:{rest_port}/v1/models/{NAME}', timeout=10).json())",
        "session.close()",
    ]])
    NotebookClient(notebook, timeout=900, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp)}}).execute()
    outputs = ["".join(o.get("text", "") for o in cell.get("outputs", [])) for cell in notebook.cells]
    iteration = outputs[2]
    assert re.search(r"iteration 1 \(start\)", iteration) and "Trainer" in iteration, iteration
    assert re.search(rf"served: version \d+, [\d.]+ s after the start: {CLASS_ANSWER}", iteration), iteration
    assert "INFO" not in iteration and "WARNING" not in iteration, iteration  # the libraries' logs went to the file
    assert "'state': 'AVAILABLE'" in outputs[3]
