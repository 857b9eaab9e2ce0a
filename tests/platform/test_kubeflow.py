"""tfxp compile: the KFP v2 PipelineSpec, checked offline (tfxp submit and its schedules:
test_kubeflow_submit.py); and the whole compiled pipeline run task by task through TFX's
Kubeflow v2 container entrypoint with every artifact on gs:// (a local fake GCS, the data put there
by tfxp upload), exactly as the image would run it."""
import json
import os
import re

import pytest
import yaml

from pipeline import kubeflow_runner
from pipeline.config import CONFIG_DIR, load_config
from pipeline.pipeline import create_pipeline
from tests.conftest import write_csv_slice
from tests.support.kfp_compiled import LOCAL_SCHEMA, compiled, kubeflow_config  # noqa: F401 (fixtures)

ENTRYPOINT = ["python", "-m", "tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor"]
RESOLVER_ID = "latest_blessed_model_resolver"


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
    assert components.load_component_from_file(compiled[0]).name == "chicago-taxi"


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
    assert {(a, b) for a, b in ir_edges if a != b} == local_edges
    assert ("AnomaliesGate", "Transform") in ir_edges  # the gate really guards Transform


def test_beam_args_are_passed_to_every_beam_step(compiled, kubeflow_config):
    executors = compiled[1]["deploymentSpec"]["executors"]
    for step in ["StatisticsGen", "Transform", "evaluator", "ImportExampleGen"]:
        args = executors[f"{step}_executor"]["container"]["args"]
        for flag in kubeflow_config.resolved_beam_args:
            assert flag in args, (step, flag)


def _parameter(task, name):
    return task["inputs"]["parameters"][name]["runtimeValue"]["constant"]


def test_task_parameters_carry_the_config(compiled, kubeflow_config):
    tasks = _tasks(compiled[1])
    custom = json.loads(_parameter(tasks["Trainer"], "custom_config"))
    assert custom["training"]["strategy"] == kubeflow_config.training.strategy
    assert custom["user_package"] == "components" and custom["code_fingerprint"]
    assert _parameter(tasks["Trainer"], "run_fn") == "components.training.trainer.run_fn"
    assert _parameter(tasks["Transform"], "preprocessing_fn") == "components.preprocessing.preprocessing_fn"


def test_the_run_parameters_are_pipeline_inputs_that_default_to_the_config(compiled, kubeflow_config):
    """The KFP UI's run form: the root's inputDefinitions, each with the config's value as its default."""
    spec = compiled[1]
    inputs = spec["root"]["inputDefinitions"]["parameters"]
    assert {name: (p["parameterType"], p["defaultValue"], p["isOptional"]) for name, p in inputs.items()} == {
        "data_root": ("STRING", kubeflow_config.resolved_data_root, True),
        "train_steps": ("NUMBER_INTEGER", kubeflow_config.training.train_steps, True),
        "eval_steps": ("NUMBER_INTEGER", kubeflow_config.training.eval_steps, True),
        "gate_threshold": ("NUMBER_DOUBLE", kubeflow_config.evaluation.threshold, True)}
    assert all(re.fullmatch(r"[a-z][a-z0-9_]*", name) for name in inputs)  # KFP's and Vertex AI's names
    uses = {(task, key): p["componentInputParameter"] for task, t in _tasks(spec).items()
            for key, p in t.get("inputs", {}).get("parameters", {}).items() if "componentInputParameter" in p}
    assert uses == {("ImportExampleGen", "input_base"): "data_root", ("Trainer", "train_steps"): "train_steps",
                    ("Trainer", "eval_steps"): "eval_steps", ("evaluator", "gate_threshold"): "gate_threshold"}


def test_a_local_run_keeps_plain_values_and_no_resources(kubeflow_config):
    from tfx.orchestration.data_types import RuntimeParameter
    local = create_pipeline(kubeflow_config)
    properties = {(c.id, k): v for c in local.components for k, v in c.exec_properties.items()}
    assert not any(isinstance(v, RuntimeParameter) for v in properties.values())
    assert properties[("Trainer", "train_steps")] == kubeflow_config.training.train_steps
    assert properties[("ImportExampleGen", "input_base")] == kubeflow_config.resolved_data_root
    assert properties[("evaluator", "gate_threshold")] is None  # the eval config's own threshold
    assert not any(getattr(c, "platform_config", None) for c in local.components)


def _resources(spec, step):
    return spec["deploymentSpec"]["executors"][f"{step}_executor"]["container"]["resources"]


def test_each_step_gets_its_configured_resources(compiled, kubeflow_config):
    """Cores, and memory in GB (10^9 bytes) as the IR counts it: Kubeflow's driver writes it back as <n>G."""
    spec, resources = compiled[1], kubeflow_config.kubeflow.resources
    gib = 2 ** 30 / 10 ** 9
    expected = {"Trainer": resources.trainer, "Transform": resources.transform, "evaluator": resources.evaluator,
                "StatisticsGen": resources.default, "pusher": resources.default,
                "ImportExampleGen": resources.default}  # TFX 1.16 drops it for ExampleGens: compile_pipeline adds it
    assert (resources.trainer.cpu_limit, resources.trainer.memory_limit) == ("4", "6Gi")  # the preset's, visibly
    for step, sized in expected.items():
        written = _resources(spec, step)
        assert written["cpuLimit"] == written["cpuRequest"] == float(sized.cpu_limit), step
        assert written["memoryLimit"] == written["memoryRequest"] == pytest.approx(
            float(sized.memory_limit.rstrip("Gi")) * gib), step
        assert "accelerator" not in written
    containers = [e["container"] for e in spec["deploymentSpec"]["executors"].values() if "container" in e]
    assert all("resources" in c for c in containers)


def test_beam_steps_start_as_many_direct_runner_workers_as_their_cpu_limit(compiled, kubeflow_config):
    """--direct_num_workers=0 counts the node's cores, not the pod's: each Beam step gets its own count after it."""
    executors = compiled[1]["deploymentSpec"]["executors"]
    assert "--direct_num_workers=0" in kubeflow_config.resolved_beam_args
    for step, cpus in [("Transform", 2), ("evaluator", 2), ("StatisticsGen", 1)]:
        workers = [a for a in executors[f"{step}_executor"]["container"]["args"] if a.startswith("--direct_num_workers")]
        assert workers[-1] == f"--direct_num_workers={cpus}", step  # Beam takes the last
    assert not any(a.startswith("--direct_num_workers=4") for a in executors["Trainer_executor"]["container"]["args"])


def test_a_gpu_trainer_compiles_with_its_accelerators_and_a_strategy_that_uses_them(tmp_path):
    cfg = load_config(os.path.join(CONFIG_DIR, "kubeflow.yaml"), overrides=[
        LOCAL_SCHEMA, "kubeflow.resources.trainer.accelerator=nvidia.com/gpu",
        "kubeflow.resources.trainer.accelerator_count=2", "kubeflow.resources.trainer.memory_limit=30Gi"])
    with open(kubeflow_runner.compile_pipeline(cfg, str(tmp_path / "p.yaml"))) as f:
        spec = yaml.safe_load(f)
    written = _resources(spec, "Trainer")
    assert written["accelerator"] == {"type": "nvidia.com/gpu", "count": "2"}
    assert written["memoryLimit"] == pytest.approx(30 * 2 ** 30 / 10 ** 9) and written["cpuLimit"] == 4
    custom = json.loads(_parameter(_tasks(spec)["Trainer"], "custom_config"))
    assert custom["training"]["strategy"] == "mirrored" and custom["training"]["cpu_devices"] == 0
    assert "accelerator" not in _resources(spec, "Transform")


def test_the_model_is_infra_validated_in_a_tensorflow_serving_pod_before_the_push(compiled, kubeflow_config):
    tasks, executors = _tasks(compiled[1]), compiled[1]["deploymentSpec"]["executors"]
    args = executors["infra_validator_executor"]["container"]["args"]
    assert args[args.index("--executor_class_path") + 1] == "components.custom.infra_validator.Executor"
    serving_spec = json.loads(_parameter(tasks["infra_validator"], "serving_spec"))
    assert "kubernetes" in serving_spec and serving_spec["model_name"] == kubeflow_config.pipeline_name
    # No Istio sidecar in the model server's pod (a Kubeflow profile namespace injects one that would refuse
    # the validator's plain gRPC); TFX writes the proto field names.
    assert serving_spec["kubernetes"]["serving_pod_overrides"]["annotations"] == {"sidecar.istio.io/inject": "false"}
    assert serving_spec["tensorflow_serving"] == {"image_name": "tensorflow/serving", "tags": ["2.16.1"]}
    request_spec = json.loads(_parameter(tasks["infra_validator"], "request_spec"))
    assert request_spec["make_warmup"] and request_spec["split_name"] == "eval"
    pushed_from = tasks["pusher"]["inputs"]["artifacts"]
    assert pushed_from["infra_blessing"]["taskOutputArtifact"]["producerTask"] == "infra_validator"
    assert "model" not in pushed_from  # TFX pushes the infra-validated copy that carries the warmup file


def test_every_module_path_in_the_ir_imports(compiled):
    from tfx.utils import import_utils
    tasks, executors = _tasks(compiled[1]), compiled[1]["deploymentSpec"]["executors"]
    for path in [_parameter(tasks["Trainer"], "run_fn"), _parameter(tasks["Transform"], "preprocessing_fn")]:
        assert callable(import_utils.import_func_from_module(*path.rsplit(".", 1)))
    for executor in executors.values():
        if "container" in executor:
            args = executor["container"]["args"]
            assert import_utils.import_class_by_path(args[args.index("--executor_class_path") + 1])


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


def test_the_batch_scoring_branch_compiles_with_the_rest_when_enabled(tmp_path):
    cfg = load_config(os.path.join(CONFIG_DIR, "kubeflow.yaml"),
                      overrides=[LOCAL_SCHEMA, "inference.data=gs://bucket/rows/part-0.tfrecord.gz"])
    with open(kubeflow_runner.compile_pipeline(cfg, str(tmp_path / "p.yaml"))) as f:
        spec = yaml.safe_load(f)
    tasks, executors = _tasks(spec), spec["deploymentSpec"]["executors"]
    assert {"inference_example_gen", "bulk_inferrer", "predictions_csv"} <= set(tasks)
    assert _parameter(tasks["inference_example_gen"], "input_base") == "gs://bucket/rows"
    scored_by = {key: artifact["taskOutputArtifact"]["producerTask"]
                 for key, artifact in tasks["bulk_inferrer"]["inputs"]["artifacts"].items()}
    assert scored_by == {"examples": "inference_example_gen", "model": "Trainer", "model_blessing": "evaluator"}
    args = executors["bulk_inferrer_executor"]["container"]["args"]
    assert args[args.index("--executor_class_path") + 1] == "tfx.components.bulk_inferrer.executor.Executor"
    assert all(flag in args for flag in cfg.resolved_beam_args)
    args = executors["predictions_csv_executor"]["container"]["args"]
    assert args[args.index("--executor_class_path") + 1] == "components.custom.predictions_csv.Executor"
    assert _parameter(tasks["predictions_csv"], "code_fingerprint")


def test_with_tuning_on_the_compiled_pipeline_runs_the_tuner_between_transform_and_the_trainer(tmp_path):
    cfg = load_config(os.path.join(CONFIG_DIR, "kubeflow.yaml"), overrides=[LOCAL_SCHEMA, "tuning.enabled=true"])
    with open(kubeflow_runner.compile_pipeline(cfg, str(tmp_path / "p.yaml"))) as f:
        spec = yaml.safe_load(f)
    tasks, executors = _tasks(spec), spec["deploymentSpec"]["executors"]
    sources = {key: (a["taskOutputArtifact"]["producerTask"], a["taskOutputArtifact"]["outputArtifactKey"])
               for key, a in tasks["tuner"]["inputs"]["artifacts"].items()}
    assert sources["examples"] == ("Transform", "transformed_examples")
    assert sources["transform_graph"] == ("Transform", "transform_graph")
    hyperparameters = tasks["Trainer"]["inputs"]["artifacts"]["hyperparameters"]["taskOutputArtifact"]
    assert (hyperparameters["producerTask"], hyperparameters["outputArtifactKey"]) == ("tuner", "best_hyperparameters")
    args = executors["tuner_executor"]["container"]["args"]
    assert args[args.index("--executor_class_path") + 1] == "components.custom.tuner.Executor"
    assert json.loads(_parameter(tasks["tuner"], "custom_config"))["tuning"]["max_trials"] == cfg.tuning.max_trials


def test_compiling_the_branch_for_a_csv_says_kubeflow_reads_tfrecords(tmp_path):
    from pipeline.config import ConfigError
    cfg = load_config(os.path.join(CONFIG_DIR, "kubeflow.yaml"), overrides=[LOCAL_SCHEMA, "inference.data=rows.csv"])
    with pytest.raises(ConfigError, match="rows.csv: a compiled pipeline reads TFRecords of tf.train.Example"):
        kubeflow_runner.compile_pipeline(cfg, str(tmp_path / "p.yaml"))


# -- the whole compiled pipeline on gs:// --------------------------------------------------------

@pytest.mark.e2e
def test_every_compiled_task_runs_through_the_container_entrypoint_on_gcs(tmp_path):
    import tensorflow as tf

    from components.core.user_code import load_user_code
    from data import tfrecords
    from data.unlabelled import convert_rows_to_score
    from pipeline.data_upload import upload
    from serving import predict
    from tests.conftest import write_without_column
    from tests.support.fake_gcs import FakeGCS
    from tests.support.kfp_harness import CompiledPipelineRun

    user = load_user_code()
    rows = write_csv_slice(tmp_path / "slice.csv", 800)
    local_data = tfrecords.convert_csv(rows, str(tmp_path / "data"), features=user.features, shards=2).output_dir
    # The batch scoring branch on: 100 of the rows without `tips`, as TFRecords on the bucket.
    unlabelled = str(tmp_path / "unlabelled" / "rows.tfrecord.gz")
    convert_rows_to_score(write_without_column(rows, tmp_path / "unlabelled.csv", "tips", rows=100), unlabelled,
                          features=user.features, required=[f.name for f in user.model_features])
    with FakeGCS() as gcs:
        # The data is where the run's data_root parameter points, not the config's data_root: ImportExampleGen
        # finds it only if the run's value reaches it.
        upload(local_data, gcs.url("data-v2"))  # tfxp upload
        tf.io.gfile.makedirs(gcs.url("unlabelled"))
        tf.io.gfile.copy(unlabelled, gcs.url("unlabelled", "rows.tfrecord.gz"))
        cfg_overrides = [
            LOCAL_SCHEMA, f"data_root={gcs.url('data')}", f"output_root={gcs.url()}",
            f"pipeline_root={gcs.url('pipelines')}", f"serving_dir={gcs.url('serving')}",
            # in_memory: one process per task is what this 2-core machine affords (the preset uses the pod's cores).
            "beam_preset=in_memory", "training.train_steps=30", "training.eval_steps=5", "training.batch_size=16",
            "evaluation.threshold=null", "tflite.representative_examples=50",
            # No cluster here: the same executor validates in `tfxp serve`, reading the model from gs://.
            "serving.infra_validation.platform=local_process", f"inference.data={gcs.url('unlabelled')}"]
        cfg = load_config(os.path.join(CONFIG_DIR, "kubeflow.yaml"), overrides=cfg_overrides)
        package = kubeflow_runner.compile_pipeline(cfg, str(tmp_path / "pipeline.yaml"))
        with open(package) as f:
            spec = yaml.safe_load(f)
        # A run that changes what its parameters say (the KFP UI's run form): the data root and the train steps.
        run = CompiledPipelineRun(spec, cfg.resolved_pipeline_root, "run-1", dict(os.environ),
                                  parameter_values={"data_root": gcs.url("data-v2"), "train_steps": 20})
        ran = run.run_all()
        print("seconds per task:", {name: round(s, 1) for name, s in run.seconds.items()})
        print("peak resident MB per task:", {name: round(mb) for name, mb in run.peak_rss_mb.items()})
        assert f"copied 2 file(s) from {gcs.url('data-v2')}/train/*" in run.logs["ImportExampleGen"]
        assert "training 20 steps" in run.logs["Trainer"]  # the run's 20, not the config's 30

        local_ids = {c.id for c in create_pipeline(cfg, exclude_candidate_from_baseline=False).components}
        assert set(ran) == local_ids - {RESOLVER_ID}
        assert ran[0] in ("ImportExampleGen", "ImportSchemaGen") and ran[-1] in ("pusher", "pusher_lite")
        # Both pushers pushed a version into the gs:// serving dirs.
        (version,) = tf.io.gfile.listdir(cfg.serving_model_dir)
        served = f"{cfg.serving_model_dir}/{version.rstrip('/')}"
        assert tf.io.gfile.exists(f"{served}/saved_model.pb")
        assert tf.io.gfile.exists(f"{served}/assets.extra/tf_serving_warmup_requests")
        lite_versions = tf.io.gfile.listdir(cfg.lite_serving_model_dir)
        assert len(lite_versions) == 1
        lite_files = tf.io.gfile.listdir(f"{cfg.lite_serving_model_dir}/{lite_versions[0].rstrip('/')}")
        assert {"dynamic_range.tflite", "int8.tflite", "input_contract.json", "report.json"} <= \
            {f.rstrip("/") for f in lite_files}
        # The model pushed to gs:// serves raw examples.
        outputs = predict.predict_serialized(served, predict.first_raw_examples(local_data, "eval", 3))
        assert outputs.shape == (3, 1)
        # BulkInferrer scored the unlabelled rows with the blessed model; the CSV of them is on gs:// too.
        (scored,) = run.outputs["predictions_csv"]["scored_rows"]
        assert scored["uri"].startswith("gs://") and scored["metadata"]["rows"] == 100
        logs = tf.io.gfile.glob(run.outputs["bulk_inferrer"]["inference_result"][0]["uri"] + "/prediction_logs-*.gz")
        assert logs and sum(1 for _ in tf.data.TFRecordDataset(logs, compression_type="GZIP")) == 100
        with tf.io.gfile.GFile(f"{scored['uri']}/predictions.csv") as f:
            lines = f.read().splitlines()
        assert len(lines) == 101 and lines[0].endswith(",predicted_big_tipper,predicted_big_tipper_probability")
        assert "tips" not in lines[0].split(",")
        # The gate threshold is a run parameter too: the same candidate, evaluated again in a run that asks
        # for an accuracy of 1.0, is not blessed (the first run's had no bound and blessed it).
        strict = CompiledPipelineRun(spec, cfg.resolved_pipeline_root, "run-2", dict(os.environ),
                                     parameter_values={"gate_threshold": 1.0})
        strict.outputs = dict(run.outputs)
        strict.run_task("evaluator")
        assert run.outputs["evaluator"]["blessing"][0]["metadata"]["blessed"] == 1
        assert strict.outputs["evaluator"]["blessing"][0]["metadata"]["blessed"] == 0
        # The Tuner task of a package compiled with tuning on, on this run's Transform output, its task root on
        # gs:// as Kubeflow's: KerasTuner's project folder is in the executor's temp dir there, nothing on the
        # local disk (run_task checks).
        tuning = load_config(os.path.join(CONFIG_DIR, "kubeflow.yaml"), overrides=cfg_overrides + [
            "tuning.enabled=true", "tuning.max_trials=2", "tuning.steps_per_trial=6", "tuning.seed=0"])
        with open(kubeflow_runner.compile_pipeline(tuning, str(tmp_path / "tuned.yaml"))) as f:
            tuned = CompiledPipelineRun(yaml.safe_load(f), cfg.resolved_pipeline_root, "run-3", dict(os.environ))
        tuned.outputs = dict(run.outputs)
        tuned.run_task("tuner", task_root=gcs.url("task-roots"))
        oracles = [folder for folder, _, files in tf.io.gfile.walk(gcs.url("task-roots", "tuner"))
                   if "oracle.json" in files]
        assert oracles and all(folder.startswith("gs://") for folder in oracles)
        best = tuned.outputs["tuner"]["best_hyperparameters"][0]["uri"]
        assert best.startswith("gs://") and tf.io.gfile.listdir(best) == ["best_hyperparameters.txt"]
        with tf.io.gfile.GFile(f"{best}/best_hyperparameters.txt") as f:
            assert "learning_rate" in json.load(f)["values"]
        with tf.io.gfile.GFile(f"{tuned.outputs['tuner']['tuner_results'][0]['uri']}/trials.json") as f:
            assert [t["status"] for t in json.load(f)["trials"]] == ["COMPLETED"] * 2
