"""The gRPC API's requests on a servable: PredictRequest, ClassificationRequest, RegressionRequest,
GetModelMetadataRequest and GetModelStatusRequest, as TF Serving answers them. The gRPC service,
the warmup replay and (for metadata and status) the REST API all go through here."""
from __future__ import annotations

import logging
from typing import List, Optional, Tuple

import numpy as np

from serving import errors
from serving.manager import ModelManager, VersionStatus
from serving.servable import CLASSIFY_METHOD, REGRESS_METHOD, Servable, read_warmup_records
from tfxp import request_logs

log = logging.getLogger(__name__)

SIGNATURE_DEF_FIELD = "signature_def"
STATE_ENUM = {"START": 10, "LOADING": 20, "AVAILABLE": 30, "UNLOADING": 40, "END": 50}


def resolve(manager: ModelManager, model_spec, present: bool = True) -> Servable:
    """The servable a ModelSpec names (latest, a version or a label)."""
    if not present:
        raise errors.invalid_argument("Missing ModelSpec")
    choice = model_spec.WhichOneof("version_choice")
    version = model_spec.version.value if choice == "version" else None
    label = model_spec.version_label if choice == "version_label" else None
    return manager.servable(model_spec.name, version, label)


def _fill_model_spec(spec, servable: Servable, signature_name: str) -> None:
    spec.name = servable.name
    spec.version.value = servable.version
    spec.signature_name = signature_name


def predict(servable: Servable, request):
    import tensorflow as tf

    signature = servable.signature(request.model_spec.signature_name)
    inputs = {}
    for key, proto in request.inputs.items():
        try:
            inputs[key] = tf.make_ndarray(proto)
        except Exception:  # noqa: BLE001 - TF's "tensor parsing error"
            raise errors.invalid_argument(f"tensor parsing error: {key}") from None
    return predict_response(servable, signature.key, signature.run(inputs, list(request.output_filter)))


def predict_response(servable: Servable, signature_key: str, outputs):
    """The PredictResponse of a signature's numpy outputs (by alias)."""
    from tensorflow_serving.apis import predict_pb2

    response = predict_pb2.PredictResponse()
    _fill_model_spec(response.model_spec, servable, signature_key)
    for alias, value in outputs.items():
        fill_tensor_proto(response.outputs[alias], value)
    return response


# numpy dtype -> (DataType enum, the TensorProto field TF Serving's AsProtoField fills)
_PROTO_FIELDS = {
    np.dtype(np.float32): (1, "float_val"), np.dtype(np.float64): (2, "double_val"),
    np.dtype(np.int32): (3, "int_val"), np.dtype(np.uint8): (4, "int_val"), np.dtype(np.int16): (5, "int_val"),
    np.dtype(np.int8): (6, "int_val"), np.dtype(np.int64): (9, "int64_val"), np.dtype(np.bool_): (10, "bool_val"),
    np.dtype(np.uint32): (22, "uint32_val"), np.dtype(np.uint64): (23, "uint64_val"),
}


def fill_tensor_proto(proto, array: np.ndarray) -> None:
    """A numpy output as TF Serving writes it (Tensor::AsProtoField): dtype, shape and the typed
    ``*_val`` field, not ``tensor_content``."""
    import tensorflow as tf

    for size in array.shape:
        proto.tensor_shape.dim.add(size=size)
    if array.dtype == object or array.dtype.kind in "SU":
        proto.dtype = 7  # DT_STRING
        proto.string_val.extend(v if isinstance(v, bytes) else str(v).encode("utf-8") for v in array.reshape(-1))
    elif array.dtype in _PROTO_FIELDS:
        proto.dtype, field = _PROTO_FIELDS[array.dtype]
        getattr(proto, field).extend(array.reshape(-1).tolist())
    else:
        proto.CopyFrom(tf.make_tensor_proto(array))


def serialized_examples(input_proto) -> List[bytes]:
    """The request's serialized examples (tfxp.request_logs.input_examples); an empty Input is an error."""
    examples = request_logs.input_examples(input_proto)
    if examples is None:
        raise errors.invalid_argument("Input is empty.")
    return examples


def classify(servable: Servable, request):
    signature = servable.signature(request.model_spec.signature_name, CLASSIFY_METHOD)
    return classify_response(servable, signature.key, signature.classify(serialized_examples(request.input)))


def classify_response(servable: Servable, signature_key: str, rows):
    """The ClassificationResponse of Signature.classify's rows of (label, score)."""
    from tensorflow_serving.apis import classification_pb2

    response = classification_pb2.ClassificationResponse()
    _fill_model_spec(response.model_spec, servable, signature_key)
    for row in rows:
        classifications = response.result.classifications.add()
        for label, score in row:
            cls = classifications.classes.add()
            if label:
                cls.label = label if isinstance(label, str) else label.decode("utf-8", "replace")
            if score is not None:
                cls.score = score
    return response


def regress(servable: Servable, request):
    signature = servable.signature(request.model_spec.signature_name, REGRESS_METHOD)
    return regress_response(servable, signature.key, signature.regress(serialized_examples(request.input)))


def regress_response(servable: Servable, signature_key: str, values):
    """The RegressionResponse of Signature.regress's values."""
    from tensorflow_serving.apis import regression_pb2

    response = regression_pb2.RegressionResponse()
    _fill_model_spec(response.model_spec, servable, signature_key)
    for value in values:
        response.result.regressions.add(value=value)
    return response


def check_metadata_request(request) -> None:
    """get_model_metadata_impl.cc: a model spec and only the signature_def field."""
    if not request.HasField("model_spec"):
        raise errors.invalid_argument("Missing ModelSpec")
    if not request.metadata_field:
        raise errors.invalid_argument("GetModelMetadataRequest must specify at least one metadata_field")
    for name in request.metadata_field:
        if name != SIGNATURE_DEF_FIELD:
            raise errors.invalid_argument(f"Metadata field {name} is not supported")


def metadata(manager: ModelManager, request):
    from tensorflow_serving.apis import get_model_metadata_pb2

    check_metadata_request(request)
    servable = resolve(manager, request.model_spec)
    response = get_model_metadata_pb2.GetModelMetadataResponse()
    response.model_spec.CopyFrom(metadata_model_spec(servable))
    response.metadata[SIGNATURE_DEF_FIELD].Pack(servable.signature_def_map())
    return response


def metadata_model_spec(servable: Servable):
    """The ModelSpec GetModelMetadata answers with: name and version only (no label, no signature)."""
    from tensorflow_serving.apis import model_pb2

    spec = model_pb2.ModelSpec(name=servable.name)
    spec.version.value = servable.version
    return spec


def model_status(manager: ModelManager, request):
    from tensorflow_serving.apis import get_model_status_pb2

    if not request.HasField("model_spec"):
        raise errors.invalid_argument("Missing ModelSpec")
    spec = request.model_spec
    # As TF Serving: a version label is ignored here (all versions are listed).
    version: Optional[int] = spec.version.value if spec.WhichOneof("version_choice") == "version" else None
    response = get_model_status_pb2.GetModelStatusResponse()
    for status in manager.version_statuses(spec.name, version):
        add_version_status(response, status)
    return response


def add_version_status(response, status: VersionStatus) -> None:
    entry = response.model_version_status.add(version=status.version, state=STATE_ENUM[status.state])
    entry.status.error_code = status.error_code.value[0]
    entry.status.error_message = status.error_message


def warm_up(servable: Servable, iterations: int = 1) -> Tuple[int, float]:
    """Replays assets.extra/tf_serving_warmup_requests on a servable before it serves (TF Serving's
    saved_model_warmup): every record ``iterations`` times. Returns (requests, seconds)."""
    import time

    records = read_warmup_records(servable.path)
    start = time.perf_counter()
    for _ in range(max(1, iterations)):
        for log_entry in records:
            kind = log_entry.WhichOneof("log_type")
            if kind == "predict_log":
                predict(servable, log_entry.predict_log.request)
            elif kind == "classify_log":
                classify(servable, log_entry.classify_log.request)
            elif kind == "regress_log":
                regress(servable, log_entry.regress_log.request)
            elif kind is not None:  # multi_inference_log, session_run_log, predict_streamed_log
                number = log_entry.DESCRIPTOR.fields_by_name[kind].number
                raise errors.unimplemented(f"Unsupported log_type for warmup: {number}")
    seconds = time.perf_counter() - start
    if records:
        log.info("model %s: version %d warmed up with %d requests in %.2f s", servable.name, servable.version,
                 len(records) * max(1, iterations), seconds)
    return len(records) * max(1, iterations), seconds
