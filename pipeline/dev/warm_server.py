"""`tfxp dev`'s model servers, in its own process (TensorFlow is imported already).

* ``ServedModel``: the project's TF Serving-compatible server (serving/server.py: REST and gRPC) on the
  pushed model's base dir for as long as the loop runs. A new pushed version is loaded, warmed up with
  the requests the InfraValidator recorded, then serves; the previous one is unloaded (TF Serving's
  availability-preserving policy, serving/manager.py).
* ``InProcessRunner``: TFX's InfraValidator checks each candidate in a server of this process instead of
  a new `tfxp serve` (components/custom/infra_validator.py `local_runner_override`): the candidate is
  loaded by the same manager code, on its own gRPC port, and TFX's executor sends the same status and
  Predict requests, retries the same way and writes the same warmup file. One difference from the
  one-shot validator: this server shares the dev process's working directory, so a model that reads a
  file relative to it is not caught here (`tfxp run` validates in a new process in an empty directory).
"""
from __future__ import annotations

import argparse
import collections
import logging
import time
from typing import List, Optional, Sequence

from tfx.components.infra_validator import error_types
from tfx.components.infra_validator.model_server_runners import base_runner
from tfx.utils.model_paths import tf_serving_flavor

from components.custom.infra_validator import free_loopback_port
from serving import server as serving_server
from tfxp import contract

log = logging.getLogger(__name__)

HOST = "127.0.0.1"


def _server_args(flags: List[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(add_help=False)
    serving_server.add_serve_arguments(parser)
    return parser.parse_args(flags)


def _stop_server(model_server: serving_server.ModelServer, grace_seconds: float = 5) -> None:
    """Stops taking requests, then unloads every version (their memory is freed now, not at exit)."""
    from tensorflow_serving.config import model_server_config_pb2

    model_server.stop(grace_seconds)
    nothing = model_server_config_pb2.ModelServerConfig()
    nothing.model_config_list.SetInParent()
    model_server.manager.reload_config(nothing)


def _start_server(flags: List[str]) -> serving_server.ModelServer:
    args = _server_args(flags)
    model_server = serving_server.ModelServer(args, serving_server.options_from_args(args))
    model_server.load()
    try:
        model_server.start()
    except OSError as e:
        _stop_server(model_server, 0)
        raise serving_server.ServeError(str(e)) from None
    except serving_server.ServeError:
        _stop_server(model_server, 0)
        raise
    return model_server


class ServedModel:
    """The pushed model, served on ``grpc_port`` and ``rest_port`` while the loop runs."""

    def __init__(self, model_name: str, base_path: str, grpc_port: int, rest_port: int,
                 request_log_flags: Sequence[str] = ()):
        self.model_name, self.base_path = model_name, base_path
        self.grpc_port, self.rest_port = grpc_port, rest_port
        self.request_log_flags = list(request_log_flags)  # the config's serving.request_log, as `tfxp serve` flags
        self._server: Optional[serving_server.ModelServer] = None

    def start(self) -> None:
        self._server = _start_server([
            f"--host={HOST}", f"--port={self.grpc_port}", f"--rest_api_port={self.rest_port}",
            f"--model_name={self.model_name}", f"--model_base_path={self.base_path}", "--access_log=",
            "--file_system_poll_wait_seconds=1", "--rest_api_num_threads=4", *self.request_log_flags])

    @property
    def versions(self) -> List[int]:
        return self._server.manager.available_versions(self.model_name) if self._server else []

    def wait_until_serving(self, version: int, timeout: float = 120) -> bool:
        """Looks at the base dir now (not at the next poll), then waits until ``version`` serves."""
        deadline = time.monotonic() + timeout
        self._server.manager.poll()
        while version not in self.versions:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.1)
        return True

    def predict(self, serialized: bytes, version: Optional[int] = None):
        """The served model's output for one serialized tf.Example, over TF Serving's REST API."""
        from serving import client

        spec = client.ModelSpec(name=self.model_name, version=version)
        with client.connect("rest", HOST, self.rest_port, spec) as rest:
            return rest.predict([serialized])[0]

    def label_of(self, serialized: bytes, label_key: str, version: int):
        """The example's label as the served version's own tf.Transform graph computes it (transform_features)."""
        import numpy as np

        servable = self._server.manager.servable(self.model_name, version)
        outputs = servable.signature(contract.TRANSFORM_SIGNATURE).run({contract.EXAMPLES: np.array([serialized], dtype=object)})
        return outputs[label_key].reshape(-1)[0]

    def stop(self) -> None:
        if self._server is not None:
            _stop_server(self._server)
            self._server = None


class _Tail(logging.Handler):
    """The last lines the servers' loggers wrote (what TFX prints when validation fails)."""

    def __init__(self, lines: int = 50):
        super().__init__(logging.INFO)
        self.lines = collections.deque(maxlen=lines)

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith(("serving", "tfxp.serving")):
            self.lines.append(f"{record.levelname} {record.name}: {record.getMessage()}")


class InProcessRunner(base_runner.BaseModelServerRunner):
    """A TFX model server runner over a server of this process, for the model under ``model_path``
    (``<base>/<model_name>/<version>``, as TFX's executor prepares it)."""

    def __init__(self, model_path: str, serving_binary, serving_spec):
        del serving_binary  # the image TF Serving would run; this server speaks its API
        models_dir, self._model_name, _ = tf_serving_flavor.parse_model_path(
            model_path, expected_model_name=serving_spec.model_name)
        self._base_path = f"{models_dir.rstrip('/')}/{self._model_name}"
        self._server: Optional[serving_server.ModelServer] = None
        self._port: Optional[int] = None
        self._tail = _Tail()
        self._error: Optional[str] = None

    def __repr__(self) -> str:
        return f"InProcessRunner(model {self._model_name} from {self._base_path}, in the tfxp dev process)"

    def Start(self) -> None:
        logging.getLogger().addHandler(self._tail)
        self._port = free_loopback_port()
        try:
            self._server = _start_server([
                f"--host={HOST}", f"--port={self._port}", "--rest_api_port=0", f"--model_name={self._model_name}",
                f"--model_base_path={self._base_path}", "--access_log=", "--file_system_poll_wait_seconds=0"])
        except serving_server.ServeError as e:
            self._error = str(e)

    def WaitUntilRunning(self, deadline: float) -> None:
        if self._error is not None:
            raise error_types.JobAborted(f"the in-process server did not start: {self._error}")
        if self._server is None:
            raise error_types.JobAborted("the in-process server has not been started")

    def GetEndpoint(self) -> str:
        return f"{HOST}:{self._port}"

    def GetLogs(self) -> Optional[str]:
        return "\n".join(self._tail.lines) or None

    def Stop(self) -> None:
        if self._server is not None:
            _stop_server(self._server)
            self._server = None
        logging.getLogger().removeHandler(self._tail)
