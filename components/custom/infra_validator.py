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
import threading
import time
from typing import Callable, List, Optional

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

from tfxp.files import write_atomically

REASON_KEY = "reason"
_LOG_TAIL_CHARS = 4000


def free_loopback_port() -> int:
    """A TCP port free on 127.0.0.1 now (the server binds it a moment later)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _ServerProcess:
    """`python -m serving.server FLAGS` on a free loopback gRPC port, in an empty working directory of its own
    (a model that only works next to the code that trained it fails here as in the real server), its output in a
    log file. serving.server's own entry point: the same flags as `tfxp serve`, without the CLI's parser, the
    pipeline config and pipeline/. gRPC only: TFX's client validates over gRPC, and without REST the child imports
    no FastAPI/uvicorn. TensorFlow, most of the child's start, the server needs."""

    def __init__(self, flags: List[str]):
        self._dirs = [tempfile.TemporaryDirectory(prefix="tfxp-infra-validation-"),
                      tempfile.TemporaryDirectory(prefix="tfxp-infra-validation-log-")]
        self.workdir, self.log_path = self._dirs[0].name, f"{self._dirs[1].name}/serve.log"
        self.grpc_port = free_loopback_port()
        # --stop_on_stdin_eof: this process holds the pipe's other end; if it dies (a killed run), the server ends.
        command = [sys.executable, "-m", "serving.server", "--host=127.0.0.1", f"--port={self.grpc_port}",
                   "--rest_api_port=0", "--access_log=", "--stop_on_stdin_eof", *flags]
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL=os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"))
        logging.info("Starting the model server: %s", " ".join(command))
        with open(self.log_path, "w") as log:
            self.process = subprocess.Popen(command, cwd=self.workdir, stdin=subprocess.PIPE, stdout=log,
                                            stderr=subprocess.STDOUT, env=env, start_new_session=True)
        self.final_log: Optional[str] = None

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def wait_until_listening(self, deadline: float) -> None:
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise error_types.JobAborted(f"tfxp serve exited with {self.process.returncode} before serving")
            try:
                grpc.channel_ready_future(grpc.insecure_channel(self.endpoint)).result(timeout=1)
            except grpc.FutureTimeoutError:
                continue
            return
        raise error_types.DeadlineExceeded("deadline exceeded while waiting for tfxp serve to listen")

    def logs(self) -> Optional[str]:
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()[-_LOG_TAIL_CHARS:]
        except FileNotFoundError:  # stopped: what stop() kept
            return self.final_log

    def stop(self) -> None:
        self.process.stdin.close()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # drains, then exits 0
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.final_log = self.logs()
        for directory in self._dirs:
            directory.cleanup()


class LocalProcessRunner(base_runner.BaseModelServerRunner):
    """Runs `tfxp serve` for the model under ``model_path`` (``<base>/<model_name>/<version>``)."""

    def __init__(self, model_path: str, serving_binary, serving_spec):
        del serving_binary  # the image TF Serving would run; `tfxp serve` speaks its API
        models_dir, self._model_name, _ = tf_serving_flavor.parse_model_path(
            model_path, expected_model_name=serving_spec.model_name)
        self._base_path = f"{models_dir.rstrip('/')}/{self._model_name}"  # TF Serving's: version dirs inside
        self._server: Optional[_ServerProcess] = None
        self._listening = False

    def __repr__(self) -> str:
        return f"LocalProcessRunner(tfxp serve --model_name={self._model_name} --model_base_path={self._base_path})"

    def GetEndpoint(self) -> str:
        assert self._listening, "the model server is not running: call Start() and WaitUntilRunning()"
        return self._server.endpoint

    def Start(self) -> None:
        assert self._server is None, "the model server was already started"
        self._server = _ServerProcess([f"--model_name={self._model_name}", f"--model_base_path={self._base_path}"])

    def WaitUntilRunning(self, deadline: float) -> None:
        assert self._server is not None, "the model server has not been started"
        self._server.wait_until_listening(deadline)
        self._listening = True

    def GetLogs(self) -> Optional[str]:
        return self._server.logs() if self._server is not None else None

    def Stop(self) -> None:
        if self._server is not None:
            self._server.stop()


class StandbyServer:
    """A model server process started ahead of the InfraValidator (e.g. when the Trainer starts), so that its
    imports overlap the Trainer's work instead of adding to the validation's: the same `serving.server` process,
    working directory and checks as LocalProcessRunner's, serving a model config file (TF Serving's
    --model_config_file, polled) that names no model until a validation names the candidate.

    ``runner`` is a runner factory for ``local_runner_override``: the first validation uses this process, any
    other (a retry) a new LocalProcessRunner. ``close()`` ends the process."""

    POLL_SECONDS = 0.1

    def __init__(self):
        self._server: Optional[_ServerProcess] = None
        self._used = False
        self._lock = threading.Lock()

    def start(self) -> None:
        """Starts the process (once; later calls do nothing)."""
        with self._lock:
            if self._server is None and not self._used:
                self._config_dir = tempfile.TemporaryDirectory(prefix="tfxp-infra-validation-config-")
                self._config_path = os.path.join(self._config_dir.name, "models.config")
                self._write_config("")
                self._server = _ServerProcess([f"--model_config_file={self._config_path}",
                                               f"--model_config_file_poll_wait_seconds={self.POLL_SECONDS}",
                                               "--file_system_poll_wait_seconds=0"])

    def _write_config(self, models: str) -> None:
        # the server reads the old config or the new one, never half
        write_atomically(self._config_path, f"model_config_list {{{models}}}\n")

    def serve(self, model_name: str, base_path: str) -> Optional[_ServerProcess]:
        """The running process, now serving ``model_name`` from ``base_path``; None when it cannot (not started,
        used already, or exited)."""
        with self._lock:
            if self._server is None or self._used or self._server.process.poll() is not None:
                return None
            self._used = True
            self._write_config(f' config {{ name: "{model_name}" base_path: "{base_path}" '
                               f'model_platform: "tensorflow" }} ')
            return self._server

    def runner(self, model_path: str, serving_binary, serving_spec) -> base_runner.BaseModelServerRunner:
        return _StandbyRunner(self, model_path, serving_binary, serving_spec)

    def close(self) -> None:
        with self._lock:
            if self._server is not None:
                self._server.stop()
                self._config_dir.cleanup()
            self._used = True


class _StandbyRunner(LocalProcessRunner):
    """LocalProcessRunner on a StandbyServer's process when it is free, else on a process of its own."""

    def __init__(self, standby: StandbyServer, model_path: str, serving_binary, serving_spec):
        super().__init__(model_path, serving_binary, serving_spec)
        self._standby = standby
        self._on_standby = False

    def __repr__(self) -> str:
        return super().__repr__() + (" (started ahead)" if self._on_standby else "")

    def Start(self) -> None:
        assert self._server is None, "the model server was already started"
        self._server = self._standby.serve(self._model_name, self._base_path)
        self._on_standby = self._server is not None
        if not self._on_standby:
            super().Start()

    def Stop(self) -> None:
        if not self._on_standby:  # the standby process is the StandbyServer's to end
            super().Stop()


# A process that already runs a model server (`tfxp dev`) validates candidates in it instead of starting
# `tfxp serve`: a factory (model_path, serving_binary, serving_spec) -> BaseModelServerRunner, set for this
# process by `local_runner_override`. The rest of the validation (requests, retries, blessing, warmup) is the same.
_local_runner_factory: Optional[Callable] = None


def runner_override_active() -> bool:
    return _local_runner_factory is not None


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
