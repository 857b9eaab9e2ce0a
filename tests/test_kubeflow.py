"""tfxp compile / submit: the KFP v2 PipelineSpec, checked offline, and one task run through
TFX's Kubeflow v2 container entrypoint exactly as the image would run it."""
import json
import os
import shutil
import subprocess
import sys

import pytest
import yaml

from pipeline import kubeflow_runner
from pipeline.config import CONFIG_DIR, load_config
from pipeline.pipeline import create_pipeline

ENTRYPOINT = ["python", "-m", "tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor"]
RESOLVER_ID = "latest_blessed_model_resolver"


@pytest.fixture(scope="module")
def kubeflow_config():
    # The shipped preset (gs:// root: compiling must not touch it), with a schema path that
    # exists here so a task can run locally below.
    return load_config(os.path.join(CONFIG_DIR, "kubeflow.yaml"),
                       overrides=[f"schema_path={load_config().resolved_schema_path}"])


@pytest.fixture(scope="module")
def compiled(kubeflow_config, tmp_path_factory):
    path = kubeflow_runner.compile_pipeline(kubeflow_config, str(tmp_path_factory.mktemp("kfp") / "p.yaml"))
    with open(path) as f:
        return path, yaml.safe_load(f)


def _tasks(spec):
    return spec["root"]["dag"]["tasks"]


def _component_of_task(task_name):
    return RESOLVER_ID if task_name.startswith(RESOLVER_ID) else task_name


def test_compiles_offline_against_a_remote_pipeline_root(compiled, kubeflow_config):
    path, spec = compiled
    assert kubeflow_config.resolved_pipeline_root.startswith("gs://")
    assert spec["pipelineInfo"]["name"] == kubeflow_config.pipeline_name
    assert spec["sdkVersion"].startswith("tfx-1.16")


def test_kfp_loads_the_package(compiled):
    from kfp import components
    component = components.load_component_from_file(compiled[0])
    assert component.name == "chicago-taxi"


def test_every_component_runs_the_configured_image_with_the_tfx_entrypoint(compiled, kubeflow_config):
    _, spec = compiled
    local_ids = {c.id for c in create_pipeline(kubeflow_config, exclude_candidate_from_baseline=False).components}
    assert {_component_of_task(t) for t in _tasks(spec)} == local_ids
    executors = spec["deploymentSpec"]["executors"]
    containers = {name: e["container"] for name, e in executors.items() if "container" in e}
    assert {n.replace("_executor", "") for n in containers} == local_ids - {RESOLVER_ID}
    for container in containers.values():
        assert container["image"] == kubeflow_config.image
        assert container["command"] == ENTRYPOINT


def test_dag_edges_match_the_local_pipeline(compiled, kubeflow_config):
    _, spec = compiled
    local = create_pipeline(kubeflow_config, exclude_candidate_from_baseline=False)
    local_edges = {(up.id, c.id) for c in local.components for up in c.upstream_nodes}
    ir_edges = {(_component_of_task(dep), _component_of_task(name))
                for name, task in _tasks(spec).items() for dep in task.get("dependentTasks", [])}
    ir_edges = {(a, b) for a, b in ir_edges if a != b}
    assert ir_edges == local_edges
    assert ("AnomaliesGate", "Transform") in ir_edges  # the gate really guards Transform


def test_beam_args_are_passed_to_every_beam_step(compiled, kubeflow_config):
    _, spec = compiled
    executors = spec["deploymentSpec"]["executors"]
    for step in ["StatisticsGen", "Transform", "evaluator", "ImportExampleGen"]:
        args = executors[f"{step}_executor"]["container"]["args"]
        for flag in kubeflow_config.resolved_beam_args:
            assert flag in args, (step, flag)


def _parameter(task, name):
    value = task["inputs"]["parameters"][name]["runtimeValue"]["constantValue"]
    return next(iter(value.values()))


def test_runtime_parameters_carry_the_config(compiled, kubeflow_config):
    tasks = _tasks(compiled[1])
    assert json.loads(_parameter(tasks["Trainer"], "train_args")) == {"num_steps": kubeflow_config.train_steps}
    custom = json.loads(_parameter(tasks["Trainer"], "custom_config"))
    assert custom["strategy"] == kubeflow_config.strategy and custom["batch_size"] == kubeflow_config.batch_size
    assert _parameter(tasks["Trainer"], "run_fn") == "components.trainer.run_fn"
    assert _parameter(tasks["Transform"], "preprocessing_fn") == "components.preprocessing.preprocessing_fn"
    assert _parameter(tasks["ImportExampleGen"], "input_base") == kubeflow_config.resolved_data_root


def test_every_module_path_in_the_ir_imports(compiled):
    from tfx.utils import import_utils
    tasks, executors = _tasks(compiled[1]), compiled[1]["deploymentSpec"]["executors"]
    paths = [_parameter(tasks["Trainer"], "run_fn"), _parameter(tasks["Transform"], "preprocessing_fn")]
    for path in paths:
        assert callable(import_utils.import_func_from_module(*path.rsplit(".", 1)))
    for executor in executors.values():
        if "container" in executor:
            args = executor["container"]["args"]
            class_path = args[args.index("--executor_class_path") + 1]
            assert import_utils.import_class_by_path(class_path)


def test_compile_rejects_a_name_kubeflow_cannot_take(tmp_path):
    from pipeline.config import ConfigError
    cfg = load_config(os.path.join(CONFIG_DIR, "kubeflow.yaml"), overrides=["pipeline_name=chicago_taxi"])
    with pytest.raises(ConfigError, match="'chicago-taxi'"):
        kubeflow_runner.compile_pipeline(cfg, str(tmp_path / "p.yaml"))
    assert os.listdir(tmp_path) == []


def test_submit_to_an_unreachable_host_is_a_clear_error():
    cfg = load_config(os.path.join(CONFIG_DIR, "kubeflow.yaml"))
    with pytest.raises(kubeflow_runner.SubmitError, match="cannot reach Kubeflow Pipelines at http://127.0.0.1:9"):
        kubeflow_runner.submit(cfg, "http://127.0.0.1:9")


# -- running compiled tasks through the container entrypoint ------------------------------------

def _output_type(spec, task_name, key):
    component = spec["components"][_tasks(spec)[task_name]["componentRef"]["name"]]
    return component["outputDefinitions"]["artifacts"][key]["artifactType"]


def _run_task(spec, task_name, inputs, outputs, task_root):
    """Runs one compiled task as its container would: the IR's command and args, with the
    {{$}} placeholder replaced by an ExecutorInput naming local artifact URIs."""
    task = _tasks(spec)[task_name]
    container = spec["deploymentSpec"]["executors"][f"{task_name}_executor"]["container"]
    executor_input = {
        "inputs": {
            "artifacts": {key: {"artifacts": [a]} for key, a in inputs.items()},
            "parameters": {k: v["runtimeValue"]["constantValue"]
                           for k, v in task["inputs"].get("parameters", {}).items()},
        },
        "outputs": {
            "artifacts": {key: {"artifacts": [{"name": f"{task_name}-{key}", "uri": str(task_root / key),
                                               "type": _output_type(spec, task_name, key)}]}
                          for key in outputs},
            "outputFile": str(task_root / "executor_output.json"),
        },
    }
    args = [json.dumps(executor_input) if a == "{{$}}" else a for a in container["args"]]
    command = [sys.executable] + container["command"][1:]  # `python` of this environment
    result = subprocess.run(command + args, capture_output=True, text=True, timeout=600,
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert result.returncode == 0, result.stderr[-4000:]
    with open(task_root / "executor_output.json") as f:
        return json.load(f), result


def test_container_entrypoint_runs_compiled_tasks_on_local_paths(compiled, sample_tfrecords, tmp_path):
    _, spec = compiled
    # An Examples artifact as ImportExampleGen lays it out: Split-<name>/ folders.
    examples_uri = tmp_path / "examples"
    for split, pattern in sample_tfrecords.items():
        shutil.copytree(os.path.dirname(pattern), examples_uri / f"Split-{split}")
    examples = {"name": "examples", "uri": str(examples_uri), "type": {"schemaTitle": "tfx.Examples"},
                "metadata": {"split_names": json.dumps(["train", "eval"])}}

    out, _ = _run_task(spec, "StatisticsGen", {"examples": examples}, ["statistics"], tmp_path / "stats")
    assert "statistics" in out["artifacts"]
    for split in ("train", "eval"):
        assert (tmp_path / "stats" / "statistics" / f"Split-{split}" / "FeatureStats.pb").exists()

    _run_task(spec, "ImportSchemaGen", {}, ["schema"], tmp_path / "schema")
    assert (tmp_path / "schema" / "schema" / "schema.pbtxt").exists()

    statistics = {"name": "statistics", "uri": str(tmp_path / "stats" / "statistics"),
                  "type": {"schemaTitle": "tfx.ExampleStatistics"},
                  "metadata": {"split_names": json.dumps(["train", "eval"])}}
    schema = {"name": "schema", "uri": str(tmp_path / "schema" / "schema"), "type": {"schemaTitle": "tfx.Schema"}}
    _run_task(spec, "ExampleValidator", {"statistics": statistics, "schema": schema}, ["anomalies"],
              tmp_path / "validator")
    anomalies = {"name": "anomalies", "uri": str(tmp_path / "validator" / "anomalies"),
                 "type": {"schemaTitle": "tfx.ExampleAnomalies"},
                 "metadata": {"split_names": json.dumps(["train", "eval"])}}
    # The project's own component, from its module path in the image.
    _run_task(spec, "AnomaliesGate", {"anomalies": anomalies}, ["verdict"], tmp_path / "gate")
    with open(tmp_path / "gate" / "verdict" / "verdict.json") as f:
        assert json.load(f) == {"clean_splits": ["eval", "train"]}
