"""TFX's InfraValidator, with a model server TFX 1.16 does not know: `tfxp serve` as a local process.

TFX's InfraValidator knows two serving platforms, `local_docker` and `kubernetes`; this machine has
neither a Docker engine nor a cluster. ``Executor`` below is TFX's own executor: its request builder
(eval examples -> PredictRequests on ``serving_default``), its gRPC client (model status, then every
request), its retries, its blessing and its warmup writer (``assets.extra/tf_serving_warmup_requests``
in the model it hands to the Pusher). Only the model server runner differs when the ServingSpec names
no platform: ``LocalProcessRunner`` starts ``tfxp serve`` (TF Serving's gRPC and REST APIs) on free
loopback ports, in an empty working directory, so that a model that only works next to the code that
trained it fails here as it would in the real server. With ``kubernetes`` (the Kubeflow preset), it
is TFX's executor and KubernetesRunner, with the pod's name and namespace filled in where KFP v1's
environment variables are missing.

When the model is not blessed, the blessing artifact says why in its ``reason`` custom property
(``tfxp run`` prints it).

``InfraValidator`` is TFX's component (spec, executor) under a class of our own, so that Kubeflow's
compiler takes it, with one more property: the fingerprint of the serving code (see below).
"""
from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import Callable, Optional

import grpc
from absl import logging
from tfx.components.infra_validator import error_types
from tfx.components.infra_validator import executor as tfx_executor
from tfx.components.infra_validator.model_server_runners import base_runner
from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types import standard_component_specs
from tfx.types.component_spec import ExecutionParameter
from tfx.utils.model_paths import tf_serving_flavor

REASON_KEY = "reason"
_LOG_TAIL_CHARS = 4000


def free_loopback_port() -> int:
    """A TCP port free on 127.0.0.1 now (the server binds it a moment later)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalProcessRunner(base_runner.BaseModelServerRunner):
    """Runs `tfxp serve` for the model under ``model_path`` (``<base>/<model_name>/<version>``)."""

    def __init__(self, model_path: str, serving_binary, serving_spec):
        del serving_binary  # the image TF Serving would run; `tfxp serve` speaks its API
        models_dir, self._model_name, _ = tf_serving_flavor.parse_model_path(
            model_path, expected_model_name=serving_spec.model_name)
        self._base_path = f"{models_dir.rstrip('/')}/{self._model_name}"  # TF Serving's: version dirs inside
        self._process: Optional[subprocess.Popen] = None
        # Local by nature: the server process's own empty working directory and its log.
        self._dirs: list = []
        self._workdir: Optional[str] = None
        self._log_path: Optional[str] = None
        self._grpc_port = None
        self._endpoint: Optional[str] = None
        self._final_log: Optional[str] = None

    def __repr__(self) -> str:
        return f"LocalProcessRunner(tfxp serve --model_name={self._model_name} --model_base_path={self._base_path})"

    def GetEndpoint(self) -> str:
        assert self._endpoint is not None, "the model server is not running: call Start() and WaitUntilRunning()"
        return self._endpoint

    def Start(self) -> None:
        assert self._process is None, "the model server was already started"
        self._dirs = [tempfile.TemporaryDirectory(prefix="tfxp-infra-validation-"),
                      tempfile.TemporaryDirectory(prefix="tfxp-infra-validation-log-")]
        self._workdir, self._log_path = self._dirs[0].name, f"{self._dirs[1].name}/serve.log"
        self._grpc_port = free_loopback_port()
        # serving.server's own entry point: the same flags as `tfxp serve`, without the CLI's parser, the
        # pipeline config and pipeline/. gRPC only: TFX's client validates over gRPC, and without REST the
        # child imports no FastAPI/uvicorn. TensorFlow, most of the child's start, the server needs.
        command = [sys.executable, "-m", "serving.server", "--host=127.0.0.1",
                   f"--port={self._grpc_port}", "--rest_api_port=0",
                   f"--model_name={self._model_name}", f"--model_base_path={self._base_path}", "--access_log="]
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL=os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"))
        logging.info("Starting the model server: %s", " ".join(command))
        with open(self._log_path, "w") as log:
            self._process = subprocess.Popen(command, cwd=self._workdir, stdout=log, stderr=subprocess.STDOUT,
                                             env=env, start_new_session=True)

    def WaitUntilRunning(self, deadline: float) -> None:
        assert self._process is not None, "the model server has not been started"
        while time.time() < deadline:
            if self._process.poll() is not None:
                raise error_types.JobAborted(f"tfxp serve exited with {self._process.returncode} before serving")
            try:
                grpc.channel_ready_future(grpc.insecure_channel(f"127.0.0.1:{self._grpc_port}")).result(timeout=1)
            except grpc.FutureTimeoutError:
                continue
            self._endpoint = f"127.0.0.1:{self._grpc_port}"
            return
        raise error_types.DeadlineExceeded("deadline exceeded while waiting for tfxp serve to listen")

    def GetLogs(self) -> Optional[str]:
        try:
            with open(self._log_path, errors="replace") as f:
                return f.read()[-_LOG_TAIL_CHARS:]
        except (TypeError, FileNotFoundError):  # not started, or stopped: what Stop() kept
            return self._final_log

    def Stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)  # drains, then exits 0
            try:
                self._process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._final_log = self.GetLogs()
        for directory in self._dirs:
            directory.cleanup()


# A process that already runs a model server (`tfxp dev`) validates candidates in it instead of starting
# `tfxp serve`: a factory (model_path, serving_binary, serving_spec) -> BaseModelServerRunner, set for this
# process by `local_runner_override`. The rest of the validation (requests, retries, blessing, warmup) is the same.
_local_runner_factory: Optional[Callable] = None


@contextlib.contextmanager
def local_runner_override(factory: Callable):
    """Inside: specs without a platform are validated by ``factory``'s runners, not a new `tfxp serve`."""
    global _local_runner_factory
    previous, _local_runner_factory = _local_runner_factory, factory
    try:
        yield
    finally:
        _local_runner_factory = previous


@contextlib.contextmanager
def _runner_for_unset_platform(created: list):
    """TFX's executor builds its runner in one module function; plug ours in for specs without a platform."""
    tfx_create = tfx_executor._create_model_server_runner  # pylint: disable=protected-access

    def create(model_path, serving_binary, serving_spec):
        if serving_spec.WhichOneof("serving_platform") is None:
            created.append((_local_runner_factory or LocalProcessRunner)(model_path, serving_binary, serving_spec))
            return created[-1]
        return tfx_create(model_path=model_path, serving_binary=serving_binary, serving_spec=serving_spec)

    tfx_executor._create_model_server_runner = create  # pylint: disable=protected-access
    try:
        yield
    finally:
        tfx_executor._create_model_server_runner = tfx_create  # pylint: disable=protected-access


def describe_failure(error: BaseException, server_log: Optional[str] = None) -> str:
    """One line: why the model server could not load or answer (not TFX's dump of the whole request)."""
    cause = error.__cause__
    if isinstance(cause, grpc.RpcError) and hasattr(cause, "code"):
        details = (cause.details() or "").strip().splitlines()
        return f"the server could not answer a request: {cause.code().name}: {details[0] if details else ''}"
    message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    errors = [line for line in (server_log or "").splitlines() if "ERROR" in line or "Error" in line]
    return f"{message}" + (f" (server log: {errors[-1].strip()[:300]})" if errors else "")


_SERVICE_ACCOUNT_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


def _kfp_v1_environment() -> None:
    """TFX's KubernetesRunner finds its own pod through KFP v1's KFP_POD_NAME and KFP_NAMESPACE. Under
    KFP v2 a pod is named by its hostname and knows its namespace from its service account."""
    from tfx.utils import kube_utils

    if kube_utils.KFP_POD_NAME not in os.environ and os.environ.get("HOSTNAME"):
        os.environ[kube_utils.KFP_POD_NAME] = os.environ["HOSTNAME"]
    if kube_utils.KFP_NAMESPACE not in os.environ:
        try:
            with open(_SERVICE_ACCOUNT_NAMESPACE) as f:
                os.environ[kube_utils.KFP_NAMESPACE] = f.read().strip()
        except FileNotFoundError:  # not in a pod: TFX's runner says so
            pass


class Executor(tfx_executor.Executor):
    """TFX's InfraValidator executor: `tfxp serve` as a local process when the ServingSpec names no
    platform; TFX's KubernetesRunner (a pod of the serving image) for ``kubernetes``."""

    _failure: Optional[str] = None

    def _ValidateOnce(self, model_path, serving_binary, serving_spec, validation_spec, requests):
        runners = []
        if serving_spec.WhichOneof("serving_platform") == "kubernetes":
            _kfp_v1_environment()
        try:
            with _runner_for_unset_platform(runners):
                return super()._ValidateOnce(model_path=model_path, serving_binary=serving_binary,
                                             serving_spec=serving_spec, validation_spec=validation_spec,
                                             requests=requests)
        except error_types.GracefulShutdown:
            raise
        except Exception as e:  # TFX retries, then marks the model not blessed: keep the reason
            self._failure = describe_failure(e, runners[-1].GetLogs() if runners else None)
            raise

    def _Do(self, model, examples, blessing, serving_spec, validation_spec, request_spec):
        super()._Do(model=model, examples=examples, blessing=blessing, serving_spec=serving_spec,
                    validation_spec=validation_spec, request_spec=request_spec)
        if not blessing.get_int_custom_property("blessed"):
            reason = self._failure or "no validation ran"
            blessing.set_string_custom_property(REASON_KEY, reason)
            logging.error("InfraValidator: the model is NOT blessed: %s", reason)
        else:
            logging.info("InfraValidator: the model loaded and answered %s in a model server",
                         f"{request_spec.num_examples} request(s)" if request_spec else "status requests")


class InfraValidatorSpec(standard_component_specs.InfraValidatorSpec):
    PARAMETERS = {**standard_component_specs.InfraValidatorSpec.PARAMETERS,
                  "code_fingerprint": ExecutionParameter(type=str, optional=True)}


class InfraValidator(base_component.BaseComponent):
    """TFX's InfraValidator (its spec, executor, client, request builder, runners) under a class of
    our own: TFX 1.16's Kubeflow V2 compiler refuses any ``tfx.components.InfraValidator`` instance
    (``step_builder.py``: "The component type ... is not supported", no reason given). Its
    KubernetesRunner reads KFP v1's KFP_POD_NAME and KFP_NAMESPACE; ``Executor`` fills them from the
    pod itself when they are missing. One more
    execution property: the fingerprint of the code that decides the result (this module and
    `serving/`), since TFX's cache keys on inputs and properties, not on executor code."""

    SPEC_CLASS = InfraValidatorSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

    def __init__(self, *, model, serving_spec, examples=None, request_spec=None, validation_spec=None,
                 code_fingerprint: str):
        spec = InfraValidatorSpec(
            model=model, examples=examples, blessing=types.Channel(type=standard_artifacts.InfraBlessing),
            serving_spec=serving_spec, validation_spec=validation_spec, request_spec=request_spec,
            code_fingerprint=code_fingerprint)
        super().__init__(spec=spec)
