"""The real server's config files, and releases by moving labels in models.config.

``tfxp serving-config`` writes, into the serving config dir (``target.config_dir``):

* ``models.config``: a ModelServerConfig with the pushed model (name, base path = the push dir),
  a ``specific`` version policy and the ``version_labels`` ``stable`` (and ``canary``). Written
  only when missing (or with ``--reset``): after that it is release state, moved by ``tfxp release``.
* ``batching_parameters.txt`` and ``monitoring.config``, from ``serving.batching`` and TF Serving's
  Prometheus path;
* ``compose.env`` (a local push dir: for serving/docker-compose.yml) or ``k8s/`` (the Kubernetes and
  KServe manifests with a ConfigMap of these files).

``tfxp release canary VERSION | promote | rollback`` rewrites models.config atomically (a temp file,
then a rename; on gs:// one object write). Servers polling it (``--model_config_file_poll_wait_seconds``)
pick the change up, TF Serving and `tfxp serve` alike. TF Serving sets a label only on a version that
is loaded (``ServerCore::UpdateModelVersionLabelMap``), so a canary is two writes: the version joins
the policy, the servers given with ``--server`` are polled until it is AVAILABLE on each, then the
label moves. Promote and rollback move labels between versions that are already loaded: one write.

    stable S                 --canary C-->  stable S, canary C        (versions S, C)
    stable S, canary C       --promote--->  stable C, previous S      (versions C, S)
    stable S, canary C       --rollback-->  stable S                  (versions S)
    stable C, previous S     --rollback-->  stable S                  (versions S)
"""
from __future__ import annotations

import dataclasses
import os
import time
from typing import Dict, List, Optional, Sequence, Tuple

from serving.options import (BATCHING_PARAMETERS_FILE, CANARY, METRICS_PATH, MODEL_CONFIG_FILE,
                             MONITORING_CONFIG_FILE, PREVIOUS, STABLE, ServingTarget)
from tfxp.errors import TfxpError
from tfxp.files import is_remote, write_atomically


class ReleaseError(ValueError, TfxpError):
    """A release that cannot be made: names the file, the version or the server and what was expected."""


@dataclasses.dataclass
class ReleaseState:
    """One model's entry in models.config: the versions it loads and the labels on them."""
    name: str
    base_path: str
    versions: List[int]
    labels: Dict[str, int]

    def to_text(self) -> str:
        from google.protobuf import text_format
        from tensorflow_serving.config import model_server_config_pb2

        config = model_server_config_pb2.ModelServerConfig()
        model = config.model_config_list.config.add(name=self.name, base_path=self.base_path,
                                                    model_platform="tensorflow")
        model.model_version_policy.specific.versions.extend(sorted(set(self.versions)))
        for label in (STABLE, CANARY, PREVIOUS):
            if label in self.labels:
                model.version_labels[label] = self.labels[label]
        return ("# Written by tfxp serving-config; labels moved by tfxp release (canary | promote | rollback).\n"
                + text_format.MessageToString(config))

    def describe(self) -> str:
        return ", ".join(f"{label} {self.labels[label]}" for label in (STABLE, CANARY, PREVIOUS)
                         if label in self.labels) or "no labels"


def read_state(path: str, model_name: str) -> ReleaseState:
    from serving.protos import ConfigFileError, read_model_server_config

    if not _exists(path):
        raise ReleaseError(f"{path}: no models.config here; write it first with tfxp serving-config")
    try:
        config = read_model_server_config(path)
    except ConfigFileError as e:
        raise ReleaseError(str(e)) from None
    for model in config.model_config_list.config:
        if model.name == model_name:
            policy = model.model_version_policy
            if policy.WhichOneof("policy_choice") != "specific":
                raise ReleaseError(f"{path}: model {model_name!r} has no `specific` version policy; tfxp release "
                                   f"moves labels between the versions it lists")
            return ReleaseState(model.name, model.base_path, list(policy.specific.versions),
                                dict(model.version_labels))
    raise ReleaseError(f"{path}: no model named {model_name!r} (the config's pipeline_name)")


def _exists(path: str) -> bool:
    import tensorflow as tf

    return tf.io.gfile.exists(path)


def pushed_versions(base_path: str) -> List[int]:
    from serving.predict import model_versions

    return sorted(int(os.path.basename(v)) for v in model_versions(base_path))


# -- the operations: pure functions of the state -----------------------------------------------------
def plan_canary(state: ReleaseState, version: int, pushed: Sequence[int]) -> ReleaseState:
    """The state after ``canary VERSION``: the version loads beside stable and takes the canary label."""
    if version not in pushed:
        raise ReleaseError(f"version {version} is not in {state.base_path} (pushed: "
                           f"{', '.join(map(str, pushed)) or 'none'})")
    stable = state.labels.get(STABLE)
    if stable is None:
        raise ReleaseError("models.config has no stable label: rewrite it with tfxp serving-config --reset")
    if version == stable:
        raise ReleaseError(f"version {version} is already stable")
    return ReleaseState(state.name, state.base_path, [stable, version], {STABLE: stable, CANARY: version})


def plan_promote(state: ReleaseState) -> ReleaseState:
    canary = state.labels.get(CANARY)
    if canary is None:
        raise ReleaseError(f"no canary to promote ({state.describe()}); start one with tfxp release canary VERSION")
    stable = state.labels[STABLE]
    return ReleaseState(state.name, state.base_path, [canary, stable], {STABLE: canary, PREVIOUS: stable})


def plan_rollback(state: ReleaseState) -> ReleaseState:
    stable = state.labels.get(STABLE)
    if CANARY in state.labels:
        kept = {STABLE: stable, **({PREVIOUS: state.labels[PREVIOUS]} if PREVIOUS in state.labels else {})}
        return ReleaseState(state.name, state.base_path, sorted(set(kept.values())), kept)
    if PREVIOUS in state.labels:
        previous = state.labels[PREVIOUS]
        return ReleaseState(state.name, state.base_path, [previous], {STABLE: previous})
    raise ReleaseError(f"nothing to roll back ({state.describe()}): no canary, and no previous stable version")


# -- waiting for the servers ---------------------------------------------------------------------------
def wait_until_available(servers: Sequence[str], model_name: str, version: int, timeout: float) -> None:
    """Polls each server's REST status (TF Serving's GET /v1/models/NAME/versions/V) until AVAILABLE."""
    import requests

    for server in servers:
        url = f"{server.rstrip('/')}/v1/models/{model_name}/versions/{version}"
        if "://" not in url:
            url = "http://" + url
        deadline, last = time.monotonic() + timeout, "no answer"
        while True:
            try:
                reply = requests.get(url, timeout=5)
                states = [s.get("state") for s in reply.json().get("model_version_status", [])] if reply.ok else []
                if "AVAILABLE" in states:
                    break
                last = f"{reply.status_code} {states or reply.text[:200]}"
            except (requests.RequestException, ValueError) as e:
                last = f"{type(e).__name__}: {e}"
            if time.monotonic() > deadline:
                raise ReleaseError(f"version {version} of {model_name} is not AVAILABLE on {server} after {timeout:g} s "
                                   f"(last answer: {last}); models.config lists it, the canary label was not set")
            time.sleep(0.5)


# -- the commands --------------------------------------------------------------------------------------
def model_config_path(target: ServingTarget) -> str:
    return os.path.join(target.config_dir, MODEL_CONFIG_FILE)


def batching_parameters_text(target: ServingTarget) -> str:
    from google.protobuf import text_format

    from serving.protos import BatchingParameters

    b = target.options.batching
    message = BatchingParameters(allowed_batch_sizes=b.allowed_batch_sizes,
                                 pad_variable_length_inputs=b.pad_variable_length_inputs)
    for field in ("max_batch_size", "batch_timeout_micros", "max_enqueued_batches", "num_batch_threads"):
        getattr(message, field).value = getattr(b, field)  # Int64Value wrappers, as in TF Serving's proto
    return "# --batching_parameters_file (with --enable_batching), from serving.batching\n" + \
        text_format.MessageToString(message)


def monitoring_config_text() -> str:
    from google.protobuf import text_format

    from serving.protos import MonitoringConfig

    message = MonitoringConfig()
    message.prometheus_config.enable = True
    message.prometheus_config.path = METRICS_PATH
    return "# --monitoring_config_file: Prometheus metrics on the REST port\n" + text_format.MessageToString(message)


def write_serving_config(target: ServingTarget, reset: bool = False) -> Tuple[List[str], ReleaseState]:
    """`tfxp serving-config`: the server's files (models.config only when missing, or ``reset``) and
    the deployment files for where the model is (compose.env for a local push dir, k8s/ for gs://).
    Returns the paths written and the release state models.config holds."""
    from serving import k8s, load_balancer

    out = target.config_dir
    path = model_config_path(target)
    written = []
    if reset or not _exists(path):
        pushed = pushed_versions(target.model_base_path)
        if not pushed:
            raise ReleaseError(f"no pushed version in {target.model_base_path}: run the pipeline first (tfxp run)")
        state = ReleaseState(target.model_name, target.model_base_path, [pushed[-1]], {STABLE: pushed[-1]})
        write_atomically(path, state.to_text())
        written.append(path)
    else:
        state = read_state(path, target.model_name)
    files = {BATCHING_PARAMETERS_FILE: batching_parameters_text(target), MONITORING_CONFIG_FILE: monitoring_config_text()}
    for name, text in files.items():
        write_atomically(os.path.join(out, name), text)
        written.append(os.path.join(out, name))
    if is_remote(target.model_base_path) or target.options.kubernetes.model_volume_claim:
        canary = state.labels.get(CANARY)
        written += k8s.write_manifests(target, os.path.join(out, "k8s"), k8s.read_config_files(target, out),
                                       canary_version=str(canary) if canary is not None else None)
    else:
        env_path = os.path.join(out, load_balancer.COMPOSE_ENV_FILE)
        write_atomically(env_path, load_balancer.compose_env(target))
        written.append(env_path)
    return written, state


def release(target: ServingTarget, action: str, version: Optional[int] = None, servers: Sequence[str] = (),
            timeout: float = 300) -> ReleaseState:
    """`tfxp release`: moves the labels in models.config; returns the new state."""
    path = model_config_path(target)
    state = read_state(path, target.model_name)
    if action == "canary":
        new = plan_canary(state, version, pushed_versions(state.base_path))
        if version not in state.versions:
            # First write: the version joins the policy; the labels stay where they are.
            loading = ReleaseState(state.name, state.base_path, state.versions + [version], state.labels)
            write_atomically(path, loading.to_text())
            if not servers:
                raise ReleaseError(f"{path}: version {version} added to the policy; to label it, the servers "
                                   f"must have loaded it: pass --server HOST:PORT (their REST ports) to wait for it")
            wait_until_available(servers, state.name, version, timeout)
    elif action == "promote":
        new = plan_promote(state)
    elif action == "rollback":
        new = plan_rollback(state)
    else:
        raise ReleaseError(f"unknown release action {action!r}: canary, promote or rollback")
    write_atomically(path, new.to_text())
    return new
