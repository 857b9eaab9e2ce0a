"""Checks a TFJob as the Kubernetes API server with the Kubeflow Training Operator would, offline.

* The CRD's structural schema: the ``openAPIV3Schema`` of ``tfjobs.kubeflow.org`` v1 from the Training
  Operator's repository (vendored: tests/data/training-operator/kubeflow.org_tfjobs.yaml names the commit),
  validated with jsonschema and made strict as the API server's strict field validation is: every object
  schema that lists its properties (and does not preserve unknown fields) rejects others, so a misspelt
  field fails instead of being pruned.
* The operator's validating webhook (pkg/webhooks/tensorflow/tfjob_webhook.go, v1.9.0): the name is a
  DNS-1035 label, every replica has a container named ``tensorflow`` and an image, at most one Chief/Master.
* Each replica's pod, strictly against Kubernetes' own schemas (kubernetes-validate).
"""
from __future__ import annotations

import copy
import functools
import os
import re
from typing import Any, Dict, List

import jsonschema
import kubernetes_validate
import yaml

CRD_FILE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "training-operator",
                        "kubeflow.org_tfjobs.yaml")
KUBERNETES_VERSION = "1.30.0"   # as tests/serving/test_k8s.py
DNS_1035_LABEL = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")


def _strict(schema: Any) -> Any:
    if isinstance(schema, dict):
        schema = {key: _strict(value) for key, value in schema.items()}
        if ("properties" in schema and "additionalProperties" not in schema
                and not schema.get("x-kubernetes-preserve-unknown-fields")):
            schema["additionalProperties"] = False
        return schema
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    return schema


@functools.lru_cache(maxsize=None)
def crd() -> Dict[str, Any]:
    with open(CRD_FILE) as f:
        return yaml.safe_load(f)


@functools.lru_cache(maxsize=None)
def validator() -> jsonschema.Draft7Validator:
    (version,) = [v for v in crd()["spec"]["versions"] if v["name"] == "v1"]
    schema = _strict(version["schema"]["openAPIV3Schema"])
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def webhook_problems(tfjob: Dict[str, Any]) -> List[str]:
    problems = []
    name = tfjob["metadata"]["name"]
    if not DNS_1035_LABEL.fullmatch(name) or len(name) > 63:
        problems.append(f"metadata.name {name!r} is not a DNS-1035 label")
    specs = tfjob["spec"].get("tfReplicaSpecs") or {}
    if not specs:
        problems.append("spec.tfReplicaSpecs: must be required")
    for replica_type, spec in specs.items():
        containers = spec["template"]["spec"].get("containers") or []
        if not any(c.get("name") == "tensorflow" for c in containers):
            problems.append(f"{replica_type}: must have at least one container with name tensorflow")
        problems += [f"{replica_type}: container {c.get('name')} has no image" for c in containers if not c.get("image")]
    if sum(1 for t in specs if t in ("Chief", "Master")) > 1:
        problems.append("must not have more than 1 Chief or Master role")
    return problems


def replica_pods(tfjob: Dict[str, Any]) -> Dict[str, Dict[str, Any]]:
    """{replica type: the Pod the operator makes of its template}."""
    name = tfjob["metadata"]["name"]
    return {replica_type: {"apiVersion": "v1", "kind": "Pod",
                           "metadata": {"name": f"{name}-{replica_type.lower()}-0",
                                        "namespace": tfjob["metadata"]["namespace"]},
                           "spec": copy.deepcopy(spec["template"]["spec"])}
            for replica_type, spec in tfjob["spec"]["tfReplicaSpecs"].items()}


def validate_tfjob(tfjob: Dict[str, Any]) -> None:
    """Raises (jsonschema.ValidationError, kubernetes_validate.ValidationError, AssertionError) on the first problem."""
    validator().validate(tfjob)
    assert tfjob["apiVersion"] == "kubeflow.org/v1" and tfjob["kind"] == "TFJob"
    problems = webhook_problems(tfjob)
    assert not problems, problems
    for pod in replica_pods(tfjob).values():
        kubernetes_validate.validate(pod, KUBERNETES_VERSION, strict=True)
