"""TF Serving's REST JSON <-> tensors, after ``tensorflow_serving/util/json_tensor.cc``.

Requests: ``instances`` (row format: a list, one element per batch row, objects for named inputs)
or ``inputs`` (columnar: a value/list, or an object of named inputs), ``signature_name``,
``{"b64": ...}`` for binary strings; classify/regress take ``examples`` (and ``context``) as
JSON objects turned into tf.Examples. Replies: ``predictions`` (row), ``outputs`` (columnar),
``results`` (classify/regress); floats written as TF Serving writes them (shortest ``%g`` that
round-trips, else ``max_digits10``; ``.0`` on whole numbers; ``NaN``/``Infinity``); string outputs
whose name ends in ``_bytes`` as ``{"b64": ...}``. Error messages are TF Serving's, word for word.
"""
from __future__ import annotations

import base64
import binascii
import json
import math
from typing import Dict, List, Mapping, Tuple

import numpy as np

from serving import errors

ROW, COLUMNAR = "row", "columnar"
_INT32 = (-2 ** 31, 2 ** 31 - 1)
_INT64 = (-2 ** 63, 2 ** 63 - 1)
_DEBUG_LIMIT = 256  # kMaxJsonDebugStringBytes


# -- JSON values as rapidjson sees them ----------------------------------------------------------
def json_type(value) -> str:
    if value is None:
        return "Null"
    if value is True:
        return "True"
    if value is False:
        return "False"
    if isinstance(value, dict):
        return "Object"
    if isinstance(value, list):
        return "Array"
    if isinstance(value, str):
        return "String"
    return "Number"


def _debug(value, indent: int = 0) -> str:
    """rapidjson's PrettyWriter with single-line arrays, as JsonValueToDebugString writes it."""
    if isinstance(value, dict):
        if not value:
            return "{}"
        pad = " " * (indent + 4)
        items = [f'{pad}{json.dumps(k)}: {_debug(v, indent + 4)}' for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + " " * indent + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_debug(v, indent) for v in value) + "]"
    if isinstance(value, float):
        return _decimal(value, double=True)
    return json.dumps(value)


def debug_string(value) -> str:
    text = _debug(value)
    return text if len(text) <= _DEBUG_LIMIT else text[:_DEBUG_LIMIT]


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _is_int_in(v, bounds: Tuple[int, int]) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and bounds[0] <= v <= bounds[1]


def dtype_string(dtype) -> str:
    """TensorFlow's DataTypeString: float, double, int64, string ..."""
    return {"float32": "float", "float64": "double", "float16": "half"}.get(dtype.name, dtype.name)


def _type_error(value, dtype) -> errors.ServingError:
    return errors.invalid_argument(f"JSON Value: {debug_string(value)} Type: {json_type(value)} "
                                   f"is not of expected type: {dtype_string(dtype)}")


def _format_error(value, *parts) -> errors.ServingError:
    return errors.invalid_argument(f"JSON Value: {debug_string(value)} " + "".join(parts))


def _is_b64(value) -> bool:
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get("b64"), str)


def _decode_b64(value) -> bytes:
    if not _is_b64(value):
        raise errors.invalid_argument(f"JSON Value: {debug_string(value)} not formatted correctly for base64 data")
    try:
        return base64.b64decode(value["b64"], validate=True)
    except (binascii.Error, ValueError):
        raise errors.invalid_argument("Unable to base64 decode") from None


def _scalar(value, dtype):
    """AddValueToTensor: one JSON leaf as a value of dtype."""
    name = dtype.name
    if name in ("float32", "float64"):
        ok = _is_number(value)
    elif name in ("int32", "int16", "int8", "uint8"):
        ok = _is_int_in(value, _INT32)
    elif name == "int64":
        ok = _is_int_in(value, _INT64)
    elif name == "uint32":
        ok = _is_int_in(value, (0, 2 ** 32 - 1))
    elif name == "uint64":
        ok = _is_int_in(value, (0, 2 ** 64 - 1))
    elif name == "bool":
        ok = isinstance(value, bool)
    elif name == "string":
        if not isinstance(value, str):
            raise _type_error(value, dtype)
        return value.encode("utf-8")
    else:
        raise errors.unimplemented(f"Conversion of JSON Value: {debug_string(value)} to type: {dtype_string(dtype)}")
    if not ok:
        raise _type_error(value, dtype)
    return value


def _shape_of(value) -> List[int]:
    """GetDenseTensorShape: the sizes along the first element of each nesting level."""
    shape = []
    while isinstance(value, list):
        shape.append(len(value))
        if not value:
            break
        value = value[0]
    return shape


def _fill(value, level: int, shape: List[int], dtype, out: list) -> None:
    """FillTensorProto: checks that the nesting is dense and collects the leaves."""
    rank = len(shape)
    if not isinstance(value, list):
        if level != rank:
            raise errors.invalid_argument(f"JSON Value: {debug_string(value)} found at incorrect level: {level + 1} "
                                          f"in the JSON DOM. Expected at level: {rank}")
        if isinstance(value, dict):
            if dtype.name != "string":
                raise _type_error(value, dtype)
            out.append(_decode_b64(value))
        else:
            out.append(_scalar(value, dtype))
        return
    if level >= rank:
        raise errors.invalid_argument(f"Encountered list at unexpected level: {level} expected < {rank}")
    if len(value) != shape[level]:
        raise errors.invalid_argument(f"Encountered list at unexpected size: {len(value)} at level: {level} "
                                      f"expected size: {shape[level]}")
    for item in value:
        _fill(item, level + 1, shape, dtype, out)


def _numpy_dtype(dtype):
    return object if dtype.name == "string" else dtype.as_numpy_dtype


def to_array(value, dtype) -> np.ndarray:
    shape = _shape_of(value)
    leaves: list = []
    _fill(value, 0, shape, dtype, leaves)
    array = np.empty(len(leaves), dtype=_numpy_dtype(dtype))
    with np.errstate(over="ignore"):  # as TF Serving: a double beyond float's range is +-inf
        array[:] = leaves
    return array.reshape(shape)


# -- requests ------------------------------------------------------------------------------------
def parse_json(body: bytes):
    """ParseJson: the document must be a JSON object (NaN and Infinity allowed, as rapidjson's flags)."""
    if not body:
        raise errors.invalid_argument("JSON Parse error: The document is empty")
    try:
        document = json.loads(body)
    except json.JSONDecodeError as e:
        raise errors.invalid_argument(f"JSON Parse error: {e.msg} at offset: {e.pos}") from None
    except UnicodeDecodeError as e:
        raise errors.invalid_argument(f"JSON Parse error: Invalid encoding in string. at offset: {e.start}") from None
    if not isinstance(document, dict):
        raise _format_error(document, "Is not object")
    return document


def signature_name(document) -> str:
    if "signature_name" in document:
        value = document["signature_name"]
        if not isinstance(value, str):
            raise errors.invalid_argument(f"JSON Value: {debug_string(document)} not formatted correctly. "
                                          f"'signature_name' key must be a string value.")
        return value
    return ""


def predict_inputs(document, input_dtypes: Mapping) -> Tuple[Dict[str, np.ndarray], str]:
    """FillPredictRequestFromJson: (numpy inputs by alias, ROW or COLUMNAR)."""
    if not input_dtypes:
        name = document.get("signature_name") or "DEFAULT"
        raise errors.invalid_argument(f"Failed to get input map for signature: {name}")
    has_instances, has_inputs = "instances" in document, "inputs" in document
    if has_instances and has_inputs:
        raise _format_error(document, "Not formatted correctly expecting only one of 'inputs' or 'instances' "
                                      "keys to exist ")
    if has_instances:
        instances = document["instances"]
        if not isinstance(instances, list):
            raise _format_error(document, "Expecting 'instances' to be an list/array")
        if not instances:
            raise _format_error(document, "No values in 'instances' array")
        return _from_instances(instances, input_dtypes), ROW
    if has_inputs:
        return _from_inputs(document["inputs"], input_dtypes), COLUMNAR
    raise errors.invalid_argument("Missing 'inputs' or 'instances' key")


def _status_string(error: errors.ServingError) -> str:
    return f"{error.code.name}: {error.message}"


def _from_instances(instances: list, input_dtypes: Mapping) -> Dict[str, np.ndarray]:
    names = sorted(input_dtypes)
    if not isinstance(instances[0], dict) and len(names) > 1:
        raise errors.invalid_argument("instances is a plain list, but expecting list of objects as multiple input "
                                      "tensors required as per tensorinfo_map")

    def is_object(v) -> bool:
        return isinstance(v, dict) and not _is_b64(v)

    objects = is_object(instances[0])
    columns: Dict[str, list] = {}
    shapes: Dict[str, Tuple[int, List[int]]] = {}

    def add(item, name: str) -> None:
        if name not in input_dtypes:
            raise errors.invalid_argument(f"JSON object: does not have named input: {name}")
        array = to_array(item, input_dtypes[name])
        if name not in shapes:
            shapes[name] = (array.size, list(array.shape))
        elif shapes[name][0] != array.size:
            raise errors.invalid_argument(f"Expecting tensor size: {shapes[name][0]} but got: {array.size}")
        elif shapes[name][1] != list(array.shape):
            raise errors.invalid_argument(f"Expecting shape {_shape_text(shapes[name][1])} but got: "
                                          f"{_shape_text(array.shape)}")
        columns.setdefault(name, []).append(array)

    for index, element in enumerate(instances):
        if objects:
            if not is_object(element):
                raise errors.invalid_argument(f"Expecting object but got list at item {index} of input list")
            for name, item in element.items():
                try:
                    add(item, name)
                except errors.ServingError as e:
                    raise errors.invalid_argument(f"Failed to process element: {index} key: {name} of 'instances' "
                                                  f"list. Error: {_status_string(e)}") from None
            if set(element) != set(names):
                raise errors.invalid_argument(
                    f"Failed to process element: {index} of 'instances' list. JSON object: {debug_string(element)} "
                    f"keys must be equal to: {','.join(names)}")
        else:
            if is_object(element):
                raise errors.invalid_argument(f"Expecting value/list but got object at item {index} of input list")
            try:
                add(element, names[0])
            except errors.ServingError as e:
                raise errors.invalid_argument(f"Failed to process element: {index} of 'instances' list. "
                                              f"Error: {_status_string(e)}") from None
    return {name: _stack(parts) for name, parts in columns.items()}


def _stack(parts: List[np.ndarray]) -> np.ndarray:
    """One row per instance: the batch dimension first."""
    if parts[0].ndim:
        return np.stack(parts)
    batch = np.empty(len(parts), dtype=parts[0].dtype)
    batch[:] = [p[()] for p in parts]
    return batch


def _shape_text(shape) -> str:
    return "[" + ",".join(str(d) for d in shape) + "]"


def _from_inputs(value, input_dtypes: Mapping) -> Dict[str, np.ndarray]:
    names = sorted(input_dtypes)
    if not isinstance(value, dict) or _is_b64(value):
        if len(names) > 1:
            raise errors.invalid_argument("inputs is a plain value/list, but expecting an object as multiple input "
                                          "tensors required as per tensorinfo_map")
        return {names[0]: to_array(value, input_dtypes[names[0]])}
    result = {}
    for name in names:
        if name not in value:
            raise errors.invalid_argument(f"Missing named input: {name} in 'inputs' object.")
        result[name] = to_array(value[name], input_dtypes[name])
    return result


def _feature_error(name: str, kind: str) -> errors.ServingError:
    return errors.invalid_argument(f"Unexpected element type in feature: {name} expecting type: {kind}")


def example_from_json(value):
    """MakeExampleFromJsonObject: a JSON object of feature name -> value or list -> tf.train.Example."""
    import tensorflow as tf

    if not isinstance(value, dict):
        raise errors.invalid_argument(f"Example must be JSON object but got JSON {json_type(value)}")
    example = tf.train.Example()
    for name, content in value.items():
        feature = tf.train.Feature()
        for item in (content if isinstance(content, list) else [content]):
            kind = feature.WhichOneof("kind")
            if item is None or isinstance(item, list) or (isinstance(item, dict) and not _is_b64(item)):
                raise errors.invalid_argument(f"Feature: {name} has element with unexpected JSON type: "
                                              f"{json_type(item)}")
            if isinstance(item, bool) or (isinstance(item, int)):
                if kind not in (None, "int64_list"):
                    raise _feature_error(name, kind.split("_")[0])
                if not isinstance(item, bool) and not _INT64[0] <= item <= _INT64[1]:
                    raise errors.invalid_argument(f"Feature: {name} has uint64_t element. Only int64_t is supported.")
                feature.int64_list.value.append(int(item))
            elif isinstance(item, float):
                if kind not in (None, "float_list"):
                    raise _feature_error(name, kind.split("_")[0])
                feature.float_list.value.append(item)
            else:
                if kind not in (None, "bytes_list"):
                    raise _feature_error(name, kind.split("_")[0])
                feature.bytes_list.value.append(_decode_b64(item) if isinstance(item, dict) else item.encode("utf-8"))
        example.features.feature[name].CopyFrom(feature)
    return example


def classify_regress_input(document, method: str):
    """FillClassifyRegressRequestFromJson: the request's tensorflow.serving.Input."""
    from tensorflow_serving.apis import input_pb2

    result = input_pb2.Input()
    has_context = "context" in document
    if has_context:
        result.example_list_with_context.context.CopyFrom(example_from_json(document["context"]))
    if "examples" not in document:
        raise _format_error(document, f"When method is {method}, key 'examples' is expected and was not found")
    examples = document["examples"]
    if not isinstance(examples, list):
        raise _format_error(document, "Expecting 'examples' value to be an list/array")
    if not examples:
        raise _format_error(document, "'examples' value is an empty array")
    target = result.example_list_with_context.examples if has_context else result.example_list.examples
    for item in examples:
        target.add().CopyFrom(example_from_json(item))
    return result


# -- replies -------------------------------------------------------------------------------------
def _decimal(value: float, double: bool) -> str:
    """WriteDecimal: %g when it round-trips in the value's precision, else max_digits10 digits."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "-Infinity" if value < 0 else "Infinity"
    text = "%g" % value
    roundtrip = float(text) if double else float(np.float32(float(text)))
    if roundtrip != value:
        text = "%.*g" % (17 if double else 9, value)
    if "." not in text and "e" not in text:
        text += ".0"
    return text


def _write(array: np.ndarray, as_bytes: bool, parts: List[str]) -> None:
    """AddTensorValues: nested lists along every dimension (a scalar alone)."""
    if array.ndim == 0:
        parts.append(_leaf(array[()], array.dtype, as_bytes))
        return
    parts.append("[")
    for i in range(array.shape[0]):
        if i:
            parts.append(", ")
        if array.ndim == 1:
            parts.append(_leaf(array[i], array.dtype, as_bytes))
        else:
            _write(array[i], as_bytes, parts)
    parts.append("]")


def _leaf(value, dtype, as_bytes: bool) -> str:
    if dtype == np.float32:
        return _decimal(float(value), double=False)
    if dtype == np.float64:
        return _decimal(float(value), double=True)
    if dtype == np.bool_:
        return "true" if value else "false"
    if dtype == object or dtype.kind in "SU":
        data = value if isinstance(value, bytes) else str(value).encode("utf-8")
        if as_bytes:
            return '{"b64": "%s"}' % base64.b64encode(data).decode("ascii")
        return json.dumps(data.decode("utf-8", "replace"), ensure_ascii=False)
    return str(int(value))


def _is_bytes_output(name: str, array: np.ndarray) -> bool:
    return (array.dtype == object or array.dtype.kind == "S") and name.endswith("_bytes")


def predict_reply(outputs: Mapping[str, np.ndarray], form: str) -> str:
    """MakeJsonFromTensors: ``{"predictions": [...]}`` (row) or ``{"outputs": ...}`` (columnar)."""
    if not outputs:
        raise errors.invalid_argument("Cannot convert empty tensor map to JSON")
    names = sorted(outputs)
    parts: List[str] = []
    if form == COLUMNAR:
        if len(names) == 1:
            _write(outputs[names[0]], _is_bytes_output(names[0], outputs[names[0]]), parts)
            return '{\n    "outputs": ' + "".join(parts) + "\n}"
        parts.append("{")
        for i, name in enumerate(names):
            parts.append(("" if i == 0 else ",") + f"\n        {json.dumps(name)}: ")
            _write(outputs[name], _is_bytes_output(name, outputs[name]), parts)
        parts.append("\n    }")
        return '{\n    "outputs": ' + "".join(parts) + "\n}"
    batch = -1
    for name in names:
        array = outputs[name]
        if array.ndim == 0:
            raise errors.invalid_argument(f"Tensor name: {name} has no shape information ")
        if batch >= 0 and array.shape[0] != batch:
            raise errors.invalid_argument(f"Tensor name: {name} has inconsistent batch size: {array.shape[0]} "
                                          f"expecting: {batch}")
        batch = array.shape[0]
    rows = []
    for item in range(batch):
        if len(names) == 1:
            row: List[str] = []
            _write(outputs[names[0]][item, ...], _is_bytes_output(names[0], outputs[names[0]]), row)
            rows.append("".join(row))
        else:
            fields = []
            for name in names:
                value: List[str] = []
                _write(outputs[name][item, ...], _is_bytes_output(name, outputs[name]), value)
                fields.append(f"{json.dumps(name)}: {''.join(value)}")
            rows.append("{" + ", ".join(fields) + "}")
    return '{\n    "predictions": [' + ", ".join(rows) + "\n    ]\n}"


def classify_reply(rows) -> str:
    """MakeJsonFromClassificationResult: ``{"results": [[[label, score], ...], ...]}``."""
    if not rows:
        raise errors.invalid_argument("Cannot convert empty ClassificationResults to JSON")
    items = []
    for row in rows:
        classes = []
        for label, score in row:
            text = label.decode("utf-8", "replace") if isinstance(label, bytes) else str(label)
            classes.append(f"[{json.dumps(text, ensure_ascii=False)}, "
                           f"{_decimal(float(np.float32(score or 0.0)), double=False)}]")
        items.append("[" + ", ".join(classes) + "]")
    return '{\n    "results": [' + ", ".join(items) + "\n    ]\n}"


def regress_reply(values) -> str:
    """MakeJsonFromRegressionResult: ``{"results": [v, ...]}``."""
    if not values:
        raise errors.invalid_argument("Cannot convert empty RegressionResults to JSON")
    return '{\n    "results": [' + ", ".join(_decimal(float(np.float32(v)), double=False) for v in values) + "]\n}"


def error_reply(message: str) -> str:
    return json.dumps({"error": message}, indent=4, ensure_ascii=False)
