"""serving/k8s.py: the Kubernetes and KServe manifests, validated offline.

* Kubernetes objects: against the API's own schemas for Kubernetes KUBERNETES_VERSION, with
  kubernetes-validate in strict mode (it ships the schemas; an unknown field fails, as
  `kubectl apply`'s default server-side field validation would).
* InferenceServices: against KServe's own API types, as the models its Python SDK generates from
  KServe's OpenAPI spec describe them (the kserve wheel from PyPI, pinned and sha256-checked, read
  without installing it: tests/support/registry_schemas.py). Strict, as the API server's strict field
  validation is: a field no type lists fails, a scalar must have its type, a required field must be
  there; the Kubernetes types inside (ObjectMeta, ResourceRequirements, ...) are checked with
  kubernetes-validate's strict schemas for KUBERNETES_VERSION. The CRD's CEL rules
  (x-kubernetes-validations), enums and list-type uniqueness are not checked.
* Consistency: what the manifests say agrees with serving/options.py, the config and models.config.
"""
import argparse
import copy
import os
import re
import stat

import jsonschema
import kubernetes_validate
import pytest
import yaml
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from pipeline import serving_files
from pipeline.config import ConfigError, load_config
from serving import k8s, k8s_log_sink, log_sink
from serving.options import (BATCHING_PARAMETERS_FILE, CANARY, CONTAINER_CONFIG_DIR, GRPC_PORT, METRICS_PATH,
                             MODEL_CONFIG_FILE, MONITORING_CONFIG_FILE, REST_PORT, STABLE)
from tests.support import registry_schemas
from tfxp.files import is_remote

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KUBEFLOW_CONFIG = os.path.join(REPO, k8s.PRESET_CONFIG)
KUBERNETES_VERSION = "1.30.0"
KUBERNETES_FILES = (k8s.DEPLOYMENT_FILE, k8s.SERVICE_FILE, k8s.HPA_FILE, k8s.PDB_FILE)
KSERVE_FILES = (k8s.INFERENCE_SERVICE_FILE, k8s.CANARY_INFERENCE_SERVICE_FILE)
CLAIM, NAMESPACE, SERVICE_ACCOUNT = "pipeline-models", "ml-serving", "tf-serving-reader"
SINK_FILES = (k8s_log_sink.DEPLOYMENT_FILE, k8s_log_sink.SERVICE_FILE)
LOG_CLAIM, LOG_PREFIX = "request-logs", "/var/log/tfxp/chicago_taxi"

DNS_1035_LABEL = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
DNS_1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")


def kubeflow_config(*overrides):
    # The preset's schema_path is the image's; the repository's copy is the same file.
    return load_config(KUBEFLOW_CONFIG, ["schema_path=pipeline/schema/schema.pbtxt", *overrides]).serving_target


def local_config(*overrides):
    """The local preset: the push dir is on this machine's disk (runs/serving_model/chicago_taxi)."""
    return load_config(None, list(overrides)).serving_target


def parse(manifests):
    return {name: yaml.safe_load(text) for name, text in manifests.items()}


def models_config(cfg, stable=1795255735, canary=1795259999):
    """models.config as `tfxp serving-config` writes it: both versions, labelled stable and canary."""
    config = model_server_config_pb2.ModelServerConfig()
    model = config.model_config_list.config.add(name=cfg.model_name, base_path=cfg.model_base_path,
                                                model_platform="tensorflow")
    model.model_version_policy.specific.versions.extend([stable, canary])
    model.version_labels[STABLE] = stable
    model.version_labels[CANARY] = canary
    return text_format.MessageToString(config)


def config_files(cfg):
    return {MODEL_CONFIG_FILE: models_config(cfg),
            BATCHING_PARAMETERS_FILE: "max_batch_size { value: 64 }\n",
            MONITORING_CONFIG_FILE: f'prometheus_config {{ enable: true path: "{METRICS_PATH}" }}\n'}


@pytest.fixture(scope="module")
def kubeflow():
    return kubeflow_config()


@pytest.fixture(scope="module")
def claimed():
    """A local push dir on a claim, in a namespace, with a service account, and its config files."""
    return local_config(f"serving.kubernetes.model_volume_claim={CLAIM}", f"serving.kubernetes.namespace={NAMESPACE}",
                        f"serving.kubernetes.service_account={SERVICE_ACCOUNT}")


@pytest.fixture(scope="module")
def kserve_validator():
    """KServe's InferenceService types (kserve from PyPI, cached outside the repository); without
    them the tests fail, saying which package could not be had from which registry."""
    try:
        return registry_schemas.kserve_inference_service_validator(KUBERNETES_VERSION)
    except registry_schemas.SchemaUnavailable as e:
        unavailable = str(e)
    pytest.fail(unavailable, pytrace=False)


def validate_kubernetes(obj):
    kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


def validate_inference_service(validator, isvc):
    validator.validate(isvc)   # metadata included, as Kubernetes' ObjectMeta
    assert DNS_1035_LABEL.fullmatch(isvc["metadata"]["name"])   # KServe's own rule (IsvcNameFmt)


def check_names_and_labels(obj):
    meta = obj["metadata"]
    name_rule = DNS_1035_LABEL if obj["kind"] in ("Service", "InferenceService") else DNS_1123_SUBDOMAIN
    assert name_rule.fullmatch(meta["name"]) and len(meta["name"]) <= 63, meta["name"]
    for key, value in meta["labels"].items():
        assert LABEL_VALUE.fullmatch(value) and len(value) <= 63, (key, value)


def container(manifests):
    (only,) = manifests[k8s.DEPLOYMENT_FILE]["spec"]["template"]["spec"]["containers"]
    return only


def port_number(ctr, port):
    return port if isinstance(port, int) else {p["name"]: p["containerPort"] for p in ctr["ports"]}[port]


# -- the committed files -------------------------------------------------------------------------------
def test_committed_manifests_are_the_kubeflow_presets_rendering(kubeflow):
    committed = {}
    for root, _, files in os.walk(k8s.K8S_DIR):
        for name in files:
            path = os.path.join(root, name)
            with open(path) as f:
                committed[os.path.relpath(path, k8s.K8S_DIR).replace(os.sep, "/")] = f.read()
    assert committed == k8s.render_manifests(kubeflow), f"serving/k8s/ is stale: {k8s.REGENERATE}"
    assert k8s.CONFIGMAP_FILE not in committed   # release state: never committed
    for text in committed.values():
        assert text.startswith("# Generated by serving/k8s.py") and k8s.REGENERATE in text


# -- offline validation --------------------------------------------------------------------------------
@pytest.mark.parametrize("which", ["kubeflow", "claimed"])
def test_kubernetes_objects_validate_strictly(which, kubeflow, claimed):
    cfg = {"kubeflow": kubeflow, "claimed": claimed}[which]
    manifests = parse(k8s.render_manifests(cfg, config_files(cfg)))
    for name in KUBERNETES_FILES + (k8s.CONFIGMAP_FILE,):
        validate_kubernetes(manifests[name])
        check_names_and_labels(manifests[name])


def test_strict_kubernetes_validation_catches_a_misspelt_field(kubeflow):
    obj = parse(k8s.render_manifests(kubeflow))[k8s.DEPLOYMENT_FILE]
    ctr = obj["spec"]["template"]["spec"]["containers"][0]
    ctr["readinesProbe"] = ctr.pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError, match="readinesProbe"):
        validate_kubernetes(obj)


@pytest.mark.parametrize("which", ["kubeflow", "claimed"])
def test_inference_services_validate_against_kserves_types(which, kubeflow, claimed, kserve_validator):
    cfg = {"kubeflow": kubeflow, "claimed": claimed}[which]
    manifests = parse(k8s.render_manifests(cfg, canary_version="1795259999"))
    for name in KSERVE_FILES:
        validate_inference_service(kserve_validator, manifests[name])
        check_names_and_labels(manifests[name])


@pytest.mark.parametrize("path, typo", [(("spec", "predictor"), "canaryTraficPercent"),
                                        (("spec", "predictor", "model"), "storageURI"),
                                        (("spec", "predictor", "logger"), "urll"),
                                        (("spec",), "predicter")])
def test_a_misspelt_inference_service_field_fails(kubeflow, kserve_validator, path, typo):
    isvc = parse(k8s.render_manifests(kubeflow))[k8s.CANARY_INFERENCE_SERVICE_FILE]
    kserve_validator.validate(isvc)
    node = isvc
    for key in path:
        node = node[key]
    node[typo] = next(iter(node.values()))
    with pytest.raises(jsonschema.ValidationError, match=typo) as error:
        kserve_validator.validate(isvc)
    assert list(error.value.absolute_path) == [*path, typo]
    assert [list(e.absolute_path) for e in kserve_validator.iter_errors(isvc)] == [[*path, typo]]


@pytest.mark.parametrize("change, where, message", [
    # A Kubernetes type inside a KServe one: its strict schema applies.
    (lambda isvc: isvc["spec"]["predictor"]["model"]["resources"].update(requets={"cpu": "1"}),
     ["spec", "predictor", "model", "resources"], "requets"),
    (lambda isvc: isvc["metadata"].update(label={"a": "b"}), ["metadata"], "label"),
    # Scalars have their types.
    (lambda isvc: isvc["spec"]["predictor"].update(minReplicas="2"), ["spec", "predictor", "minReplicas"],
     "not of type integer"),
    (lambda isvc: isvc["spec"]["predictor"]["model"].update(storageUri=["gs://a"]),
     ["spec", "predictor", "model", "storageUri"], "not of type string"),
    # Required fields, and the API it is served under.
    (lambda isvc: isvc["spec"].pop("predictor"), ["spec"], "'predictor' is a required property"),
    (lambda isvc: isvc.update(apiVersion="serving.kserve.io/v1alpha1"), [], "is not serving.kserve.io/v1beta1"),
])
def test_a_wrong_inference_service_fails(kubeflow, kserve_validator, change, where, message):
    isvc = parse(k8s.render_manifests(kubeflow))[k8s.CANARY_INFERENCE_SERVICE_FILE]
    change(isvc)
    errors = list(kserve_validator.iter_errors(isvc))
    assert len(errors) == 1, [str(e) for e in errors]
    assert list(errors[0].absolute_path)[:len(where)] == where and message in errors[0].message, errors[0].message


# -- consistency -----------------------------------------------------------------------------------------
def test_the_server_runs_the_configs_flags_on_the_configmaps_files(kubeflow):
    cfg = kubeflow
    manifests = parse(k8s.render_manifests(cfg, config_files(cfg)))
    ctr, pod = container(manifests), manifests[k8s.DEPLOYMENT_FILE]["spec"]["template"]["spec"]
    assert ctr["image"] == cfg.options.image
    assert ctr["args"] == cfg.options.server_args(CONTAINER_CONFIG_DIR)
    (mount,) = [m for m in ctr["volumeMounts"] if m["mountPath"] == CONTAINER_CONFIG_DIR]
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    configmap = manifests[k8s.CONFIGMAP_FILE]
    assert volume["configMap"]["name"] == configmap["metadata"]["name"] and mount["readOnly"]
    assert "subPath" not in mount   # a subPath mount would never see a release
    # Every file a flag names is in the ConfigMap.
    named = [arg.split("=", 1)[1] for arg in ctr["args"] if "=" + CONTAINER_CONFIG_DIR + "/" in arg]
    assert sorted(path[len(CONTAINER_CONFIG_DIR) + 1:] for path in named) == sorted(configmap["data"])


def test_ports_probes_and_metrics_name_the_model_and_the_ports(kubeflow):
    cfg = kubeflow
    manifests = parse(k8s.render_manifests(cfg, config_files(cfg)))
    ctr = container(manifests)
    assert {p["name"]: p["containerPort"] for p in ctr["ports"]} == {"grpc": GRPC_PORT, "http": REST_PORT}
    assert f"--port={GRPC_PORT}" in ctr["args"] and f"--rest_api_port={REST_PORT}" in ctr["args"]
    service = manifests[k8s.SERVICE_FILE]["spec"]
    assert [(p["name"], p["port"], port_number(ctr, p["targetPort"]), p["appProtocol"]) for p in service["ports"]] == [
        ("grpc", GRPC_PORT, GRPC_PORT, "grpc"), ("http", REST_PORT, REST_PORT, "http")]
    # models.config names the model the probes ask for.
    config = text_format.Parse(manifests[k8s.CONFIGMAP_FILE]["data"][MODEL_CONFIG_FILE],
                               model_server_config_pb2.ModelServerConfig())
    (model,) = config.model_config_list.config
    for probe in ("readinessProbe", "startupProbe"):
        get = ctr[probe]["httpGet"]
        assert get["path"] == f"/v1/models/{model.name}" == f"/v1/models/{cfg.model_name}"
        assert port_number(ctr, get["port"]) == REST_PORT
    assert port_number(ctr, ctr["livenessProbe"]["tcpSocket"]["port"]) == GRPC_PORT
    startup = ctr["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= cfg.options.infra_validation.max_loading_seconds
    annotations = manifests[k8s.DEPLOYMENT_FILE]["spec"]["template"]["metadata"]["annotations"]
    assert annotations == {"prometheus.io/scrape": "true", "prometheus.io/path": METRICS_PATH,
                           "prometheus.io/port": str(REST_PORT)}


def test_a_remote_push_dir_is_read_directly_and_is_the_kserve_storage_uri(kubeflow):
    cfg = kubeflow
    manifests = parse(k8s.render_manifests(cfg, config_files(cfg)))
    config = text_format.Parse(manifests[k8s.CONFIGMAP_FILE]["data"][MODEL_CONFIG_FILE],
                               model_server_config_pb2.ModelServerConfig())
    assert config.model_config_list.config[0].base_path == cfg.model_base_path
    assert cfg.model_base_path.startswith("gs://")
    pod = manifests[k8s.DEPLOYMENT_FILE]["spec"]["template"]["spec"]
    assert [v for v in pod["volumes"] if "persistentVolumeClaim" in v] == []
    for name in KSERVE_FILES:
        model = manifests[name]["spec"]["predictor"]["model"]
        assert model["storageUri"] == cfg.model_base_path
        assert model["modelFormat"]["name"] == "tensorflow"
        # KServe's TF runtime image at the tag of the configured one (the TF the model is trained with).
        assert f"{k8s.KSERVE_TF_RUNTIME_IMAGE}:{model['runtimeVersion']}" == cfg.options.image
        assert model["resources"] == container(manifests)["resources"]
    # KServe names the model after the InferenceService: the preset's pipeline_name is a valid name.
    assert manifests[k8s.INFERENCE_SERVICE_FILE]["metadata"]["name"] == cfg.model_name


def test_a_local_push_dir_without_a_claim_is_a_clear_error():
    cfg = local_config()
    assert not is_remote(cfg.model_base_path)
    with pytest.raises(ValueError, match=r"serving\.kubernetes\.model_volume_claim") as error:
        k8s.render_manifests(cfg)
    assert cfg.model_base_path in str(error.value)


def test_a_claim_is_mounted_read_only_at_the_push_dirs_own_path(claimed):
    cfg = claimed
    manifests = parse(k8s.render_manifests(cfg, config_files(cfg)))
    ctr, pod = container(manifests), manifests[k8s.DEPLOYMENT_FILE]["spec"]["template"]["spec"]
    (volume,) = [v for v in pod["volumes"] if "persistentVolumeClaim" in v]
    assert volume["persistentVolumeClaim"] == {"claimName": CLAIM, "readOnly": True}
    (mount,) = [m for m in ctr["volumeMounts"] if m["name"] == volume["name"]]
    config = text_format.Parse(manifests[k8s.CONFIGMAP_FILE]["data"][MODEL_CONFIG_FILE],
                               model_server_config_pb2.ModelServerConfig())
    assert mount["mountPath"] == config.model_config_list.config[0].base_path == cfg.model_base_path
    assert mount["readOnly"] is True
    assert pod["serviceAccountName"] == SERVICE_ACCOUNT
    for name in KSERVE_FILES:
        predictor = manifests[name]["spec"]["predictor"]
        assert predictor["model"]["storageUri"] == f"pvc://{CLAIM}"
        assert predictor["serviceAccountName"] == SERVICE_ACCOUNT


def test_a_namespace_is_set_on_every_object(claimed, kubeflow):
    rendered = k8s.render_manifests(claimed, config_files(claimed))
    for name, obj in parse(rendered).items():
        assert obj["metadata"]["namespace"] == NAMESPACE, name
    assert f"kubectl patch isvc chicago-taxi -n {NAMESPACE} " in rendered[k8s.CANARY_INFERENCE_SERVICE_FILE]
    for name, obj in parse(k8s.render_manifests(kubeflow)).items():
        assert "namespace" not in obj["metadata"], name   # null: the kubectl context's


def test_names_labels_and_selectors_agree(kubeflow):
    manifests = parse(k8s.render_manifests(kubeflow, config_files(kubeflow)))
    deployment = manifests[k8s.DEPLOYMENT_FILE]
    selector = deployment["spec"]["selector"]["matchLabels"]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert selector.items() <= pod_labels.items()
    assert manifests[k8s.SERVICE_FILE]["spec"]["selector"] == selector
    assert manifests[k8s.PDB_FILE]["spec"]["selector"]["matchLabels"] == selector
    hpa = manifests[k8s.HPA_FILE]["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                     "name": deployment["metadata"]["name"]}
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (kubeflow.options.kubernetes.min_replicas,
                                                        kubeflow.options.kubernetes.max_replicas)
    assert hpa["metrics"][0]["resource"]["target"]["averageUtilization"] == \
        kubeflow.options.kubernetes.target_cpu_utilization
    assert manifests[k8s.PDB_FILE]["spec"]["minAvailable"] == kubeflow.options.kubernetes.min_available
    assert "replicas" not in deployment["spec"]   # the HPA owns it
    for obj in manifests.values():
        labels = obj["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == "chicago-taxi"
        assert labels["app.kubernetes.io/part-of"] == k8s.PART_OF
    # KServe's pods carry the InferenceService's labels: the plain Service must not select them, and
    # the plain Service must not take the name KServe gives its own.
    isvc = manifests[k8s.INFERENCE_SERVICE_FILE]
    assert not selector.items() <= isvc["metadata"]["labels"].items()
    assert manifests[k8s.SERVICE_FILE]["metadata"]["name"] != isvc["metadata"]["name"]


def test_pods_run_as_non_root(kubeflow):
    manifests = parse(k8s.render_manifests(kubeflow))
    pod = manifests[k8s.DEPLOYMENT_FILE]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    assert container(manifests)["securityContext"]["allowPrivilegeEscalation"] is False
    assert pod["terminationGracePeriodSeconds"] > k8s.PRE_STOP_SECONDS


@pytest.mark.parametrize("pipeline_name, name", [("chicago_taxi", "chicago-taxi"), ("Taxi-2", "taxi-2")])
def test_names_derive_from_pipeline_name(pipeline_name, name):
    cfg = kubeflow_config(f"pipeline_name={pipeline_name}")
    manifests = parse(k8s.render_manifests(cfg))
    assert manifests[k8s.INFERENCE_SERVICE_FILE]["metadata"]["name"] == name
    assert manifests[k8s.DEPLOYMENT_FILE]["metadata"]["name"] == name + k8s.TF_SERVING_SUFFIX
    # TF Serving's model name stays pipeline_name.
    assert container(manifests)["readinessProbe"]["httpGet"]["path"] == f"/v1/models/{pipeline_name}"


@pytest.mark.parametrize("pipeline_name", ["9lives", "taxi_", "t" * (k8s.MAX_NAME_LENGTH + 1)])
def test_a_pipeline_name_that_cannot_name_objects_is_a_clear_error(pipeline_name):
    with pytest.raises(ValueError, match="cannot name Kubernetes objects"):
        k8s.render_manifests(kubeflow_config(f"pipeline_name={pipeline_name}"))


# -- the canary ---------------------------------------------------------------------------------------------
def test_the_canary_is_the_inference_service_with_traffic_and_a_version(kubeflow, kserve_validator):
    first = parse(k8s.render_manifests(kubeflow, canary_version="1795255735"))
    second = parse(k8s.render_manifests(kubeflow, canary_version=1795259999))
    base, canary = first[k8s.INFERENCE_SERVICE_FILE], first[k8s.CANARY_INFERENCE_SERVICE_FILE]
    predictor = copy.deepcopy(canary["spec"]["predictor"])
    assert predictor.pop("canaryTrafficPercent") == kubeflow.options.kubernetes.canary_traffic_percent
    assert predictor.pop("annotations") == {k8s.MODEL_VERSION_ANNOTATION: "1795255735"}
    assert {**canary, "spec": {"predictor": predictor}} == base
    # A new version changes the predictor: KServe starts a new revision for it.
    assert second[k8s.CANARY_INFERENCE_SERVICE_FILE]["spec"]["predictor"]["annotations"] == {
        k8s.MODEL_VERSION_ANNOTATION: "1795259999"}
    assert base["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Serverless"
    # Rollback (0) and promotion (no canaryTrafficPercent) are valid InferenceServices too.
    rollback = copy.deepcopy(canary)
    rollback["spec"]["predictor"]["canaryTrafficPercent"] = 0
    kserve_validator.validate(rollback)
    promoted = copy.deepcopy(canary)
    del promoted["spec"]["predictor"]["canaryTrafficPercent"]
    kserve_validator.validate(promoted)


def test_the_committed_canary_names_no_version(kubeflow):
    canary = parse(k8s.render_manifests(kubeflow))[k8s.CANARY_INFERENCE_SERVICE_FILE]
    assert canary["spec"]["predictor"]["annotations"] == {k8s.MODEL_VERSION_ANNOTATION: k8s.NEWEST}


@pytest.mark.parametrize("version", ["latest", "12a", "-3", ""])
def test_a_canary_version_that_is_no_version_is_an_error(kubeflow, version):
    with pytest.raises(ValueError, match="canary_version"):
        k8s.render_manifests(kubeflow, canary_version=version)


# -- errors, files, the command ---------------------------------------------------------------------------
def test_the_configmap_needs_every_file_the_flags_name(kubeflow):
    files = config_files(kubeflow)
    del files[BATCHING_PARAMETERS_FILE]
    with pytest.raises(ValueError, match=BATCHING_PARAMETERS_FILE):
        k8s.render_manifests(kubeflow, files)
    without_batching = kubeflow_config("serving.enable_batching=false")
    assert k8s.config_file_names(without_batching) == [MODEL_CONFIG_FILE, MONITORING_CONFIG_FILE]
    assert k8s.CONFIGMAP_FILE in k8s.render_manifests(without_batching, files)


def test_a_disruption_budget_that_blocks_every_drain_is_an_error():
    cfg = kubeflow_config("serving.kubernetes.min_available=2", "serving.kubernetes.min_replicas=2")
    with pytest.raises(ValueError, match=r"serving\.kubernetes\.min_available"):
        k8s.render_manifests(cfg)


def test_write_manifests_writes_every_file_whole(kubeflow, tmp_path):
    out = tmp_path / "k8s"
    paths = k8s.write_manifests(kubeflow, str(out), config_files(kubeflow))
    expected = k8s.render_manifests(kubeflow, config_files(kubeflow))
    assert sorted(os.path.relpath(p, out) for p in paths) == sorted(expected)
    for name, text in expected.items():
        path = out / name
        assert path.read_text() == text
        assert stat.S_IMODE(path.stat().st_mode) == 0o644
    leftovers = [name for _, _, files in os.walk(out) for name in files if name.endswith(".tmp")]
    assert leftovers == []


def test_the_command_renders_a_config_and_its_config_files(tmp_path):
    config_dir = tmp_path / "serving_config"
    config_dir.mkdir()
    cfg = kubeflow_config()
    for name, text in config_files(cfg).items():
        (config_dir / name).write_text(text)
    out = tmp_path / "out"
    assert serving_files.main(["k8s", "--config", KUBEFLOW_CONFIG, "--set", "schema_path=pipeline/schema/schema.pbtxt",
                     "--out", str(out), "--config-files", str(config_dir), "--canary-version", "42"]) == 0
    assert (out / k8s.CONFIGMAP_FILE).read_text() == k8s.render_manifests(cfg, config_files(cfg), "42")[
        k8s.CONFIGMAP_FILE]
    assert "model-version: '42'" in (out / k8s.CANARY_INFERENCE_SERVICE_FILE).read_text()
    assert serving_files.main(["k8s", "--config", os.path.join(REPO, "pipeline", "configs", "local.yaml"), "--out", str(out)]) == 2


@pytest.mark.parametrize("key, value", [("namespace", "ML_Serving"), ("service_account", "Reader"),
                                        ("model_volume_claim", "models/v1")])
def test_a_kubernetes_name_in_the_config_that_is_no_name_is_a_clear_error_when_the_config_loads(key, value):
    with pytest.raises(ConfigError, match=rf"serving\.kubernetes\.{key} must be a Kubernetes name"):
        local_config(f"serving.kubernetes.model_volume_claim={CLAIM}", f"serving.kubernetes.{key}={value}")


# -- the payload logger and the log sink -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def logged_on_claim():
    """A local push dir and request logs, each on a claim, in a namespace."""
    return local_config(f"serving.kubernetes.model_volume_claim={CLAIM}", f"serving.kubernetes.namespace={NAMESPACE}",
                        "serving.kubernetes.payload_logger.enabled=true",
                        f"serving.kubernetes.payload_logger.filename_prefix={LOG_PREFIX}",
                        f"serving.kubernetes.payload_logger.volume_claim={LOG_CLAIM}")


def sink_container(manifests):
    (only,) = manifests[k8s_log_sink.DEPLOYMENT_FILE]["spec"]["template"]["spec"]["containers"]
    return only


def sink_flags(ctr):
    parser = argparse.ArgumentParser()
    log_sink.add_log_sink_arguments(parser)
    return parser.parse_args(ctr["args"])   # the pod's flags are tfxp log-sink's


@pytest.mark.parametrize("which", ["kubeflow", "logged_on_claim"])
def test_the_payload_logger_sends_to_the_sink_and_both_validate(which, kubeflow, logged_on_claim, kserve_validator):
    cfg = {"kubeflow": kubeflow, "logged_on_claim": logged_on_claim}[which]
    manifests = parse(k8s.render_manifests(cfg))
    for name in SINK_FILES:
        validate_kubernetes(manifests[name])
        check_names_and_labels(manifests[name])
    service = manifests[k8s_log_sink.SERVICE_FILE]
    namespace = cfg.options.kubernetes.namespace
    host = service["metadata"]["name"] + (f".{namespace}.svc.cluster.local" if namespace else "")
    for name in KSERVE_FILES:
        # KServe's LoggerSpec has mode and url (the strict check fails on a field it lacks).
        validate_inference_service(kserve_validator, manifests[name])
        assert manifests[name]["spec"]["predictor"]["logger"] == {"mode": "all", "url": f"http://{host}/"}
    # The url's port (80, none named) reaches the sink's container port.
    ctr = sink_container(manifests)
    (port,) = service["spec"]["ports"]
    assert port["port"] == 80 and port_number(ctr, port["targetPort"]) == log_sink.DEFAULT_PORT
    assert sink_flags(ctr).port == log_sink.DEFAULT_PORT and sink_flags(ctr).host == "0.0.0.0"
    pod_labels = manifests[k8s_log_sink.DEPLOYMENT_FILE]["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert manifests[k8s_log_sink.DEPLOYMENT_FILE]["spec"]["selector"]["matchLabels"] == service["spec"]["selector"]
    # Neither Service selects the other's pods (nor KServe's).
    tf_serving_pods = manifests[k8s.DEPLOYMENT_FILE]["spec"]["template"]["metadata"]["labels"]
    assert not service["spec"]["selector"].items() <= tf_serving_pods.items()
    assert not manifests[k8s.SERVICE_FILE]["spec"]["selector"].items() <= pod_labels.items()


def test_the_sink_runs_tfxp_from_the_project_image_with_the_configs_files(kubeflow):
    manifests = parse(k8s.render_manifests(kubeflow))
    deployment = manifests[k8s_log_sink.DEPLOYMENT_FILE]
    ctr = sink_container(manifests)
    assert ctr["image"] == load_config(KUBEFLOW_CONFIG, ["schema_path=pipeline/schema/schema.pbtxt"]).image
    assert ctr["command"] == ["tfxp", "log-sink"]
    flags, logger, files = sink_flags(ctr), kubeflow.options.kubernetes.payload_logger, kubeflow.options.request_log
    assert flags.filename_prefix == logger.filename_prefix and flags.filename_prefix.startswith("gs://")
    assert (flags.max_file_bytes, flags.max_file_seconds, flags.max_total_bytes, flags.queue_size) == (
        files.max_file_bytes, files.max_file_seconds, files.max_total_bytes, files.queue_size)
    assert flags.pair_timeout_seconds == logger.pair_timeout_seconds
    # gs://: files are written in an emptyDir spool, then uploaded; the spool holds the writer's bound.
    (mount,) = ctr["volumeMounts"]
    (volume,) = deployment["spec"]["template"]["spec"]["volumes"]
    assert mount["mountPath"] == flags.spool_dir and volume["name"] == mount["name"]
    assert int(volume["emptyDir"]["sizeLimit"]) >= files.max_total_bytes
    # One process pairs requests with responses: one replica, never two at once.
    assert deployment["spec"]["replicas"] == 1 and deployment["spec"]["strategy"] == {"type": "Recreate"}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert ctr[probe]["httpGet"] == {"path": log_sink.HEALTH_PATH, "port": "http"}
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert (annotations["prometheus.io/path"], annotations["prometheus.io/port"]) == (
        log_sink.METRICS_PATH, str(log_sink.DEFAULT_PORT))
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True and ctr["securityContext"]["allowPrivilegeEscalation"] is False


def test_a_local_prefix_is_written_on_its_claim(logged_on_claim):
    manifests = parse(k8s.render_manifests(logged_on_claim))
    ctr = sink_container(manifests)
    pod = manifests[k8s_log_sink.DEPLOYMENT_FILE]["spec"]["template"]["spec"]
    (volume,) = pod["volumes"]
    (mount,) = ctr["volumeMounts"]
    assert volume["persistentVolumeClaim"] == {"claimName": LOG_CLAIM} and mount["name"] == volume["name"]
    assert mount["mountPath"] == os.path.dirname(LOG_PREFIX) and not mount.get("readOnly")
    assert sink_flags(ctr).filename_prefix == LOG_PREFIX
    assert pod["securityContext"]["fsGroup"] == pod["securityContext"]["runAsGroup"]   # the claim is writable
    for obj in manifests.values():
        assert obj["metadata"]["namespace"] == NAMESPACE


def test_without_the_payload_logger_there_is_no_logger_and_no_sink():
    cfg = kubeflow_config("serving.kubernetes.payload_logger.enabled=false")
    manifests = parse(k8s.render_manifests(cfg))
    assert not set(SINK_FILES) & set(manifests)
    for name in KSERVE_FILES:
        assert "logger" not in manifests[name]["spec"]["predictor"]


@pytest.mark.parametrize("overrides, says", [
    ([], "payload_logger.enabled needs serving.kubernetes.payload_logger.filename_prefix"),
    (["serving.kubernetes.payload_logger.filename_prefix=s3://bucket/logs/taxi"], "must be gs://"),
    (["serving.kubernetes.payload_logger.filename_prefix=gs://bucket/logs/"], "must end in a file name part"),
    (["serving.kubernetes.payload_logger.filename_prefix=/var/log/taxi"], "on serving.kubernetes.payload_logger.volume_claim"),
    (["serving.kubernetes.payload_logger.filename_prefix=logs/taxi",
      f"serving.kubernetes.payload_logger.volume_claim={LOG_CLAIM}"], "must be absolute"),
    (["serving.kubernetes.payload_logger.filename_prefix=gs://bucket/logs/taxi",
      f"serving.kubernetes.payload_logger.volume_claim={LOG_CLAIM}"], "is in a bucket"),
    (["serving.kubernetes.payload_logger.filename_prefix=/var/log/taxi",
      "serving.kubernetes.payload_logger.volume_claim=Logs"], "payload_logger.volume_claim must be a Kubernetes name"),
])
def test_a_payload_logger_that_cannot_work_is_a_clear_error_when_the_config_loads(overrides, says):
    with pytest.raises(ConfigError, match=re.escape(says)):
        local_config("serving.kubernetes.payload_logger.enabled=true", *overrides)
