"""What every generated Kubernetes object shares: its name, labels and metadata, and the pods' security
context (serving/k8s.py for TF Serving and KServe, serving/k8s_log_sink.py for the request-log sink)."""
from __future__ import annotations

import re
from typing import Any, Dict, Optional

from serving.options import ServingTarget
from tfxp.errors import TfxpError


class ManifestError(ValueError, TfxpError):
    """A manifest that Kubernetes (or KServe) would reject: names the serving.kubernetes key or the file."""


# Labels (Kubernetes' recommended app.kubernetes.io/ ones) and names.
PART_OF = "tfx-pipeline-project"
TF_SERVING_COMPONENT = "tf-serving"                 # the Deployment's pods: the Service selects these
KSERVE_COMPONENT = "inferenceservice"               # KServe's pods: never selected by the plain Service
LOG_SINK_COMPONENT = "log-sink"                     # `tfxp log-sink`: KServe's payload logger sends to it
TF_SERVING_SUFFIX = "-tfserving"                    # KServe creates a Service named after the
CONFIGMAP_SUFFIX = "-tfserving-config"              # InferenceService: the plain objects must differ
LOG_SINK_SUFFIX = "-log-sink"
# KServe's (Knative's) revisions are named <name>-predictor-00001 and must stay a 63-character label.
MAX_NAME_LENGTH = 63 - len("-predictor-00001")
_DNS_1035_LABEL = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
# Neither image defines a user: run as 1000, as KServe's TF runtime does.
NON_ROOT_ID = 1000
GRPC_PORT_NAME, HTTP_PORT_NAME = "grpc", "http"     # also the ports' appProtocol (Istio, KServe)
PROMETHEUS_ANNOTATIONS = ("prometheus.io/scrape", "prometheus.io/path", "prometheus.io/port")


def resource_name(target: ServingTarget) -> str:
    """The Kubernetes name of the pipeline's objects: pipeline_name, lowercase, '_' -> '-'."""
    name = target.model_name.lower().replace("_", "-")
    if not _DNS_1035_LABEL.fullmatch(name) or len(name) > MAX_NAME_LENGTH:
        raise ManifestError(
            f"pipeline_name {target.model_name!r} cannot name Kubernetes objects: {name!r} must start with a "
            f"letter, end with a letter or digit and have at most {MAX_NAME_LENGTH} characters (a DNS-1035 "
            f"label short enough for KServe's '<name>-predictor-00001')")
    return name


def tf_serving_name(target: ServingTarget) -> str:
    """The Deployment, Service, HPA and PDB."""
    return resource_name(target) + TF_SERVING_SUFFIX


def configmap_name(target: ServingTarget) -> str:
    return resource_name(target) + CONFIGMAP_SUFFIX


def log_sink_name(target: ServingTarget) -> str:
    """The request-log sink's Deployment and Service."""
    return resource_name(target) + LOG_SINK_SUFFIX


def labels(target: ServingTarget, component: str) -> Dict[str, str]:
    return {"app.kubernetes.io/name": resource_name(target), "app.kubernetes.io/part-of": PART_OF,
            "app.kubernetes.io/component": component}


def selector(target: ServingTarget, component: str = TF_SERVING_COMPONENT) -> Dict[str, str]:
    """One Deployment's pods (its Service, its PDB): never another component's, KServe's included."""
    return {key: value for key, value in labels(target, component).items() if key != "app.kubernetes.io/part-of"}


def metadata(target: ServingTarget, name: str, component: str,
             annotations: Optional[Dict[str, str]] = None) -> Dict[str, Any]:
    meta: Dict[str, Any] = {"name": name}
    if target.options.kubernetes.namespace:
        meta["namespace"] = target.options.kubernetes.namespace
    meta["labels"] = labels(target, component)
    if annotations:
        meta["annotations"] = annotations
    return meta


def pod_security_context() -> Dict[str, Any]:
    return {"runAsNonRoot": True, "runAsUser": NON_ROOT_ID, "runAsGroup": NON_ROOT_ID,
            "seccompProfile": {"type": "RuntimeDefault"}}


def container_security_context() -> Dict[str, Any]:
    return {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
