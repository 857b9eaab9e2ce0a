"""Client of TF Serving's predict API (REST or gRPC): what ``tfxp predict`` (pipeline/predict.py) sends.

Serialized ``tf.train.Example``s are sent in batches to the model's signature (default
``serving_default``: input ``examples``, output ``outputs``, tfxp/contract.py), exactly as the real
tensorflow/serving documents its requests:

    REST  POST http://HOST:PORT/v1/models/MODEL[/versions/V | /labels/L]:predict
          {"signature_name": "serving_default", "instances": [{"b64": "<serialized example>"}, ...]}
          -> {"predictions": [...]}, or {"error": "..."} with an HTTP status
    gRPC  tensorflow.serving.PredictionService/Predict(PredictRequest) -> PredictResponse

Each request has a timeout and is retried with exponential backoff when the server is
unavailable (HTTP 503, gRPC UNAVAILABLE) or the connection is refused or dropped; other errors
are raised at once, carrying TF Serving's message. No TensorFlow here: the messages are
``tfxp.wire``'s (the same bytes as TensorFlow's and TF Serving's); gRPC and requests are imported
only when used, so that building the ``tfxp`` parser stays cheap.
"""
from __future__ import annotations

import base64
import dataclasses
import logging
import time
from typing import Iterator, Optional, Sequence, Union

import numpy as np

from tfxp import contract
from tfxp.errors import TfxpError

log = logging.getLogger(__name__)

PROTOCOLS = ("rest", "grpc")
DEFAULT_SIGNATURE, INPUT_KEY, OUTPUT_KEY = contract.SIGNATURE, contract.EXAMPLES, contract.OUTPUTS  # tfxp/contract.py
DEFAULT_TIMEOUT_SECONDS = 10.0
DEFAULT_RETRIES = 3
DEFAULT_BATCH_SIZE = 32
DEFAULT_BACKOFF_SECONDS = 0.5
MAX_BACKOFF_SECONDS = 8.0


class ClientError(ValueError, TfxpError):
    """Bad input or arguments: the message names the file, line and column when there is one."""


class ServingRequestError(RuntimeError, TfxpError):
    """TF Serving answered a request with an error, or gave no answer.

    ``status``: the HTTP status (REST) or the gRPC status code name; None when no answer came.
    ``message``: TF Serving's error message (or the transport's). ``attempts``: requests made.
    """
    exit_code = 1  # the request failed, not its input

    def __init__(self, endpoint: str, status: Union[int, str, None], message: str, attempts: int = 1):
        super().__init__(endpoint, status, message)
        self.endpoint, self.status, self.message, self.attempts = endpoint, status, message, attempts

    def __str__(self) -> str:
        status = f"HTTP {self.status}: " if isinstance(self.status, int) else f"{self.status}: " if self.status else ""
        after = f" (after {self.attempts} attempts)" if self.attempts > 1 else ""
        return f"{self.endpoint}: {status}{self.message}{after}"


class ServingUnavailable(ServingRequestError):
    """The server was unavailable (HTTP 503, gRPC UNAVAILABLE, connection refused) on every attempt."""


# -- what to call ---------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """Which servable and signature to call (the fields of TF Serving's ``ModelSpec``)."""
    name: str
    version: Optional[int] = None
    label: Optional[str] = None
    signature_name: str = DEFAULT_SIGNATURE

    def __post_init__(self):
        if not self.name:
            raise ClientError("a model name is needed (--model)")
        if self.version is not None and self.label is not None:
            raise ClientError(f"model {self.name!r}: give a version or a label, not both")
        if self.version is not None and self.version < 0:
            raise ClientError(f"model {self.name!r}: version must be a non-negative integer, got {self.version}")


def rest_url(host: str, port: int, model: ModelSpec) -> str:
    """TF Serving's REST predict URL for ``model``."""
    from urllib.parse import quote

    host = f"[{host}]" if ":" in host else host  # an IPv6 literal
    path = f"/v1/models/{quote(model.name, safe='')}"
    if model.version is not None:
        path += f"/versions/{model.version}"
    elif model.label is not None:
        path += f"/labels/{quote(model.label, safe='')}"
    return f"http://{host}:{port}{path}:predict"


def rest_body(serialized: Sequence[bytes], model: ModelSpec) -> dict:
    """TF Serving's REST predict body (row format): one base64 ``{"b64": ...}`` value per example."""
    return {"signature_name": model.signature_name,
            "instances": [{"b64": base64.b64encode(s).decode("ascii")} for s in serialized]}


def grpc_request(serialized: Sequence[bytes], model: ModelSpec):
    """TF Serving's ``PredictRequest``: the serialized examples as a DT_STRING tensor [N]."""
    from tfxp import wire

    request = wire.PredictRequest()
    request.model_spec.name = model.name
    if model.version is not None:
        request.model_spec.version.value = model.version
    elif model.label is not None:
        request.model_spec.version_label = model.label
    request.model_spec.signature_name = model.signature_name
    request.inputs[INPUT_KEY].CopyFrom(wire.string_tensor(serialized))
    return request


# -- clients --------------------------------------------------------------------------------------

class PredictClient:
    """Batching and retries with exponential backoff; subclasses send one request (``_send``).

    Keeps one connection (session or channel) for all calls: use it as a context manager, or
    call ``close()``.
    """

    protocol = ""

    def __init__(self, host: str, port: Optional[int], model: ModelSpec, *,
                 timeout: float = DEFAULT_TIMEOUT_SECONDS, retries: int = DEFAULT_RETRIES,
                 backoff: float = DEFAULT_BACKOFF_SECONDS, max_backoff: float = MAX_BACKOFF_SECONDS):
        if timeout <= 0:
            raise ClientError(f"--timeout must be positive, got {timeout:g}")
        if retries < 0:
            raise ClientError(f"--retries must be 0 or more, got {retries}")
        self.host, self.port, self.model = host, port or contract.DEFAULT_PORTS[self.protocol], model
        self.timeout, self.retries, self.backoff, self.max_backoff = timeout, retries, backoff, max_backoff

    @property
    def endpoint(self) -> str:
        """Where requests go, as errors name it."""
        raise NotImplementedError

    def _send(self, serialized: Sequence[bytes]) -> np.ndarray:
        """One request; raises ServingUnavailable for what is worth retrying, ServingRequestError else."""
        raise NotImplementedError

    def predict_batch(self, serialized: Sequence[bytes]) -> np.ndarray:
        """The outputs for one batch in one request (retried when unavailable): [N, units]."""
        attempt, delay = 1, self.backoff
        while True:
            try:
                outputs = self._send(serialized)
            except ServingRequestError as e:
                if not isinstance(e, ServingUnavailable) or attempt > self.retries:
                    e.attempts = attempt
                    raise
                log.warning("%s; retrying in %.2g s (attempt %d of %d)", e, delay, attempt + 1, self.retries + 1)
                time.sleep(delay)
                attempt, delay = attempt + 1, min(delay * 2, self.max_backoff)
                continue
            if len(outputs) != len(serialized):
                raise ServingRequestError(self.endpoint, None, f"answered {len(outputs)} predictions for "
                                                               f"{len(serialized)} examples", attempt)
            return outputs

    def predict_batches(self, serialized: Sequence[bytes], batch_size: int = DEFAULT_BATCH_SIZE
                        ) -> Iterator[np.ndarray]:
        """The outputs of each batch of ``batch_size`` examples, in order, as they arrive."""
        if batch_size < 1:
            raise ClientError(f"--batch-size must be at least 1, got {batch_size}")
        return (self.predict_batch(serialized[start:start + batch_size])
                for start in range(0, len(serialized), batch_size))

    def predict(self, serialized: Sequence[bytes], batch_size: int = DEFAULT_BATCH_SIZE) -> np.ndarray:
        """One output row per serialized example: [N, units]."""
        batches = list(self.predict_batches(serialized, batch_size))
        return np.concatenate(batches) if batches else np.zeros((0, 1), np.float32)

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class RestClient(PredictClient):
    """TF Serving's REST API over one ``requests.Session`` (kept-alive connections)."""

    protocol = "rest"

    def __init__(self, host: str, port: Optional[int], model: ModelSpec, **options):
        import requests

        super().__init__(host, port, model, **options)
        self.url = rest_url(self.host, self.port, model)
        self._session = requests.Session()

    @property
    def endpoint(self) -> str:
        return f"POST {self.url}"

    def _send(self, serialized: Sequence[bytes]) -> np.ndarray:
        import requests

        try:
            response = self._session.post(self.url, json=rest_body(serialized, self.model), timeout=self.timeout)
        except requests.Timeout:  # before ConnectionError: a connect timeout is both; not retried
            raise ServingRequestError(self.endpoint, None, f"no answer within {self.timeout:g} s") from None
        except requests.ConnectionError as e:
            raise ServingUnavailable(self.endpoint, None, _transport_error(e)) from None
        if response.status_code != 200:
            error = ServingUnavailable if response.status_code == 503 else ServingRequestError
            raise error(self.endpoint, response.status_code, _rest_error_message(response))
        try:
            predictions = response.json()["predictions"]
            return _as_outputs([p[OUTPUT_KEY] if isinstance(p, dict) else p for p in predictions])
        except (ValueError, KeyError, TypeError):
            raise ServingRequestError(self.endpoint, 200, f"expected {{\"predictions\": [...]}} with one "
                                                          f"{OUTPUT_KEY!r} row per example, got "
                                                          f"{response.text[:200]!r}") from None

    def close(self) -> None:
        self._session.close()


class GrpcClient(PredictClient):
    """TF Serving's gRPC ``PredictionService`` over one channel."""

    protocol = "grpc"

    def __init__(self, host: str, port: Optional[int], model: ModelSpec, **options):
        import grpc

        from tfxp import wire

        super().__init__(host, port, model, **options)
        self.target = f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"
        # gRPC's own reconnect backoff (1 s, growing) would fail our retries fast: align it with ours.
        backoff_ms = max(1, int(self.backoff * 1000))
        self._channel = grpc.insecure_channel(self.target, options=[
            ("grpc.initial_reconnect_backoff_ms", backoff_ms), ("grpc.min_reconnect_backoff_ms", backoff_ms),
            ("grpc.max_reconnect_backoff_ms", max(backoff_ms, int(self.max_backoff * 1000)))])
        # What tensorflow_serving's PredictionServiceStub does for Predict, with TensorFlow-free messages.
        self._predict = self._channel.unary_unary(wire.PREDICT_METHOD,
                                                  request_serializer=wire.PredictRequest.SerializeToString,
                                                  response_deserializer=wire.PredictResponse.FromString)

    @property
    def endpoint(self) -> str:
        return f"gRPC {self.target} Predict"

    def _send(self, serialized: Sequence[bytes]) -> np.ndarray:
        import grpc

        from tfxp import wire

        try:
            response = self._predict(grpc_request(serialized, self.model), timeout=self.timeout)
        except grpc.RpcError as e:
            code = e.code()
            error = ServingUnavailable if code == grpc.StatusCode.UNAVAILABLE else ServingRequestError
            raise error(self.endpoint, code.name, e.details() or "") from None
        if OUTPUT_KEY not in response.outputs:
            raise ServingRequestError(self.endpoint, "OK", f"no output {OUTPUT_KEY!r} in the answer (outputs: "
                                                           f"{', '.join(sorted(response.outputs)) or 'none'})")
        try:
            return _as_outputs(wire.tensor_to_array(response.outputs[OUTPUT_KEY]))
        except ValueError as e:
            raise ServingRequestError(self.endpoint, "OK", f"output {OUTPUT_KEY!r}: {e}") from None

    def close(self) -> None:
        self._channel.close()


def connect(protocol: str, host: str, port: Optional[int], model: ModelSpec, **options) -> PredictClient:
    """A RestClient or GrpcClient; ``options``: timeout, retries, backoff, max_backoff."""
    if protocol not in PROTOCOLS:
        raise ClientError(f"--protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
    return (RestClient if protocol == "rest" else GrpcClient)(host, port, model, **options)


def _as_outputs(values) -> np.ndarray:
    outputs = np.asarray(values, dtype=np.float32)
    return outputs.reshape(len(outputs), -1)


def _rest_error_message(response) -> str:
    """TF Serving's ``{"error": ...}`` text, else the body (a proxy's page, say), else the reason."""
    try:
        return str(response.json()["error"])
    except (ValueError, KeyError, TypeError):
        return response.text.strip()[:500] or response.reason or "no message"


def _transport_error(error: BaseException) -> str:
    """The socket error under requests' and urllib3's wrappers, e.g. 'Connection refused'."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno is not None:
            return f"cannot connect: {error.strerror}"
        nested = [a for a in getattr(error, "args", ()) if isinstance(a, BaseException)]
        error = error.__cause__ or getattr(error, "reason", None) or (nested[0] if nested else error.__context__)
    return "connection failed or dropped"
