"""The request-log sink on Kubernetes: KServe's payload logger on the InferenceService, and the
``tfxp log-sink`` Deployment and Service it sends to (serving.kubernetes.payload_logger).

The real ``tensorflow/serving`` cannot log requests; KServe's agent (a sidecar of each predictor pod) sends
every request and response to ``spec.predictor.logger.url`` as CloudEvents, and the sink writes them as
request logs (serving/log_sink.py). One replica, replaced by ``Recreate``: a request and its response are
paired in the sink's memory, so both must reach the same process (two sinks would each see halves), and a
volume claim may be ReadWriteOnce. Events sent while it restarts are lost (KServe does not retry); inference
is not held up by it.

Where the files go: a ``gs://`` prefix (the sink writes them in an emptyDir spool, then uploads each
complete file whole; the pod's service account must be allowed to write to the bucket), or an absolute path
on a PersistentVolumeClaim mounted read-write at that path's directory. The files' limits are
serving.request_log's (max_file_bytes, max_file_seconds, max_total_bytes, queue_size), as for `tfxp serve`.
"""
from __future__ import annotations

import posixpath
from typing import Any, Dict, List, Optional, Tuple

from serving.k8s_names import (HTTP_PORT_NAME, LOG_SINK_COMPONENT, PROMETHEUS_ANNOTATIONS, ManifestError,
                               container_security_context, log_sink_name, metadata, pod_security_context, selector)
from serving.log_sink import DEFAULT_PORT, HEALTH_PATH, METRICS_PATH
from serving.options import ServingTarget
from tfxp.files import is_remote

DEPLOYMENT_FILE = "log-sink/deployment.yaml"
SERVICE_FILE = "log-sink/service.yaml"
CONTAINER_NAME = "log-sink"
COMMAND = ["tfxp", "log-sink"]          # the project image installs tfxp (Dockerfile: pip install .)
SERVICE_PORT = 80                       # the logger's URL names no port
LOGGER_MODE = "all"                     # requests and responses (KServe rejects an empty mode)
LOGS_VOLUME, SPOOL_VOLUME = "request-logs", "spool"
SPOOL_DIR = "/var/spool/tfxp-log-sink"  # a gs:// prefix's files before they are uploaded
PROBE_PERIOD_SECONDS = 10
STARTUP_SECONDS = 120                   # it imports TensorFlow before it listens
# SIGTERM: the sink stops taking events, writes the pairs it holds, completes (and uploads) its files.
TERMINATION_GRACE_SECONDS = 60


def enabled(target: ServingTarget) -> bool:
    return target.options.kubernetes.payload_logger.enabled


def logger_url(target: ServingTarget) -> str:
    """The sink's Service: by its cluster DNS name in the configured namespace, else by its short name,
    which resolves in the predictor pod's own namespace (where both are applied)."""
    namespace = target.options.kubernetes.namespace
    host = f"{log_sink_name(target)}.{namespace}.svc.cluster.local" if namespace else log_sink_name(target)
    return f"http://{host}/"


def logger_spec(target: ServingTarget) -> Dict[str, Any]:
    """The InferenceService's ``spec.predictor.logger`` (KServe's LoggerSpec)."""
    return {"mode": LOGGER_MODE, "url": logger_url(target)}


def sink_args(target: ServingTarget) -> List[str]:
    """``tfxp log-sink``'s flags in the pod."""
    options = target.options
    prefix = options.kubernetes.payload_logger.filename_prefix
    args = ["--host=0.0.0.0", f"--port={DEFAULT_PORT}", f"--filename_prefix={prefix}"]
    if is_remote(prefix):
        args.append(f"--spool_dir={SPOOL_DIR}")
    files = options.request_log
    args += [f"--max_file_bytes={files.max_file_bytes}", f"--max_file_seconds={files.max_file_seconds:g}",
             f"--max_total_bytes={files.max_total_bytes}", f"--queue_size={files.queue_size}",
             f"--pair_timeout_seconds={options.kubernetes.payload_logger.pair_timeout_seconds:g}"]
    return args


def _volume(target: ServingTarget) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """(the container's mount, the pod's volume): the claim at the prefix's directory, or the spool."""
    logger = target.options.kubernetes.payload_logger
    if is_remote(logger.filename_prefix):
        files = target.options.request_log
        # The writer keeps the spool within max_total_bytes; one file more for a .tmp a killed container left.
        size = files.max_total_bytes + files.max_file_bytes
        return ({"name": SPOOL_VOLUME, "mountPath": SPOOL_DIR},
                {"name": SPOOL_VOLUME, "emptyDir": {"sizeLimit": str(size)}})
    return ({"name": LOGS_VOLUME, "mountPath": posixpath.dirname(logger.filename_prefix)},
            {"name": LOGS_VOLUME, "persistentVolumeClaim": {"claimName": logger.volume_claim}})


def deployment(target: ServingTarget) -> Dict[str, Any]:
    logger = target.options.kubernetes.payload_logger
    name = log_sink_name(target)
    if not target.project_image:
        raise ManifestError("serving.kubernetes.payload_logger needs the project's image (the config's image: "
                            "the one the Dockerfile builds, with tfxp in it) for the log sink")

    def health(period: int) -> Dict[str, Any]:
        return {"httpGet": {"path": HEALTH_PATH, "port": HTTP_PORT_NAME}, "periodSeconds": period}

    mount, volume = _volume(target)
    container: Dict[str, Any] = {
        "name": CONTAINER_NAME,
        "image": target.project_image,
        "command": list(COMMAND),
        "args": sink_args(target),
        "ports": [{"name": HTTP_PORT_NAME, "containerPort": DEFAULT_PORT, "protocol": "TCP"}],
        "startupProbe": {**health(2), "failureThreshold": STARTUP_SECONDS // 2},
        "readinessProbe": {**health(PROBE_PERIOD_SECONDS), "timeoutSeconds": 5, "failureThreshold": 3},
        "livenessProbe": {**health(2 * PROBE_PERIOD_SECONDS), "timeoutSeconds": 5, "failureThreshold": 3},
        "resources": {"requests": {"cpu": logger.cpu_request, "memory": logger.memory_request},
                      "limits": {"cpu": logger.cpu_limit, "memory": logger.memory_limit}},
        "securityContext": container_security_context(),
        "volumeMounts": [mount],
    }
    pod_spec: Dict[str, Any] = {}
    if logger.service_account:
        pod_spec["serviceAccountName"] = logger.service_account
    pod_spec.update({
        "terminationGracePeriodSeconds": TERMINATION_GRACE_SECONDS,
        # fsGroup: a claim's files are writable by the sink's group.
        "securityContext": {**pod_security_context(), "fsGroup": pod_security_context()["runAsGroup"]},
        "containers": [container],
        "volumes": [volume],
    })
    annotations = dict(zip(PROMETHEUS_ANNOTATIONS, ("true", METRICS_PATH, str(DEFAULT_PORT))))
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(target, name, LOG_SINK_COMPONENT),
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": selector(target, LOG_SINK_COMPONENT)},
            "strategy": {"type": "Recreate"},
            "template": {"metadata": {"labels": metadata(target, name, LOG_SINK_COMPONENT)["labels"],
                                      "annotations": annotations},
                         "spec": pod_spec},
        },
    }


def service(target: ServingTarget) -> Dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(target, log_sink_name(target), LOG_SINK_COMPONENT),
        "spec": {
            "type": "ClusterIP",
            "selector": selector(target, LOG_SINK_COMPONENT),
            "ports": [{"name": HTTP_PORT_NAME, "port": SERVICE_PORT, "targetPort": HTTP_PORT_NAME, "protocol": "TCP",
                       "appProtocol": HTTP_PORT_NAME}],
        },
    }


def manifests(target: ServingTarget) -> Optional[Dict[str, Dict[str, Any]]]:
    """{file name: object} of the sink, or None when the payload logger is off."""
    if not enabled(target):
        return None
    return {DEPLOYMENT_FILE: deployment(target), SERVICE_FILE: service(target)}
