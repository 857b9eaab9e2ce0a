"""Training on several machines through an engine (kubeflow.training), checked offline: neither Vertex AI nor a
cluster with the Kubeflow Training Operator runs here.

* Vertex AI: the preset compiles TFX's own google_cloud_ai_platform Trainer; the Trainer task then runs as
  Kubeflow would run it (TFX's v2 container entrypoint, the IR's own arguments, in this process), through
  TFX's Vertex executor, runner and VertexJobClient, which build the CustomJob exactly as they would submit
  it: only the client's connection is replaced. That CustomJob is parsed strictly into aiplatform_v1's
  CustomJob proto (the API's schema: an unknown field or enum value fails) and by proto-plus, as the
  client's create_custom_job does.
* TFJob: the preset compiles the TFJob Trainer; its task, run the same way, creates its TFJob through the
  kubernetes client against a local fake API server (tests/support/fake_tfjob_operator.py), which records the
  request. The TFJob is validated against the Training Operator's CRD schema, its webhook's rules and
  Kubernetes' pod schema (tests/support/tfjob_schema.py). The step's waiting, failure and timeout are
  tested against the same server; a TFJob whose replicas really train, with the operator's TF_CONFIG, is in
  tests/platform/test_strategies.py.
"""
import json
import logging
import os

import jsonschema
import kubernetes_validate
import pytest
import yaml
from google.protobuf import json_format

from components.training import engines, launcher, tfjob, tfjob_executor
from pipeline import kubeflow_runner
from pipeline.config import CONFIG_DIR, ConfigError, load_config
from tests.support import tfjob_schema
from tests.support.fake_tfjob_operator import FakeTFJobOperator
from tests.support.kfp_harness import CompiledPipelineRun

LOCAL_SCHEMA = f"schema_path={load_config().resolved_schema_path}"
# The project's Trainer executor (TFX's GenericExecutor with the step counts from execution properties).
REPLICA_EXECUTOR = "components.training.component.Executor"
RUN_EXECUTOR = ["python", "-m", "tfx.scripts.run_executor"]


def preset(name, *overrides):
    return load_config(os.path.join(CONFIG_DIR, f"kubeflow-{name}.yaml"), overrides=[LOCAL_SCHEMA, *overrides])


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    """Both presets, compiled once (the first compile imports TFX's Kubeflow runner: about 12 s)."""
    out, result = tmp_path_factory.mktemp("kfp"), {}
    for name in ("vertex", "tfjob"):
        cfg = preset(name)
        with open(kubeflow_runner.compile_pipeline(cfg, str(out / f"{name}.yaml"))) as f:
            result[name] = (cfg, yaml.safe_load(f))
    return result


def run_trainer_task(spec, pipeline_root, tmp_path):
    """The compiled Trainer task through TFX's Kubeflow v2 entrypoint, in this process, with the IR's own
    arguments (upstream outputs at their Kubeflow URIs); returns the harness (its inputs)."""
    from tfx.orchestration.kubeflow.v2.container import kubeflow_v2_run_executor as entrypoint

    run = CompiledPipelineRun(spec, pipeline_root, "run-1", env={})
    run.assume_upstream_ran("Trainer")
    args = run.entrypoint_args("Trainer", str(tmp_path / "out" / "executor_output.json"))
    entrypoint._run_executor(*entrypoint._parse_flags(args))
    return run


def _parameter(spec, name):
    # Pipeline spec 2.1 (kubeflow_runner): a constant is the value itself.
    return spec["root"]["dag"]["tasks"]["Trainer"]["inputs"]["parameters"][name]["runtimeValue"]["constant"]


def _executor_class(spec):
    args = spec["deploymentSpec"]["executors"]["Trainer_executor"]["container"]["args"]
    return args[args.index("--executor_class_path") + 1]


def with_typo(document, path, typo):
    """A copy of ``document`` with a misspelt key added at ``path``."""
    copy = json.loads(json.dumps(document))
    node = copy
    for part in path:
        node = node[part]
    node[typo] = 1
    return copy


def _flag(command, flag):
    return command[command.index(flag) + 1]


def check_replica_command(command, run):
    """TFX's run_executor of the project's Trainer executor on the task's own artifacts, run_fn and config."""
    assert command[:3] == RUN_EXECUTOR and _flag(command, "--executor_class_path") == REPLICA_EXECUTOR
    inputs = {key: [a["artifact"]["uri"] for a in artifacts]
              for key, artifacts in json.loads(_flag(command, "--inputs")).items()}
    expected = {key: [a["uri"] for a in value["artifacts"]] for key, value in run._inputs("Trainer")["artifacts"].items()}
    assert inputs == expected
    outputs = json.loads(_flag(command, "--outputs"))
    assert outputs["model"][0]["artifact"]["uri"].endswith("/Trainer/model")
    exec_properties = json.loads(_flag(command, "--exec-properties"))
    assert exec_properties["run_fn"] == "components.training.trainer.run_fn"
    custom = json.loads(exec_properties["custom_config"])
    assert custom["training"]["strategy"] == "multi_worker_mirrored" and custom["user_package"] == "components"
    return custom


# -- the config ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("overrides, message", [
    (["kubeflow.training.engine=slurm"], "kubeflow.training.engine must be one of pod, vertex, tfjob"),
    (["kubeflow.training.workers=2"], "kubeflow.training.workers: 2 replicas need engine vertex or tfjob"),
    (["kubeflow.training.engine=tfjob", "kubeflow.training.workers=3"],
     "3 replicas train together only with training.strategy multi_worker_mirrored \\(got mirrored"),
    (["kubeflow.training.engine=vertex"], "kubeflow.training.vertex.project: engine vertex needs the Google Cloud"),
    (["kubeflow.training.engine=vertex", "kubeflow.training.vertex.project=my-project", "kubeflow.training.workers=0"],
     "kubeflow.training.workers must be at least 1"),
    (["kubeflow.training.engine=vertex", "kubeflow.training.vertex.project=my-project"],
     "kubeflow.training.machine_type: engine vertex needs a Compute Engine machine type"),
    (["kubeflow.training.engine=vertex", "kubeflow.training.vertex.project=my-project",
      "kubeflow.training.machine_type=n1-standard-4", "kubeflow.training.accelerator_type=NVIDIA_T4",
      "kubeflow.training.accelerator_count=1"], "accelerator_type must be one of Vertex AI's .*NVIDIA_TESLA_T4"),
    (["kubeflow.training.engine=vertex", "kubeflow.training.vertex.project=my-project",
      "kubeflow.training.machine_type=n1-standard-4", "kubeflow.training.accelerator_count=1"],
     "accelerator_type and accelerator_count go together"),
    (["kubeflow.training.engine=tfjob", "kubeflow.training.accelerator_type=NVIDIA_TESLA_T4"],
     "accelerator_type names a Vertex AI accelerator; with engine tfjob set kubeflow.training.tfjob.gpu_resource"),
    (["kubeflow.training.engine=tfjob", "kubeflow.training.tfjob.namespace=ML_Team"],
     "kubeflow.training.tfjob.namespace must be a Kubernetes namespace name"),
    (["kubeflow.training.engine=tfjob", "kubeflow.training.tfjob.memory=16 gigs"],
     "kubeflow.training.tfjob.memory must be a Kubernetes quantity"),
    (["kubeflow.training.tfjob.timeout=5"], "unknown key 'timeout'"),
])
def test_an_engine_that_cannot_work_is_a_one_line_error_naming_the_key(overrides, message):
    with pytest.raises(ConfigError, match=message) as error:
        load_config(overrides=overrides)
    assert "\n" not in str(error.value)


def test_the_default_engine_is_the_trainers_own_pod():
    from components.training.component import Trainer

    options = load_config().kubeflow.training
    assert options.engine == "pod"
    assert engines.trainer_class(options) is Trainer
    assert engines.engine_custom_config(options, "image", "name") == {}


# -- Vertex AI ----------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def vertex_submission(compiled, tmp_path_factory):
    """What TFX's Vertex runner would submit for the compiled Trainer task: {project, training_job, enable_vertex,
    vertex_region} as it calls _launch_cloud_training, plus the harness run."""
    from tfx.extensions.google_cloud_ai_platform import runner, training_clients

    class OfflineVertexJobClient(training_clients.VertexJobClient):
        def create_client(self):  # the one method that connects (to <region>-aiplatform.googleapis.com)
            self._client = None

    submitted = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(training_clients, "get_job_client",
                      lambda enable_vertex, vertex_region: OfflineVertexJobClient(vertex_region))
        patch.setattr(runner, "_launch_cloud_training", lambda **kwargs: submitted.update(kwargs))
        submitted["run"] = run_trainer_task(compiled["vertex"][1], "gs://bucket/tfx/pipelines/chicago_taxi",
                                            tmp_path_factory.mktemp("vertex"))
    return submitted


def custom_job_proto(job):
    from google.cloud.aiplatform_v1.types.custom_job import CustomJob

    return json_format.ParseDict(job, CustomJob.pb()(), ignore_unknown_fields=False)


def test_the_vertex_preset_compiles_tfxs_vertex_trainer_with_the_projects_own_config(compiled):
    cfg, spec = compiled["vertex"]
    # TFX's Vertex AI executor (components/training/vertex_trainer.py), whose replicas run REPLICA_EXECUTOR.
    assert _executor_class(spec) == "components.training.vertex_trainer.Executor"
    custom = json.loads(_parameter(spec, "custom_config"))
    assert custom["ai_platform_enable_vertex"] is True and custom["ai_platform_vertex_region"] == "us-central1"
    assert custom["ai_platform_training_args"]["project"] == cfg.kubeflow.training.vertex.project
    assert custom["training"]["strategy"] == "multi_worker_mirrored" and custom["code_fingerprint"]
    assert _parameter(spec, "run_fn") == "components.training.trainer.run_fn"


def test_tfx_builds_a_custom_job_that_parses_strictly_as_the_vertex_api_s_custom_job(vertex_submission):
    from google.cloud.aiplatform_v1.types.custom_job import CustomJob

    job = vertex_submission["training_job"]
    message = custom_job_proto(job)
    assert CustomJob(job).job_spec.worker_pool_specs[0].replica_count == 1  # what create_custom_job converts
    assert message.display_name.startswith("tfx_") and message.labels["tfx_executor"]
    assert vertex_submission["project"] == "your-project-id" and vertex_submission["enable_vertex"] is True
    assert vertex_submission["vertex_region"] == "us-central1"


def test_the_job_has_a_chief_pool_and_a_pool_of_the_other_workers_on_the_configured_machines(vertex_submission, compiled):
    cfg, _ = compiled["vertex"]
    options = cfg.kubeflow.training
    pools = custom_job_proto(vertex_submission["training_job"]).job_spec.worker_pool_specs
    assert [pool.replica_count for pool in pools] == [1, options.workers - 1]
    for pool in pools:
        machine = json_format.MessageToDict(pool.machine_spec, preserving_proto_field_name=True)
        assert machine == {"machine_type": "n1-standard-8", "accelerator_type": "NVIDIA_TESLA_T4", "accelerator_count": 1}
        assert (options.machine_type, options.accelerator_type, options.accelerator_count) == tuple(machine.values())
        assert pool.container_spec.image_uri == cfg.image    # kubeflow.training.image: null -> the pipeline image


def test_every_vertex_replica_runs_tfxs_generic_executor_on_the_task_s_artifacts(vertex_submission):
    pools = vertex_submission["training_job"]["job_spec"]["worker_pool_specs"]
    commands = [pool["container_spec"]["command"] for pool in pools]
    assert commands[0] == commands[1]
    custom = check_replica_command(commands[0], vertex_submission["run"])
    assert custom["ai_platform_training_args"]["job_spec"]["worker_pool_specs"][0]["replica_count"] == 1


def test_tf_config_comes_from_vertex_not_from_the_project(vertex_submission):
    job = vertex_submission["training_job"]
    assert "TF_CONFIG" not in json.dumps(job)
    assert all("env" not in pool["container_spec"] for pool in job["job_spec"]["worker_pool_specs"])


@pytest.mark.parametrize("path, typo", [
    (["job_spec", "worker_pool_specs", 0], "replicas_count"),
    (["job_spec", "worker_pool_specs", 1, "machine_spec"], "acelerator_count"),
    (["job_spec"], "service_acount"),
])
def test_a_misspelt_field_of_the_job_fails_the_schema_check(vertex_submission, path, typo):
    with pytest.raises(json_format.ParseError, match=typo):
        custom_job_proto(with_typo(vertex_submission["training_job"], path, typo))


def test_a_service_account_and_no_accelerator_reach_the_job_spec():
    options = preset("vertex", "kubeflow.training.vertex.service_account=trainer@p.iam.gserviceaccount.com",
                     "kubeflow.training.accelerator_type=null", "kubeflow.training.accelerator_count=0",
                     "kubeflow.training.workers=1", "kubeflow.training.image=eu.gcr.io/p/trainer:1").kubeflow.training
    config = engines.engine_custom_config(options, "unused", "chicago-taxi")
    job_spec = config["ai_platform_training_args"]["job_spec"]
    custom_job_proto({"job_spec": job_spec})
    assert job_spec["service_account"] == "trainer@p.iam.gserviceaccount.com"
    assert job_spec["worker_pool_specs"] == [{"machine_spec": {"machine_type": "n1-standard-8"}, "replica_count": 1,
                                              "container_spec": {"image_uri": "eu.gcr.io/p/trainer:1"}}]


# -- TFJob --------------------------------------------------------------------------------------------------

FAILED = "TFJob kubeflow/x has failed because 1 Worker replica(s) failed."


@pytest.fixture(scope="module")
def tfjob_step(compiled, tmp_path_factory):
    """The compiled TFJob Trainer task against a fake API server whose TFJob runs, then fails."""
    tmp = tmp_path_factory.mktemp("tfjob")
    with pytest.MonkeyPatch.context() as patch, FakeTFJobOperator(
            str(tmp / "api"), script=[("Running", "TFJob is running."), ("Failed", FAILED)]) as operator:
        patch.setenv("KUBECONFIG", operator.kubeconfig)
        patch.setattr(tfjob_executor.Executor, "poll_seconds", 0.05)
        try:
            run_trainer_task(compiled["tfjob"][1], str(tmp / "root"), tmp)
            error = None
        except tfjob_executor.TFJobFailedError as e:
            error = e
    (manifest,) = operator.created
    return {"error": error, "manifest": manifest, "requests": operator.requests, "root": tmp / "root",
            "cfg": compiled["tfjob"][0]}


def test_the_tfjob_preset_compiles_the_tfjob_trainer(compiled):
    cfg, spec = compiled["tfjob"]
    assert _executor_class(spec) == "components.training.tfjob_executor.Executor"
    settings = json.loads(_parameter(spec, "custom_config"))[tfjob.TFJOB_KEY]
    assert settings["workers"] == 2 and settings["image"] == cfg.image and settings["namespace"] == "kubeflow"


def test_the_step_s_tfjob_validates_against_the_training_operator_s_crd_and_kubernetes(tfjob_step):
    tfjob_schema.validate_tfjob(tfjob_step["manifest"])


def test_the_tfjob_has_a_chief_and_the_other_workers_with_the_configured_resources(tfjob_step):
    manifest, options = tfjob_step["manifest"], tfjob_step["cfg"].kubeflow.training
    replicas = manifest["spec"]["tfReplicaSpecs"]
    assert {t: r["replicas"] for t, r in replicas.items()} == {"Chief": 1, "Worker": options.workers - 1}
    for replica in replicas.values():
        assert replica["restartPolicy"] == "Never"
        (container,) = replica["template"]["spec"]["containers"]
        assert container["image"] == tfjob_step["cfg"].image
        assert container["resources"] == {"requests": {"cpu": "4", "memory": "16Gi"}, "limits": {"memory": "16Gi"}}
    assert manifest["metadata"]["namespace"] == options.tfjob.namespace
    assert manifest["spec"]["runPolicy"]["activeDeadlineSeconds"] == options.tfjob.timeout_seconds


def test_chief_and_workers_run_tfxs_generic_executor_with_the_same_command_and_no_tf_config(tfjob_step, compiled):
    replicas = tfjob_step["manifest"]["spec"]["tfReplicaSpecs"]
    commands = [r["template"]["spec"]["containers"][0]["command"] for r in replicas.values()]
    assert commands[0] == commands[1]
    run = CompiledPipelineRun(compiled["tfjob"][1], str(tfjob_step["root"]), "run-1", env={})
    run.assume_upstream_ran("Trainer")
    check_replica_command(commands[0], run)
    assert "TF_CONFIG" not in json.dumps(tfjob_step["manifest"])


def test_the_step_creates_gets_and_nothing_else_and_writes_the_manifest_to_the_run_dir(tfjob_step):
    name = tfjob_step["manifest"]["metadata"]["name"]
    calls = [(method, path.split("?")[0]) for method, path, _ in tfjob_step["requests"]]
    tfjobs = "/apis/kubeflow.org/v1/namespaces/kubeflow/tfjobs"
    assert calls[0] == ("POST", tfjobs)
    assert set(calls[1:]) == {("GET", f"{tfjobs}/{name}")} | {
        ("GET", f"/api/v1/namespaces/kubeflow/pods/{pod}/log") for pod in tfjob.replica_pod_names(name, 2)}
    with open(tfjob_step["root"] / "run-1" / "Trainer" / "model_run" / "tfjob.yaml") as f:
        assert yaml.safe_load(f) == tfjob_step["manifest"]


def test_a_failed_tfjob_fails_the_step_in_one_line_naming_it_and_its_condition(tfjob_step):
    name = tfjob_step["manifest"]["metadata"]["name"]
    message = str(tfjob_step["error"])
    assert "\n" not in message
    assert message.startswith(f"TFJob kubeflow/{name} failed: TFJobFailed: {FAILED}")
    assert f"kubectl logs -n kubeflow {name}-chief-0" in message


@pytest.mark.parametrize("where, typo", [
    (["spec"], "runPolicies"),
    (["spec", "tfReplicaSpecs", "Chief"], "replica"),
    (["spec", "runPolicy"], "cleanPodPolicyy"),
])
def test_a_misspelt_tfjob_field_fails_the_crd_schema(tfjob_step, where, typo):
    with pytest.raises(jsonschema.ValidationError, match=typo):
        tfjob_schema.validate_tfjob(with_typo(tfjob_step["manifest"], where, typo))


def test_a_misspelt_container_field_fails_kubernetes_strict_validation(tfjob_step):
    manifest = with_typo(tfjob_step["manifest"], ["spec", "tfReplicaSpecs", "Worker", "template", "spec", "containers", 0],
                         "imagePullPolicyy")
    with pytest.raises((jsonschema.ValidationError, kubernetes_validate.ValidationError), match="imagePullPolicyy"):
        tfjob_schema.validate_tfjob(manifest)


def test_the_operator_s_webhook_rules_catch_a_missing_tensorflow_container(tfjob_step):
    manifest = json.loads(json.dumps(tfjob_step["manifest"]))
    manifest["spec"]["tfReplicaSpecs"]["Worker"]["template"]["spec"]["containers"][0]["name"] = "trainer"
    assert tfjob_schema.webhook_problems(manifest) == ["Worker: must have at least one container with name tensorflow"]


def tfjob_step_fails(tmp_path, monkeypatch, operator, *overrides) -> str:
    """The TFJob executor's error against ``operator`` (the preset's settings and ``overrides``), in one line."""
    from tfx.types import standard_artifacts
    from tfx.utils import json_utils

    config = engines.engine_custom_config(preset("tfjob", *overrides).kubeflow.training, "registry/image:1",
                                          "chicago-taxi")
    model, model_run = standard_artifacts.Model(), standard_artifacts.ModelRun()
    model.uri, model_run.uri = str(tmp_path / "model"), str(tmp_path / "model_run")
    monkeypatch.setattr(tfjob_executor.Executor, "poll_seconds", 0.05)
    monkeypatch.setenv("KUBECONFIG", operator.kubeconfig)
    with pytest.raises(tfjob_executor.TFJobFailedError) as error:
        tfjob_executor.Executor().Do({}, {"model": [model], "model_run": [model_run]},
                                     {"custom_config": json_utils.dumps(config)})
    assert "\n" not in str(error.value)
    return str(error.value)


def test_a_tfjob_that_outlives_its_timeout_is_deleted_and_named(tmp_path, monkeypatch):
    with FakeTFJobOperator(str(tmp_path / "api"), script=[("Running", "TFJob is running.")]) as operator:
        message = tfjob_step_fails(tmp_path, monkeypatch, operator, "kubeflow.training.tfjob.timeout_seconds=1")
    name = operator.created[0]["metadata"]["name"]
    assert message == (f"TFJob kubeflow/{name} did not finish within 1 s (kubeflow.training.tfjob.timeout_seconds); "
                       f"last state: Running (TFJob is running.)")
    method, path, _ = operator.requests[-1]
    assert (method, path.split("?")[0]) == ("DELETE", f"/apis/kubeflow.org/v1/namespaces/kubeflow/tfjobs/{name}")


def test_the_wait_logs_each_change_of_state_in_words(tmp_path, caplog, monkeypatch):
    script = [("Created", "TFJob x is created."), ("Created", "TFJob x is created."), ("Running", "TFJob x is running."),
              ("Succeeded", "TFJob x successfully completed.")]
    with FakeTFJobOperator(str(tmp_path), script=script) as operator:
        monkeypatch.setenv("KUBECONFIG", operator.kubeconfig)
        client = tfjob_executor.TFJobClient("ml")
        client.create({"metadata": {"name": "x", "namespace": "ml"}, "spec": {}})
        with caplog.at_level(logging.INFO, logger=tfjob_executor.__name__):
            condition, _ = tfjob_executor.wait_for_tfjob(client, "x", timeout=30, poll=0.01)
    assert condition["type"] == "Succeeded"
    said = [r.getMessage() for r in caplog.records]
    assert said == ["TFJob ml/x: Created (TFJob x is created.)", "TFJob ml/x: Running (TFJob x is running.)",
                    "TFJob ml/x: Succeeded (TFJob x successfully completed.)"]


def test_a_status_read_that_fails_is_tried_again(tmp_path, caplog, monkeypatch):
    script = [("HTTP 503", "the server is restarting"), ("Succeeded", "TFJob x successfully completed.")]
    with FakeTFJobOperator(str(tmp_path), script=script) as operator:
        monkeypatch.setenv("KUBECONFIG", operator.kubeconfig)
        client = tfjob_executor.TFJobClient("ml")
        client.create({"metadata": {"name": "x", "namespace": "ml"}, "spec": {}})
        condition, _ = tfjob_executor.wait_for_tfjob(client, "x", timeout=30, poll=0.01)
    assert condition["type"] == "Succeeded"
    assert "reading TFJob ml/x failed (503 Service Unavailable: the server is restarting); trying again" in caplog.text


@pytest.mark.parametrize("code, message, hint", [
    (403, 'tfjobs.kubeflow.org is forbidden: User "system:serviceaccount:kubeflow:pipeline-runner" cannot create '
          'resource "tfjobs" in API group "kubeflow.org" in the namespace "kubeflow"',
     "the step's service account needs the RBAC of `python -m components.training.tfjob rbac --namespace kubeflow`"),
    (404, "the server could not find the requested resource", "is the Kubeflow Training Operator (its TFJob CRD) "
                                                              "installed?"),
])
def test_a_refused_tfjob_fails_the_step_in_one_line_saying_what_to_do(tmp_path, monkeypatch, code, message, hint):
    with FakeTFJobOperator(str(tmp_path / "api"), refuse_create=(code, message)) as operator:
        error = tfjob_step_fails(tmp_path, monkeypatch, operator)
    assert error.startswith("cannot create TFJob kubeflow/chicago-taxi-") and message in error and error.endswith(hint)


def test_a_tfjob_that_succeeds_without_the_chiefs_model_fails_the_step(tmp_path, monkeypatch):
    with FakeTFJobOperator(str(tmp_path / "api"), script=[("Succeeded", "TFJob done.")]) as operator:
        error = tfjob_step_fails(tmp_path, monkeypatch, operator)
    name = operator.created[0]["metadata"]["name"]
    assert error == (f"TFJob kubeflow/{name} succeeded, but its chief exported no model into "
                     f"{tmp_path / 'model' / 'Format-Serving'}")


def test_replica_counts_are_described_in_words():
    status = {"conditions": [{"type": "Created", "status": "True"}, {"type": "Running", "status": "True"}],
              "replicaStatuses": {"Worker": {"active": 1}, "Chief": {"succeeded": 1}}}
    assert tfjob_executor.describe(status) == "Running; Chief: 1 succeeded; Worker: 1 active"


@pytest.mark.parametrize("prefix, name", [
    ("chicago-taxi", "chicago-taxi-1203091500ab12"),
    ("Chicago_Taxi", "chicago-taxi-1203091500ab12"),
    ("2024-sales", "tfx-2024-sales-1203091500ab12"),
    ("a-very-long-pipeline-name-that-goes-on-and-on", "a-very-long-pipeline-name-1203091500ab12"),
])
def test_tfjob_names_are_dns_labels_short_enough_for_their_pods(prefix, name):
    assert tfjob.job_name(prefix, "1203091500ab12") == name and len(name) <= tfjob.MAX_NAME_LENGTH
    assert all(tfjob_schema.DNS_1035_LABEL.fullmatch(pod) and len(pod) <= 63
               for pod in tfjob.replica_pod_names(name, 100))


# -- RBAC ---------------------------------------------------------------------------------------------------

def test_the_rbac_validates_strictly_and_grants_exactly_what_the_step_calls(capsys):
    assert tfjob.main(["rbac", "--namespace", "ml-training", "--service-account", "pipeline-runner"]) == 0
    objects = list(yaml.safe_load_all(capsys.readouterr().out))
    for obj in objects:
        kubernetes_validate.validate(obj, tfjob_schema.KUBERNETES_VERSION, strict=True)
    role, binding = objects
    assert role["metadata"]["namespace"] == binding["metadata"]["namespace"] == "ml-training"
    assert {(g, r, v) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"]
            for v in rule["verbs"]} == {("kubeflow.org", "tfjobs", verb) for verb in ("create", "get", "delete")} | {
        ("", "pods/log", "get")}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "pipeline-runner", "namespace": "kubeflow"}]
    assert binding["roleRef"]["name"] == role["metadata"]["name"]


def test_the_rbac_command_refuses_a_name_kubernetes_cannot_take_in_one_line(capsys):
    with pytest.raises(SystemExit) as exit_:
        tfjob.main(["rbac", "--namespace", "ML_Training"])
    assert exit_.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].endswith(
        "--namespace: 'ML_Training' is not a Kubernetes name (lowercase letters, digits and '-')")


# -- TF_CONFIG roles ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("tf_config, role, chief", [
    ({"cluster": {"chief": ["a:1"], "worker": ["b:1"]}, "task": {"type": "chief", "index": 0},
      "environment": "cloud"}, "chief-0", True),
    ({"cluster": {"chief": ["a:1"], "worker": ["b:1"]}, "task": {"type": "worker", "index": 0}}, "worker-0", False),
    ({"cluster": {"chief": ["a:1"], "worker": ["b:1", "c:1"]}, "task": {"type": "worker", "index": 1, "trial": "1"},
      "job": {"worker_pool_specs": [{"replica_count": 1}, {"replica_count": 2}]}, "environment": "cloud"},
     "worker-1", False),   # Vertex AI's own keys beside TensorFlow's
    ({"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 0}}, "worker-0", True),
    ({"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 1}}, "worker-1", False),
])
def test_the_chief_is_tensorflow_s_chief(tf_config, role, chief):
    replica = launcher.replica_from_tf_config(json.dumps(tf_config))
    assert (replica.name, replica.is_chief) == (role, chief)


def test_no_cluster_means_no_engine_and_a_broken_tf_config_is_a_clear_error():
    assert launcher.replica_from_tf_config(None) is None
    assert launcher.replica_from_tf_config('{"cluster": {}}') is None
    with pytest.raises(launcher.WorkerFailedError, match="TF_CONFIG is not a TensorFlow cluster configuration"):
        launcher.replica_from_tf_config('{"cluster": {"worker": ["a:1"]}}')


def test_a_worker_replica_returns_once_the_chiefs_model_is_there(tmp_path):
    import threading

    serving = tmp_path / "model" / "Format-Serving"
    replica = launcher.replica_from_tf_config('{"cluster": {"chief": ["a:1"], "worker": ["b:1"]}, '
                                              '"task": {"type": "worker", "index": 0}}')

    def chief_exports():
        serving.mkdir(parents=True)
        (serving / "saved_model.pb").write_bytes(b"")

    timer = threading.Timer(0.5, chief_exports)
    timer.start()
    launcher.wait_for_chief_export(str(serving), replica, "run/workers", timeout=30)
    timer.join()


def test_a_worker_replica_without_the_chiefs_model_fails_naming_where_to_look(tmp_path):
    replica = launcher.Replica("worker", 1, {"chief": ["a:1"], "worker": ["b:1", "c:1"]})
    with pytest.raises(launcher.WorkerFailedError, match=r"replica worker-1 trained, but the chief's model did not "
                                                         r"appear in .* within 0 s: see the chief's log in run/workers"):
        launcher.wait_for_chief_export(str(tmp_path / "model"), replica, "run/workers", timeout=0.1)
