"""The TFJob engine's Trainer: its step creates a Kubeflow Training Operator TFJob that trains, waits for it,
and fails in one line naming the TFJob and its failed condition.

``TFJobTrainer`` is TFX's Trainer with this executor (the same inputs, outputs and parameters, so the IR, the
caching and the downstream steps are the Trainer's). ``Executor.Do``, in the step's pod:

1. builds each replica's command exactly as TFX's Vertex AI client does (``python -m
   tfx.scripts.run_executor`` of the project's Trainer executor (components/training/component.py: TFX's
   GenericExecutor with the step counts from execution properties) with this step's artifacts and parameters as JSON:
   TFX's own ``generate_container_command``), so every replica runs ``run_fn`` on the same artifacts;
2. builds the TFJob (components/training/tfjob.py), writes it to ``<model_run_dir>/tfjob.yaml`` (to read, or to
   apply again by hand), creates it with the Kubernetes API (CustomObjectsApi) and polls its conditions,
   logging each change in words, until Succeeded or Failed, at most ``timeout_seconds`` (then it deletes it; the
   TFJob's own activeDeadlineSeconds stops it too, should the step's pod be gone);
3. on failure, logs the end of each replica's log and raises; on success, checks that the chief exported the
   model where the Trainer's outputs say.

The Kubernetes client is configured in-cluster (the pod's service account: it needs the RBAC that
``python -m components.training.tfjob rbac`` prints) or, elsewhere, from ``$KUBECONFIG`` / ``~/.kube/config``.
"""
from __future__ import annotations

import json
import logging
import os
import secrets
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from tfx.dsl.components.base import base_executor, executor_spec
from tfx.dsl.io import fileio
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import json_utils, path_utils

from components.training import component, tfjob

log = logging.getLogger(__name__)

POLL_SECONDS = 30
# Consecutive failed status reads (a restarting API server, a dropped connection) before the step gives up.
READ_RETRIES = 5
LOG_TAIL_LINES = 30
TERMINAL = ("Succeeded", "Failed")
RBAC_COMMAND = "python -m components.training.tfjob rbac"


class TFJobFailedError(RuntimeError):
    pass


def api_error(error: Exception) -> str:
    """One line of what the API server said (its Status message), or of the error."""
    status, reason, body = getattr(error, "status", None), getattr(error, "reason", None), getattr(error, "body", None)
    try:
        message = json.loads(body)["message"]
    except (TypeError, ValueError, KeyError):
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
    return f"{status} {reason}: {message}" if status else message


def replica_command(input_dict, output_dict, exec_properties) -> List[str]:
    """The replicas' command: TFX's Vertex AI client's (run_executor of the project's Trainer executor, TFX's
    GenericExecutor with the step counts from execution properties, on these artifacts).
    ``generate_container_command`` uses nothing of its client instance."""
    from tfx.extensions.google_cloud_ai_platform.training_clients import AbstractJobClient
    from tfx.utils import name_utils

    from components.training.component import Executor as TrainerExecutor

    return AbstractJobClient.generate_container_command(
        None, input_dict, output_dict, exec_properties, name_utils.get_full_name(TrainerExecutor))


def kubernetes_api_client():
    """In a pod: its service account; elsewhere: $KUBECONFIG or ~/.kube/config (as TFX's kube_utils)."""
    from kubernetes import client, config

    configuration = client.Configuration()
    try:
        config.load_incluster_config(client_configuration=configuration)
    except config.ConfigException:
        config.load_kube_config(config_file=os.environ.get("KUBECONFIG"), client_configuration=configuration)
    return client.ApiClient(configuration)


class TFJobClient:
    """The four Kubernetes API calls the step makes, in one namespace."""

    def __init__(self, namespace: str, api_client=None):
        from kubernetes import client

        api_client = api_client or kubernetes_api_client()
        self.namespace = namespace
        self._objects = client.CustomObjectsApi(api_client)
        self._core = client.CoreV1Api(api_client)

    def create(self, manifest: Dict[str, Any]) -> Dict[str, Any]:
        return self._objects.create_namespaced_custom_object(tfjob.GROUP, tfjob.VERSION, self.namespace,
                                                             tfjob.PLURAL, manifest)

    def get(self, name: str) -> Dict[str, Any]:
        return self._objects.get_namespaced_custom_object(tfjob.GROUP, tfjob.VERSION, self.namespace,
                                                          tfjob.PLURAL, name)

    def delete(self, name: str) -> None:
        self._objects.delete_namespaced_custom_object(tfjob.GROUP, tfjob.VERSION, self.namespace, tfjob.PLURAL,
                                                      name, propagation_policy="Foreground")

    def log_tail(self, pod: str, lines: int = LOG_TAIL_LINES) -> str:
        return self._core.read_namespaced_pod_log(pod, self.namespace, tail_lines=lines)


def current_condition(status: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    """The TFJob's latest true condition (Created, Running, Restarting, Succeeded, Failed, ...), or None."""
    true = [c for c in (status or {}).get("conditions") or [] if c.get("status") == "True"]
    return true[-1] if true else None


def describe(status: Dict[str, Any]) -> str:
    """``Running (TFJob ... is running.); Chief: 1 active; Worker: 1 active``: what a person needs to see."""
    condition = current_condition(status)
    text = "no condition yet" if condition is None else (
        condition["type"] + (f" ({condition['message']})" if condition.get("message") else ""))
    replicas = []
    for replica, counts in sorted(((status or {}).get("replicaStatuses") or {}).items()):
        parts = [f"{counts[k]} {k}" for k in ("active", "succeeded", "failed") if counts.get(k)]
        replicas.append(f"{replica}: {', '.join(parts) or 'no pods yet'}")
    return "; ".join([text] + replicas)


def wait_for_tfjob(client: TFJobClient, name: str, timeout: float, poll: float = POLL_SECONDS,
                   clock: Callable[[], float] = time.monotonic,
                   sleep: Callable[[float], None] = time.sleep) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """Polls until the TFJob is Succeeded or Failed: (its final condition, its status). Raises
    TFJobFailedError after ``timeout`` seconds."""
    deadline, said, failed_reads = clock() + timeout, None, 0
    while True:
        try:
            status = client.get(name).get("status") or {}
            failed_reads = 0
        except Exception as e:  # noqa: BLE001  (retried, then reported in one line)
            failed_reads += 1
            if failed_reads > READ_RETRIES:
                raise TFJobFailedError(f"cannot read TFJob {client.namespace}/{name} ({READ_RETRIES + 1} tries): "
                                       f"{api_error(e)}") from None
            log.warning("reading TFJob %s/%s failed (%s); trying again", client.namespace, name, api_error(e))
            sleep(poll)
            continue
        text = describe(status)
        if text != said:
            log.info("TFJob %s/%s: %s", client.namespace, name, text)
            said = text
        condition = current_condition(status)
        if condition is not None and condition["type"] in TERMINAL:
            return condition, status
        if clock() >= deadline:
            raise TFJobFailedError(f"TFJob {client.namespace}/{name} did not finish within {timeout:.0f} s "
                                   f"(kubeflow.training.tfjob.timeout_seconds); last state: {text}")
        sleep(poll)


def unique_suffix() -> str:
    return time.strftime("%m%d%H%M%S", time.gmtime()) + secrets.token_hex(2)


class Executor(base_executor.BaseExecutor):
    """Trains in a TFJob (see the module docstring)."""

    poll_seconds = POLL_SECONDS

    def Do(self, input_dict, output_dict, exec_properties) -> None:
        self._log_startup(input_dict, output_dict, exec_properties)
        custom_config = json_utils.loads(exec_properties.get(standard_component_specs.CUSTOM_CONFIG_KEY) or "null")
        settings = tfjob.TFJobSettings.from_custom_config(custom_config)
        name = tfjob.job_name(settings.name_prefix, unique_suffix())
        manifest = tfjob.tfjob_manifest(name, settings, replica_command(input_dict, output_dict, exec_properties))
        model_run_dir = artifact_utils.get_single_uri(output_dict[standard_component_specs.MODEL_RUN_KEY])
        serving_model_dir = path_utils.serving_model_dir(
            artifact_utils.get_single_uri(output_dict[standard_component_specs.MODEL_KEY]))
        fileio.makedirs(model_run_dir)
        with fileio.open(os.path.join(model_run_dir, "tfjob.yaml"), "w") as f:
            f.write(tfjob.to_yaml([manifest]))

        client = TFJobClient(settings.namespace)
        where = f"{settings.namespace}/{name}"
        try:
            client.create(manifest)
        except Exception as e:  # noqa: BLE001  (the API server's answer, in one line)
            status = getattr(e, "status", None)
            hint = {403: f"; the step's service account needs the RBAC of `{RBAC_COMMAND} --namespace "
                         f"{settings.namespace}`",
                    404: "; is the Kubeflow Training Operator (its TFJob CRD) installed?"}.get(status, "")
            raise TFJobFailedError(f"cannot create TFJob {where}: {api_error(e)}{hint}") from None
        log.info("created TFJob %s: %d replica(s) of %s; the manifest is in %s/tfjob.yaml; replica logs: kubectl "
                 "logs -n %s %s", where, settings.workers, settings.image, model_run_dir, settings.namespace,
                 tfjob.replica_pod_names(name, settings.workers)[0])
        try:
            condition, status = wait_for_tfjob(client, name, settings.timeout_seconds, self.poll_seconds)
        except BaseException:
            _delete_quietly(client, name)
            raise
        if condition["type"] == "Failed":
            self._log_replica_tails(client, name, settings.workers)
            raise TFJobFailedError(f"TFJob {where} failed: {condition.get('reason') or 'Failed'}: "
                                   f"{condition.get('message') or describe(status)} (replica logs: kubectl logs -n "
                                   f"{settings.namespace} {tfjob.replica_pod_names(name, settings.workers)[0]})")
        if not fileio.exists(os.path.join(serving_model_dir, "saved_model.pb")):
            raise TFJobFailedError(f"TFJob {where} succeeded, but its chief exported no model into {serving_model_dir}")
        log.info("TFJob %s succeeded; the model is in %s", where, serving_model_dir)

    @staticmethod
    def _log_replica_tails(client: TFJobClient, name: str, workers: int) -> None:
        for pod in tfjob.replica_pod_names(name, workers):
            try:
                tail = client.log_tail(pod)
            except Exception as e:  # noqa: BLE001  (a pod may be gone; the error still names the job)
                tail = f"(no log: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
            log.error("end of %s's log:\n%s", pod, tail)


def _delete_quietly(client: TFJobClient, name: str) -> None:
    try:
        client.delete(name)
        log.info("deleted TFJob %s/%s", client.namespace, name)
    except Exception as e:  # noqa: BLE001  (the first error is the one to report)
        log.warning("could not delete TFJob %s/%s: %s", client.namespace, name, e)


class TFJobTrainer(component.Trainer):
    """The project's Trainer whose step trains in a TFJob (kubeflow.training.engine: tfjob)."""

    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)
