"""KServe's payload logger, received: its CloudEvents -> TF Serving's request and response protos -> one
``tensorflow.serving.PredictionLog`` per request and response (what `tfxp log-sink` writes).

What KServe's agent sends (kserve ``pkg/logger``: handler.go, worker.go; cloudevents sdk-go v2 in binary
mode): one POST per event, no retry. The attributes are headers: ``Ce-Id`` (the client's own ``Ce-Id``
header, else a new UUID: the same on a request and on its response, the only link between them),
``Ce-Type`` (REQUEST_TYPE or RESPONSE_TYPE), ``Ce-Specversion``, ``Ce-Source`` (the pod),
``Ce-Time`` (when the request arrived, or when the response came back; RFC 3339), ``Ce-Recordedtime``,
``Ce-Inferenceservicename``, ``Ce-Namespace``, ``Ce-Component``, ``Ce-Endpoint``, ``Ce-Metadata``
(JSON of the headers the logger's ``metadataHeaders`` matched). ``Content-Type`` is the inference
request's on both events (absent when the client sent none), so the body is read as JSON whatever it
says. The body is the request as the client sent it, or the response as the model server wrote it. Every
request through the agent is sent, GETs too (an empty body; their reply is a status or metadata JSON);
a response only when the server answered 200, and the two may arrive in either order.

The bodies are TF Serving's REST JSON, read by ``serving/json_tensor.py`` as the server reads them:
``instances`` (row) or ``inputs`` (columnar) -> PredictRequest, ``predictions`` or ``outputs`` ->
PredictResponse, ``examples`` (and ``context``) -> the ``Input`` of a ClassificationRequest or a
RegressionRequest, which of the two told by the response: ``results`` of ``[label, score]`` lists are a
classification's, of numbers a regression's (the event does not carry the URL's ``:classify`` or
``:regress``). Without the model, a tensor's dtype follows its JSON values (strings and ``{"b64": ...}``
DT_STRING, ``true``/``false`` DT_BOOL, numbers DT_FLOAT when any has a fraction or an exponent, else
DT_INT64), and a tensor the JSON leaves unnamed (a plain ``instances`` list or ``inputs`` value, plain
``predictions`` rows) takes the serving contract's name: ``examples`` in, ``outputs`` out.
"""
from __future__ import annotations

import dataclasses
import datetime
import re
import time
from typing import Any, Dict, Mapping, Optional

from serving import errors, inference, json_tensor, request_log
from tfxp import contract

REQUEST_TYPE = "org.kubeflow.serving.inference.request"
RESPONSE_TYPE = "org.kubeflow.serving.inference.response"
REQUEST, RESPONSE = "request", "response"
EVENT_KINDS = {REQUEST_TYPE: REQUEST, RESPONSE_TYPE: RESPONSE}
ID_HEADER, TYPE_HEADER, TIME_HEADER = "ce-id", "ce-type", "ce-time"
MODEL_HEADER = "ce-inferenceservicename"   # KServe's TF runtime serves the model under this name
# What a Half carries: a predict request or response; a classify/regress request's examples; a result.
PREDICT, EXAMPLES, CLASSIFY, REGRESS = "predict", "examples", "classify", "regress"
SAMPLING_RATE = 1.0   # KServe logs every request it proxies (mode: all)
_RFC3339 = re.compile(r"(\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d:\d\d)(\.\d+)?([Zz]|[+-]\d\d:\d\d)")


class EventError(ValueError):
    """An event that cannot become part of a log: str() is one line saying why; ``kind`` is the event's
    kind (REQUEST, RESPONSE, or "other" for an unknown Ce-Type)."""

    def __init__(self, message: str, kind: str = "other"):
        super().__init__(message)
        self.kind = kind


@dataclasses.dataclass(frozen=True)
class Half:
    """One side of an inference: ``api`` (PREDICT, EXAMPLES, CLASSIFY, REGRESS) and its proto (a
    PredictRequest, an Input, a PredictResponse, a ClassificationResult, a RegressionResult)."""
    api: str
    message: Any
    signature_name: str = ""   # a request's, as the client named it ("" for the default)


@dataclasses.dataclass(frozen=True)
class Event:
    id: str
    kind: str                  # REQUEST or RESPONSE
    model: str                 # Ce-Inferenceservicename
    time: float                # Ce-Time, Unix seconds (the time it was received when absent)
    half: Optional[Half]       # None: no inference (a GET's request or reply): nothing to log


def preload() -> None:
    """Imports TensorFlow and TF Serving's protos now (seconds), so that the first event is answered as fast
    as the next."""
    import tensorflow  # noqa: F401
    from tensorflow_serving.apis import classification_pb2, predict_pb2  # noqa: F401
    from tensorflow_serving.config import logging_config_pb2  # noqa: F401
    from tensorflow_serving.apis import prediction_log_pb2, regression_pb2  # noqa: F401


def parse_time(text: Optional[str]) -> Optional[float]:
    """An RFC 3339 time (sdk-go writes nanoseconds, which Python's parser refuses) as Unix seconds."""
    match = _RFC3339.fullmatch((text or "").strip())
    if not match:
        return None
    zone = "+00:00" if match.group(3) in ("Z", "z") else match.group(3)
    moment = datetime.datetime.fromisoformat(match.group(1).replace("t", "T").replace(" ", "T") + zone)
    return moment.timestamp() + float(match.group(2) or 0)


def parse_event(headers: Mapping[str, str], body: bytes) -> Event:
    """One POST of the agent: its headers (any case) and body. Raises EventError."""
    headers = {key.lower(): value for key, value in headers.items()}
    ce_type = headers.get(TYPE_HEADER)
    kind = EVENT_KINDS.get(ce_type or "")
    if kind is None:
        raise EventError(f"Ce-Type {ce_type!r} is not a KServe inference event ({REQUEST_TYPE} or {RESPONSE_TYPE})"
                         if ce_type else "no Ce-Type header: not a CloudEvent in binary mode")
    event_id = headers.get(ID_HEADER, "")
    if not event_id:
        raise EventError("no Ce-Id header: a request and its response cannot be paired", kind)
    model = headers.get(MODEL_HEADER, "")
    moment = parse_time(headers.get(TIME_HEADER))
    try:
        half = _request(body) if kind == REQUEST else _response(body)
    except errors.ServingError as e:
        raise EventError(f"{kind} {event_id}: {e.message}", kind) from None
    return Event(event_id, kind, model, time.time() if moment is None else moment, half)


def _request(body: bytes) -> Optional[Half]:
    if not body.strip():
        return None   # a GET (status, metadata): TF Serving logs no such request either
    document = json_tensor.parse_json(body)
    signature = json_tensor.signature_name(document)
    if "instances" in document or "inputs" in document:
        from tensorflow_serving.apis import predict_pb2

        request = predict_pb2.PredictRequest()
        _fill_tensors(request.inputs, document, contract.EXAMPLES)
        return Half(PREDICT, request, signature)
    if "examples" in document:
        return Half(EXAMPLES, json_tensor.classify_regress_input(document, CLASSIFY), signature)
    raise errors.invalid_argument("Missing 'inputs', 'instances' or 'examples' key")


def _response(body: bytes) -> Optional[Half]:
    document = json_tensor.parse_json(body)
    if "predictions" in document or "outputs" in document:
        from tensorflow_serving.apis import predict_pb2

        response = predict_pb2.PredictResponse()
        # The row and columnar replies are the row and columnar requests' shapes (MakeJsonFromTensors).
        renamed = ({"instances": document["predictions"]} if "predictions" in document
                   else {"inputs": document["outputs"]})
        _fill_tensors(response.outputs, renamed, contract.OUTPUTS)
        return Half(PREDICT, response)
    if "results" in document:
        return _results(document["results"])
    return None   # a status or metadata reply: the answer to a GET


def _fill_tensors(protos, document, unnamed: str) -> None:
    key = "instances" if "instances" in document else "inputs"
    arrays, _ = json_tensor.predict_inputs(document, _dtypes(document[key], key == "instances", unnamed))
    for name, array in arrays.items():
        inference.fill_tensor_proto(protos[name], array)


def _is_object(value) -> bool:
    return isinstance(value, dict) and not (len(value) == 1 and "b64" in value)


def _dtypes(value, rows: bool, unnamed: str) -> Dict[str, Any]:
    """{tensor name: dtype} from the JSON values (the sink has no signature to read them from)."""
    if rows and isinstance(value, list) and value and _is_object(value[0]):
        columns: Dict[str, list] = {}
        for row in value:
            for name, item in (row.items() if isinstance(row, dict) else ()):
                columns.setdefault(name, []).append(item)
        return {name: _dtype(items) for name, items in columns.items()}
    if not rows and _is_object(value):
        return {name: _dtype(item) for name, item in value.items()}
    return {unnamed: _dtype(value)}


def _dtype(value):
    import tensorflow as tf

    kinds: set = set()
    _leaf_kinds(value, kinds)
    if kinds & {"string", "object"}:
        return tf.string
    if "bool" in kinds:
        return tf.bool
    if "float" in kinds or not kinds:
        return tf.float32
    return tf.int64


def _leaf_kinds(value, kinds: set) -> None:
    if isinstance(value, list):
        for item in value:
            _leaf_kinds(item, kinds)
    elif isinstance(value, (str, dict)):
        kinds.add("string" if isinstance(value, str) or not _is_object(value) else "object")
    elif isinstance(value, bool):
        kinds.add("bool")
    elif isinstance(value, int):
        kinds.add("int")
    else:
        kinds.add("float")   # float, NaN, Infinity; a null fails in json_tensor with TF Serving's message


def _results(results) -> Half:
    """``{"results": ...}``: a classification's ``[[label, score], ...]`` per example
    (json_tensor.classify_reply), or a regression's one number per example (regress_reply)."""
    from tensorflow_serving.apis import classification_pb2, regression_pb2

    if not isinstance(results, list) or not results:
        raise errors.invalid_argument("'results' must be a non-empty list")
    if all(isinstance(row, list) for row in results):
        result = classification_pb2.ClassificationResult()
        for row in results:
            classifications = result.classifications.add()
            for pair in row:
                if not (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], str)
                        and _is_number(pair[1])):
                    raise errors.invalid_argument(f"a classification result is [label, score], got "
                                                  f"{json_tensor.debug_string(pair)}")
                cls = classifications.classes.add(score=pair[1])
                if pair[0]:
                    cls.label = pair[0]
        return Half(CLASSIFY, result)
    if all(_is_number(value) for value in results):
        result = regression_pb2.RegressionResult()
        for value in results:
            result.regressions.add(value=value)
        return Half(REGRESS, result)
    raise errors.invalid_argument("'results' is neither a classification's (lists of [label, score]) nor a "
                                  "regression's (numbers)")


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def prediction_log(request: Event, response: Event):
    """The PredictionLog of a request and its response (serving/request_log.py's record, as `tfxp serve`
    writes it): the request as the server received it (the model named by Ce-Inferenceservicename, the
    signature as the client named it); the response with the signature that ran; the time the request
    arrived; sampling rate 1 (KServe logs every request). The version is not in the events: unset.
    Raises EventError when the two do not belong together."""
    from tensorflow_serving.apis import classification_pb2, predict_pb2, regression_pb2
    from tensorflow_serving.config import logging_config_pb2

    asked, answered = request.half, response.half
    if asked.api == PREDICT and answered.api == PREDICT:
        kind = request_log.PREDICT
        request_proto, response_proto = predict_pb2.PredictRequest(), predict_pb2.PredictResponse()
        request_proto.CopyFrom(asked.message)
        response_proto.CopyFrom(answered.message)
    elif asked.api == EXAMPLES and answered.api in (CLASSIFY, REGRESS):
        classify = answered.api == CLASSIFY
        kind = request_log.CLASSIFY if classify else request_log.REGRESS
        request_proto = (classification_pb2.ClassificationRequest if classify
                         else regression_pb2.RegressionRequest)(input=asked.message)
        response_proto = (classification_pb2.ClassificationResponse if classify
                          else regression_pb2.RegressionResponse)()
        response_proto.result.CopyFrom(answered.message)
    else:
        raise EventError(f"request {request.id} ({asked.api}) was answered with a {answered.api} response",
                         RESPONSE)
    request_proto.model_spec.name = response_proto.model_spec.name = request.model
    request_proto.model_spec.signature_name = asked.signature_name
    response_proto.model_spec.signature_name = asked.signature_name or contract.SIGNATURE
    sampling = logging_config_pb2.SamplingConfig(sampling_rate=SAMPLING_RATE)
    return request_log.log_record(kind, request_proto, response_proto, sampling, int(request.time))
