"""Kubernetes and KServe manifests for the pushed model, generated from the config's ``serving:`` section.

``render_manifests(target)`` returns {file name: YAML text}; ``write_manifests`` writes them;
``python -m pipeline.serving_files k8s`` regenerates the committed copies in ``serving/k8s/`` (the Kubeflow
preset's), which a test compares with the rendering. Two ways to serve the same pushed model:

* ``*.yaml``: plain Kubernetes. A Deployment of ``serving.image`` running ``tensorflow_model_server``
  with ``serving.server_args()``: its config files (models.config, batching, monitoring) come from a
  ConfigMap mounted at CONTAINER_CONFIG_DIR (``configmap.yaml``, rendered only from given
  ``config_files``, the ones ``tfxp serving-config`` writes: it carries release state, so it is not
  committed). TF Serving polls models.config and the kubelet refreshes ConfigMap volumes, so a
  ``tfxp release`` reaches the pods without a restart. The model is read where the Pusher wrote it:
  straight from ``gs://`` (the pods' service account needs read access), or from a
  PersistentVolumeClaim mounted at the same path, so models.config's base_path holds in the pod.
  A Service, a HorizontalPodAutoscaler and a PodDisruptionBudget go with it.
* ``kserve/*.yaml``: a KServe InferenceService of the same model, and its canary form. They sit in a
  subfolder so that ``kubectl apply -f serving/k8s/`` applies the plain set only (and never both
  InferenceService forms, which name the same object).
* ``log-sink/*.yaml`` (serving.kubernetes.payload_logger): the ``tfxp log-sink`` that KServe's payload
  logger, turned on in both InferenceServices, sends every request and response to (serving/k8s_log_sink.py).

Every name, port and path comes from serving/options.py and the ServingTarget it is given. TensorFlow is
imported only to read config files from a remote (gs://) config dir.
"""
from __future__ import annotations

import math
import os
import re
from typing import Any, Dict, List, Optional, Sequence

import yaml

from serving import k8s_log_sink
from serving.k8s_names import (  # noqa: F401 (names, labels and ManifestError are used as k8s.<name> too)
    GRPC_PORT_NAME, HTTP_PORT_NAME, KSERVE_COMPONENT, MAX_NAME_LENGTH, PART_OF, PROMETHEUS_ANNOTATIONS,
    TF_SERVING_COMPONENT, TF_SERVING_SUFFIX, ManifestError, configmap_name, container_security_context, labels,
    metadata, pod_security_context, resource_name, selector, tf_serving_name)
from serving.options import (CONTAINER_CONFIG_DIR, GRPC_PORT, METRICS_PATH, MODEL_CONFIG_FILE, REST_PORT,
                             ServingTarget)
from tfxp.files import is_remote, write_atomically

SERVING_DIR = os.path.dirname(os.path.abspath(__file__))
K8S_DIR = os.path.join(SERVING_DIR, "k8s")
PRESET_CONFIG = "pipeline/configs/kubeflow.yaml"   # what the committed serving/k8s/ files are rendered from
REGENERATE = f"python -m pipeline.serving_files k8s --config {PRESET_CONFIG} --out serving/k8s"

DEPLOYMENT_FILE, SERVICE_FILE, HPA_FILE, PDB_FILE, CONFIGMAP_FILE = (
    "deployment.yaml", "service.yaml", "hpa.yaml", "pdb.yaml", "configmap.yaml")
INFERENCE_SERVICE_FILE = "kserve/inferenceservice.yaml"
CANARY_INFERENCE_SERVICE_FILE = "kserve/inferenceservice-canary.yaml"

_CONFIGMAP_KEY = re.compile(r"[-._a-zA-Z0-9]+")
CONFIGMAP_MAX_BYTES = 1024 * 1024

# The container. The tensorflow/serving image's entrypoint script adds --model_name/--model_base_path
# of its own; the binary is run directly instead (KServe's TF runtime and Kubeflow's tf-serving
# template do the same).
CONTAINER_NAME = "tensorflow-serving"
SERVER_BINARY = "/usr/bin/tensorflow_model_server"
CONFIG_VOLUME, MODEL_VOLUME = "tfserving-config", "model"
PROBE_PERIOD_SECONDS = 10
STARTUP_PROBE_PERIOD_SECONDS = 5
# tensorflow_model_server exits on SIGTERM without draining: a preStop pause keeps it serving while
# the endpoints controller takes the pod out of the Service; the grace period covers it and requests
# still in flight.
PRE_STOP_SECONDS = 10
TERMINATION_GRACE_SECONDS = 30

# KServe: the documented `predictor.model` form, TF Serving runtime (kserve-tensorflow-serving).
KSERVE_API_VERSION = "serving.kserve.io/v1beta1"
KSERVE_MODEL_FORMAT = {"name": "tensorflow", "version": "2"}
# The image KServe's TF runtime runs (`runtimeVersion` replaces only its tag, default 2.6.2: too
# old for the models this pipeline trains).
KSERVE_TF_RUNTIME_IMAGE = "tensorflow/serving"
# Canary rollouts (canaryTrafficPercent) exist in KServe's Knative mode only; "Serverless" is the
# name every release accepts (0.20 calls it "Knative" and still reads the old name).
KSERVE_DEPLOYMENT_MODE = {"serving.kserve.io/deploymentMode": "Serverless"}
# A new value of this predictor annotation changes the Knative revision template: it is what makes
# KServe start a new revision (the canary) for a model pushed under the same storageUri.
MODEL_VERSION_ANNOTATION = f"{PART_OF}/model-version"
NEWEST = "newest"   # the annotation's value when no version is named


# -- where the model is --------------------------------------------------------------------------
def model_volume_claim(target: ServingTarget) -> Optional[str]:
    """The PVC holding a local push dir (None for a remote one); a clear error when it is missing."""
    if is_remote(target.model_base_path):
        return None
    claim = target.options.kubernetes.model_volume_claim
    if not claim:
        raise ManifestError(
            f"the push dir {target.model_base_path} is local, so pods cannot read it: set "
            f"serving.kubernetes.model_volume_claim to a PersistentVolumeClaim holding its versions (mounted "
            f"read-only at that path), or push to gs:// (serving_dir)")
    return claim


def model_status_path(target: ServingTarget) -> str:
    """TF Serving's REST model status: 200 once the model is loaded, 404 for a model it does not know."""
    return f"/v1/models/{target.model_name}"


def config_file_names(target: ServingTarget) -> List[str]:
    """The files of CONTAINER_CONFIG_DIR that ``serving.server_args()`` makes the server read."""
    prefix = CONTAINER_CONFIG_DIR + "/"
    return [arg.split("=", 1)[1][len(prefix):] for arg in target.options.server_args(CONTAINER_CONFIG_DIR)
            if "=" in arg and arg.split("=", 1)[1].startswith(prefix)]


def _resources(target: ServingTarget) -> Dict[str, Dict[str, str]]:
    k8s = target.options.kubernetes
    return {"requests": {"cpu": k8s.cpu_request, "memory": k8s.memory_request},
            "limits": {"cpu": k8s.cpu_limit, "memory": k8s.memory_limit}}


# -- plain Kubernetes --------------------------------------------------------------------------------
def deployment(target: ServingTarget) -> Dict[str, Any]:
    k8s = target.options.kubernetes
    claim = model_volume_claim(target)

    def status() -> Dict[str, Any]:
        return {"httpGet": {"path": model_status_path(target), "port": HTTP_PORT_NAME}}

    # The ports open only once every model of models.config has loaded (ServerCore waits), so a slow
    # load must not count against liveness: the startup probe allows loading stable and canary, each
    # within the InfraValidator's bound.
    loading_seconds = 2 * target.options.infra_validation.max_loading_seconds
    container: Dict[str, Any] = {
        "name": CONTAINER_NAME,
        "image": target.options.image,
        "command": [SERVER_BINARY],
        "args": target.options.server_args(CONTAINER_CONFIG_DIR),
        "ports": [{"name": GRPC_PORT_NAME, "containerPort": GRPC_PORT, "protocol": "TCP"},
                  {"name": HTTP_PORT_NAME, "containerPort": REST_PORT, "protocol": "TCP"}],
        "startupProbe": {**status(), "periodSeconds": STARTUP_PROBE_PERIOD_SECONDS,
                         "failureThreshold": max(1, math.ceil(loading_seconds / STARTUP_PROBE_PERIOD_SECONDS))},
        "readinessProbe": {**status(), "periodSeconds": PROBE_PERIOD_SECONDS, "timeoutSeconds": 5,
                           "failureThreshold": 3},
        # TCP on gRPC, as Kubeflow's tf-serving template: TF Serving has no gRPC health service, and a
        # busy server may answer HTTP slowly without being dead.
        "livenessProbe": {"tcpSocket": {"port": GRPC_PORT_NAME}, "periodSeconds": 2 * PROBE_PERIOD_SECONDS,
                          "timeoutSeconds": 5, "failureThreshold": 3},
        "lifecycle": {"preStop": {"exec": {"command": ["sleep", str(PRE_STOP_SECONDS)]}}},
        "resources": _resources(target),
        "securityContext": container_security_context(),
        "volumeMounts": [{"name": CONFIG_VOLUME, "mountPath": CONTAINER_CONFIG_DIR, "readOnly": True}],
    }
    volumes: List[Dict[str, Any]] = [{"name": CONFIG_VOLUME, "configMap": {"name": configmap_name(target)}}]
    if claim:
        # At the push dir's own path: models.config's base_path is the same inside the pod. Read-only
        # on the volume too, so that the kubelet changes no ownership of the pipeline's files.
        container["volumeMounts"].append({"name": MODEL_VOLUME, "mountPath": target.model_base_path,
                                          "readOnly": True})
        volumes.append({"name": MODEL_VOLUME, "persistentVolumeClaim": {"claimName": claim, "readOnly": True}})
    pod_spec: Dict[str, Any] = {}
    if k8s.service_account:
        pod_spec["serviceAccountName"] = k8s.service_account
    pod_spec.update({
        "terminationGracePeriodSeconds": TERMINATION_GRACE_SECONDS,
        "securityContext": pod_security_context(),
        "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
                                       "whenUnsatisfiable": "ScheduleAnyway",
                                       "labelSelector": {"matchLabels": selector(target)}}],
        "containers": [container],
        "volumes": volumes,
    })
    annotations = dict(zip(PROMETHEUS_ANNOTATIONS, ("true", METRICS_PATH, str(REST_PORT))))
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(target, tf_serving_name(target), TF_SERVING_COMPONENT),
        # No `replicas`: the HorizontalPodAutoscaler owns the count (a `replicas` here would reset it
        # on every `kubectl apply`); it raises a new Deployment to min_replicas.
        "spec": {
            "selector": {"matchLabels": selector(target)},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {"metadata": {"labels": labels(target, TF_SERVING_COMPONENT), "annotations": annotations},
                         "spec": pod_spec},
        },
    }


def service(target: ServingTarget) -> Dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(target, tf_serving_name(target), TF_SERVING_COMPONENT),
        "spec": {
            "type": "ClusterIP",
            "selector": selector(target),
            "ports": [{"name": GRPC_PORT_NAME, "port": GRPC_PORT, "targetPort": GRPC_PORT_NAME, "protocol": "TCP",
                       "appProtocol": GRPC_PORT_NAME},
                      {"name": HTTP_PORT_NAME, "port": REST_PORT, "targetPort": HTTP_PORT_NAME, "protocol": "TCP",
                       "appProtocol": HTTP_PORT_NAME}],
        },
    }


def horizontal_pod_autoscaler(target: ServingTarget) -> Dict[str, Any]:
    k8s = target.options.kubernetes
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": metadata(target, tf_serving_name(target), TF_SERVING_COMPONENT),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": tf_serving_name(target)},
            "minReplicas": k8s.min_replicas,
            "maxReplicas": k8s.max_replicas,
            "metrics": [{"type": "Resource", "resource": {
                "name": "cpu", "target": {"type": "Utilization", "averageUtilization": k8s.target_cpu_utilization}}}],
        },
    }


def pod_disruption_budget(target: ServingTarget) -> Dict[str, Any]:
    k8s = target.options.kubernetes
    if k8s.min_available >= k8s.min_replicas:
        raise ManifestError(f"serving.kubernetes.min_available ({k8s.min_available}) must be below min_replicas "
                         f"({k8s.min_replicas}): else no node could ever be drained while the autoscaler "
                         f"holds the minimum")
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": metadata(target, tf_serving_name(target), TF_SERVING_COMPONENT),
        "spec": {"minAvailable": k8s.min_available, "selector": {"matchLabels": selector(target)}},
    }


def config_map(target: ServingTarget, config_files: Dict[str, str]) -> Dict[str, Any]:
    """The server's config files (``tfxp serving-config``'s models.config etc.), by file name."""
    missing = [name for name in config_file_names(target) if name not in config_files]
    if missing:
        raise ManifestError(f"the ConfigMap lacks {', '.join(missing)}: the server's flags read it from "
                         f"{CONTAINER_CONFIG_DIR} (run tfxp serving-config)")
    bad = [name for name in config_files if not _CONFIGMAP_KEY.fullmatch(name)]
    if bad:
        raise ManifestError(f"not valid ConfigMap keys (file names of letters, digits, '-', '_', '.'): {bad}")
    size = sum(len(name.encode()) + len(text.encode()) for name, text in config_files.items())
    if size > CONFIGMAP_MAX_BYTES:
        raise ManifestError(f"the config files take {size} bytes; a ConfigMap holds at most {CONFIGMAP_MAX_BYTES}")
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(target, configmap_name(target), TF_SERVING_COMPONENT),
        "data": dict(sorted(config_files.items())),
    }


# -- KServe ----------------------------------------------------------------------------------------------
def storage_uri(target: ServingTarget) -> str:
    """The push dir: KServe's storage initializer copies it (every version) to /mnt/models, where its TF
    runtime serves the newest; a local push dir is read from its claim's root instead."""
    claim = model_volume_claim(target)
    return f"pvc://{claim}" if claim else target.model_base_path


def inference_service(target: ServingTarget) -> Dict[str, Any]:
    k8s = target.options.kubernetes
    model: Dict[str, Any] = {"modelFormat": dict(KSERVE_MODEL_FORMAT)}
    if target.options.image_name == KSERVE_TF_RUNTIME_IMAGE:
        model["runtimeVersion"] = target.options.image_tag
    else:
        model["image"] = target.options.image
    model["storageUri"] = storage_uri(target)
    model["resources"] = _resources(target)
    predictor: Dict[str, Any] = {"minReplicas": k8s.min_replicas, "maxReplicas": k8s.max_replicas}
    if k8s.service_account:
        predictor["serviceAccountName"] = k8s.service_account
    predictor["model"] = model
    if k8s_log_sink.enabled(target):
        predictor["logger"] = k8s_log_sink.logger_spec(target)
    return {
        "apiVersion": KSERVE_API_VERSION,
        "kind": "InferenceService",
        # KServe's TF runtime names the model after the InferenceService (--model_name={{.Name}}).
        "metadata": metadata(target, resource_name(target), KSERVE_COMPONENT, dict(KSERVE_DEPLOYMENT_MODE)),
        "spec": {"predictor": predictor},
    }


def _check_version(version: str) -> str:
    version = str(version)
    if not version.isdigit():
        raise ManifestError(f"canary_version must be a pushed version (a number, the Pusher's version dir), "
                         f"got {version!r}")
    return version


def canary_inference_service(target: ServingTarget, canary_version: Optional[str] = None) -> Dict[str, Any]:
    """The InferenceService with canaryTrafficPercent, and the version it rolls out as an annotation.

    KServe starts a new revision only when the predictor changes, and every pod of a revision loads the
    newest version under storageUri when it starts. Naming the pushed version changes the predictor, so
    applying this after a push starts a revision serving it, which gets canaryTrafficPercent of the
    traffic while the last fully rolled-out revision keeps the rest.
    """
    isvc = inference_service(target)
    predictor = isvc["spec"]["predictor"]
    version = _check_version(canary_version) if canary_version is not None else NEWEST
    isvc["spec"]["predictor"] = {"canaryTrafficPercent": target.options.kubernetes.canary_traffic_percent,
                                 "annotations": {MODEL_VERSION_ANNOTATION: version}, **predictor}
    return isvc


# -- files -----------------------------------------------------------------------------------------------
def _header(target: ServingTarget, lines: Sequence[str]) -> str:
    text = [f"Generated by serving/k8s.py for pipeline '{target.model_name}': edit the config's serving: "
            f"section, not this file.",
            f"serving/k8s/ holds the Kubeflow preset's: {REGENERATE}", *lines]
    return "".join(f"# {line}\n".replace("# \n", "#\n") for line in text)


class _Dumper(yaml.SafeDumper):
    """yaml.safe_dump's, writing a value used twice out twice (no &anchors and *aliases)."""

    def ignore_aliases(self, data):
        return True


def _str(dumper, data):
    """Multi-line text (a ConfigMap's files) as a literal block, as it reads in the file."""
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _str)


def _yaml(target: ServingTarget, obj: Dict[str, Any], lines: Sequence[str]) -> str:
    return _header(target, lines) + yaml.dump(obj, Dumper=_Dumper, sort_keys=False, default_flow_style=False,
                                           width=1000)


def render_manifests(target: ServingTarget, config_files: Optional[Dict[str, str]] = None,
                     canary_version: Optional[str] = None) -> Dict[str, str]:
    """{file name: YAML}. ``config_files`` ({name: text}, e.g. models.config) adds ``configmap.yaml``;
    ``canary_version`` names the version the canary InferenceService rolls out."""
    name = resource_name(target)
    kubectl_ns = f" -n {target.options.kubernetes.namespace}" if target.options.kubernetes.namespace else ""
    promote = (f"kubectl patch isvc {name}{kubectl_ns} --type=json "
               f"-p '[{{\"op\": \"remove\", \"path\": \"/spec/predictor/canaryTrafficPercent\"}}]'")
    rollback = (f"kubectl patch isvc {name}{kubectl_ns} --type=merge "
                f"-p '{{\"spec\": {{\"predictor\": {{\"canaryTrafficPercent\": 0}}}}}}'")
    manifests = {
        DEPLOYMENT_FILE: _yaml(target, deployment(target), [
            f"TF Serving reads the files its flags name from the ConfigMap {configmap_name(target)}: configmap.yaml "
            f"from tfxp serving-config, or",
            f"kubectl create configmap {configmap_name(target)}{kubectl_ns} "
            + " ".join(f"--from-file=DIR/{name}" for name in config_file_names(target))
            + " (DIR: the serving config dir)"]),
        SERVICE_FILE: _yaml(target, service(target), [f"gRPC on {GRPC_PORT}, REST on {REST_PORT}."]),
        HPA_FILE: _yaml(target, horizontal_pod_autoscaler(target), ["Scales the Deployment on CPU."]),
        PDB_FILE: _yaml(target, pod_disruption_budget(target), ["Keeps pods serving while nodes are drained."]),
    }
    if config_files is not None:
        manifests[CONFIGMAP_FILE] = _yaml(target, config_map(target, config_files), [
            "The server's config files as tfxp serving-config last wrote them: release state, not committed.",
            f"TF Serving polls {MODEL_CONFIG_FILE} every serving.model_config_poll_seconds; the kubelet refreshes "
            f"the mounted files after an apply (within about a minute)."])
    manifests[INFERENCE_SERVICE_FILE] = _yaml(target, inference_service(target), [
        "KServe: the first deployment (or one that takes all traffic at once). Canary: inferenceservice-canary.yaml."])
    manifests[CANARY_INFERENCE_SERVICE_FILE] = _yaml(target, canary_inference_service(target, canary_version), [
        "KServe canary (Serverless mode): render it with --canary-version <pushed version> after each push;",
        "a new version is what starts a new revision, which gets canaryTrafficPercent of the traffic.",
        f"Promote:  {promote}",
        f"Rollback: {rollback}"])
    sink = k8s_log_sink.manifests(target)
    if sink:
        prefix = target.options.kubernetes.payload_logger.filename_prefix
        manifests[k8s_log_sink.DEPLOYMENT_FILE] = _yaml(target, sink[k8s_log_sink.DEPLOYMENT_FILE], [
            "tfxp log-sink: the InferenceService's payload logger sends it every request and response (CloudEvents);",
            f"it writes them as request logs (PredictionLog TFRecords) under {prefix}, which tfxp drift reads.",
            "Apply log-sink/ before the InferenceService."])
        manifests[k8s_log_sink.SERVICE_FILE] = _yaml(target, sink[k8s_log_sink.SERVICE_FILE], [
            f"The payload logger's url: {k8s_log_sink.logger_url(target)}"])
    return manifests


def write_manifests(target: ServingTarget, out_dir: str, config_files: Optional[Dict[str, str]] = None,
                    canary_version: Optional[str] = None) -> List[str]:
    """Writes ``render_manifests`` into ``out_dir`` (each file atomically); returns the paths."""
    paths = []
    for name, text in render_manifests(target, config_files, canary_version).items():
        path = os.path.join(out_dir, *name.split("/"))
        write_atomically(path, text)
        paths.append(path)
    return paths


def read_config_files(target: ServingTarget, config_dir: str) -> Dict[str, str]:
    """The files the server's flags name, read from a serving config dir (``target.config_dir``)."""
    files = {}
    for name in config_file_names(target):
        path = os.path.join(config_dir, name)
        if is_remote(path):
            import tensorflow as tf

            with tf.io.gfile.GFile(path) as f:
                files[name] = f.read()
        else:
            with open(path) as f:
                files[name] = f.read()
    return files
