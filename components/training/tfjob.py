"""The Trainer's TFJob (Kubeflow Training Operator, ``kubeflow.org/v1``) and the RBAC its step needs, as pure
functions of their settings (tests validate them against the operator's CRD schema and Kubernetes' own).

* ``tfjob_manifest(name, settings, command)``: a Chief replica and ``workers - 1`` Worker replicas, each a
  container named ``tensorflow`` (the operator's default container: its webhook requires one; it adds the
  port and the TF_CONFIG) of ``settings.image`` running ``command``, TFX's ``run_executor`` of the
  Trainer's GenericExecutor with the step's own artifacts (components/training/tfjob_executor.py builds it
  with TFX's Vertex client's serialization). The operator sets TF_CONFIG: cluster keys ``chief`` and
  ``worker``, the task's type and index. A replica that fails fails the job (restartPolicy Never:
  MultiWorkerMirroredStrategy cannot take a restarted worker back mid-training).
* ``rbac_manifests(...)``: a Role and RoleBinding letting the Trainer step's service account create, read and
  delete TFJobs and read its replicas' logs in the TFJob namespace.

``python -m components.training.tfjob rbac --namespace NS --service-account SA`` prints the RBAC to apply.
"""
from __future__ import annotations

import argparse
import dataclasses
import re
import sys
from typing import Any, Dict, List, Optional

import yaml

# custom_config key of the TFJob engine's settings (components/training/engines.py writes them, the executor reads).
TFJOB_KEY = "tfjob"
DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
GROUP, VERSION, PLURAL, KIND = "kubeflow.org", "v1", "tfjobs", "TFJob"
API_VERSION = f"{GROUP}/{VERSION}"
CONTAINER_NAME = "tensorflow"
CHIEF, WORKER = "Chief", "Worker"
# Pods and services are named <job>-<replica type>-<index> and must stay DNS labels (<= 63 characters).
MAX_NAME_LENGTH = 40
# runPolicy.ttlSecondsAfterFinished: the finished TFJob and its pods (their logs) stay this long.
KEEP_FINISHED_SECONDS = 7 * 24 * 3600
INSTANCE_TYPE_LABEL = "node.kubernetes.io/instance-type"
ROLE_NAME = "tfx-trainer-tfjobs"


@dataclasses.dataclass
class TFJobSettings:
    """What the TFJob engine puts in the Trainer's custom_config (components/training/engines.py)."""
    name_prefix: str
    namespace: str
    image: str
    workers: int
    service_account: Optional[str] = None
    cpu: str = "4"
    memory: str = "16Gi"
    gpu_resource: str = "nvidia.com/gpu"
    accelerator_count: int = 0
    machine_type: Optional[str] = None
    timeout_seconds: int = 86400

    @classmethod
    def from_custom_config(cls, custom_config: Dict[str, Any], key: str = TFJOB_KEY) -> "TFJobSettings":
        given = (custom_config or {}).get(key)
        if not isinstance(given, dict):
            raise ValueError(f"the Trainer's custom_config has no {key!r} mapping (set kubeflow.training.engine: tfjob "
                             f"and compile again)")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(given) - known)
        if unknown:
            raise ValueError(f"custom_config[{key!r}]: unknown key(s) {', '.join(unknown)}")
        return cls(**given)


def job_name(prefix: str, unique: str) -> str:
    """``<prefix>-<unique>`` as a DNS-1035 label short enough for its pods' names (the operator's webhook
    requires a DNS-1035 name): lowercase letters, digits and '-', starting with a letter."""
    prefix = re.sub(r"[^a-z0-9-]+", "-", prefix.lower()).strip("-")
    if not prefix[:1].isalpha():
        prefix = f"tfx-{prefix}".rstrip("-")
    prefix = prefix[: MAX_NAME_LENGTH - len(unique) - 1].rstrip("-")
    return f"{prefix}-{unique}"


def replica_pod_names(name: str, workers: int) -> List[str]:
    """The pods the operator creates: <job>-chief-0, <job>-worker-<i>."""
    return [f"{name}-{CHIEF.lower()}-0"] + [f"{name}-{WORKER.lower()}-{i}" for i in range(workers - 1)]


def _container(settings: TFJobSettings, command: List[str]) -> Dict[str, Any]:
    requests = {"cpu": settings.cpu, "memory": settings.memory}
    limits: Dict[str, Any] = {"memory": settings.memory}
    if settings.accelerator_count:
        limits[settings.gpu_resource] = settings.accelerator_count
    return {"name": CONTAINER_NAME, "image": settings.image, "command": list(command),
            "resources": {"requests": requests, "limits": limits}}


def _replica(settings: TFJobSettings, command: List[str], replicas: int) -> Dict[str, Any]:
    pod: Dict[str, Any] = {"containers": [_container(settings, command)]}
    if settings.service_account:
        pod["serviceAccountName"] = settings.service_account
    if settings.machine_type:
        pod["nodeSelector"] = {INSTANCE_TYPE_LABEL: settings.machine_type}
    return {"replicas": replicas, "restartPolicy": "Never", "template": {"spec": pod}}


def tfjob_manifest(name: str, settings: TFJobSettings, command: List[str]) -> Dict[str, Any]:
    """The TFJob: a Chief and ``settings.workers - 1`` Workers running ``command``."""
    replica_specs = {CHIEF: _replica(settings, command, 1)}
    if settings.workers > 1:
        replica_specs[WORKER] = _replica(settings, command, settings.workers - 1)
    return {
        "apiVersion": API_VERSION, "kind": KIND,
        "metadata": {"name": name, "namespace": settings.namespace,
                     "labels": {"app.kubernetes.io/component": "trainer",
                                "app.kubernetes.io/managed-by": "tfx-pipeline-project"}},
        "spec": {
            "runPolicy": {"cleanPodPolicy": "Running", "backoffLimit": 0,
                          "activeDeadlineSeconds": settings.timeout_seconds,
                          "ttlSecondsAfterFinished": KEEP_FINISHED_SECONDS},
            "tfReplicaSpecs": replica_specs,
        },
    }


def rbac_manifests(namespace: str, service_account: str, service_account_namespace: str) -> List[Dict[str, Any]]:
    """A Role in ``namespace`` (TFJobs: create, get, delete; pods' logs: get) bound to the Trainer step's
    service account (``service_account_namespace``/``service_account``)."""
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": ROLE_NAME, "namespace": namespace},
            "rules": [{"apiGroups": [GROUP], "resources": [PLURAL], "verbs": ["create", "get", "delete"]},
                      {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]}]}
    binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
               "metadata": {"name": ROLE_NAME, "namespace": namespace},
               "subjects": [{"kind": "ServiceAccount", "name": service_account,
                             "namespace": service_account_namespace}],
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": ROLE_NAME}}
    return [role, binding]


def to_yaml(objects: List[Dict[str, Any]]) -> str:
    return yaml.safe_dump_all(objects, sort_keys=False, default_flow_style=False)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m components.training.tfjob",
                                     description="Kubernetes manifests of the TFJob training engine")
    commands = parser.add_subparsers(dest="command", required=True)
    rbac = commands.add_parser("rbac", help="the Role and RoleBinding the Trainer step's service account needs")
    rbac.add_argument("--namespace", required=True, help="where the TFJobs run (kubeflow.training.tfjob.namespace)")
    rbac.add_argument("--service-account", default="pipeline-runner",
                      help="the service account the Kubeflow Pipelines steps run as (default: pipeline-runner)")
    rbac.add_argument("--service-account-namespace", default="kubeflow",
                      help="its namespace (default: kubeflow; in multi-user Kubeflow, the profile's namespace)")
    args = parser.parse_args(argv)
    for flag, value, rule in (("--namespace", args.namespace, DNS_LABEL),
                              ("--service-account", args.service_account, DNS_SUBDOMAIN),
                              ("--service-account-namespace", args.service_account_namespace, DNS_LABEL)):
        if not rule.fullmatch(value) or len(value) > 63:
            parser.error(f"{flag}: {value!r} is not a Kubernetes name (lowercase letters, digits and '-')")
    sys.stdout.write(to_yaml(rbac_manifests(args.namespace, args.service_account, args.service_account_namespace)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
