"""One loaded model version (a "servable" in TF Serving's words) and the calls it answers.

The checks and messages follow TF Serving's ``servables/tensorflow/predict_util.cc``,
``classifier.cc``, ``regressor.cc`` and ``util.cc``, so that a client sees the same errors.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Mapping, Optional, Sequence

import numpy as np
from google.protobuf import text_format

from serving import errors
from serving.json_tensor import dtype_string
from tfxp import contract
from tfxp.saved_model import MAX_WARMUP_RECORDS, read_saved_model, warmup_file, warmup_records

log = logging.getLogger(__name__)

DEFAULT_SIGNATURE = contract.SIGNATURE
SERVE_TAG = "serve"
PREDICT_METHOD = "tensorflow/serving/predict"
CLASSIFY_METHOD = "tensorflow/serving/classify"
REGRESS_METHOD = "tensorflow/serving/regress"
CLASSIFY_INPUTS, CLASSIFY_CLASSES, CLASSIFY_SCORES = "inputs", "classes", "scores"
REGRESS_INPUTS, REGRESS_OUTPUTS = "inputs", "outputs"


def read_meta_graph(version_dir: str, tags: Sequence[str] = (SERVE_TAG,)):
    """The MetaGraphDef with exactly ``tags`` in the SavedModel's saved_model.pb (no TF load)."""
    saved_model = read_saved_model(version_dir)
    for meta_graph in saved_model.meta_graphs:
        if set(meta_graph.meta_info_def.tags) == set(tags):
            return meta_graph
    found = [sorted(m.meta_info_def.tags) for m in saved_model.meta_graphs]
    raise errors.not_found(f"Could not find meta graph def matching supplied tags: {{ {' '.join(tags)} }}. "
                           f"To inspect available tag-sets in the SavedModel, please use the SavedModel CLI: "
                           f"`saved_model_cli` (found: {found})")


@dataclass
class ServerBatching:
    """The batching a running server applies: TF Serving's BatchingParameters (protos.BatchingParameters, read
    from --batching_parameters_file) with TF Serving's own defaults where the file leaves a field out. Not
    the config's serving.batching (options.BatchingOptions: the values `tfxp serving-config` writes)."""
    max_batch_size: int = 1000
    batch_timeout_micros: int = 0
    max_enqueued_batches: int = 10
    num_batch_threads: int = field(default_factory=lambda: os.cpu_count() or 1)
    allowed_batch_sizes: List[int] = field(default_factory=list)
    implementation: str = "scheduler"  # or "tf_op": see serving/batching.py

    @classmethod
    def from_proto(cls, params, implementation: str = "scheduler") -> "ServerBatching":
        options = cls(implementation=implementation)
        for name in ("max_batch_size", "batch_timeout_micros", "max_enqueued_batches", "num_batch_threads"):
            if params.HasField(name):
                setattr(options, name, int(getattr(params, name).value))
        options.allowed_batch_sizes = list(params.allowed_batch_sizes)
        if options.allowed_batch_sizes and options.allowed_batch_sizes[-1] != options.max_batch_size:
            raise ValueError("Last entry in allowed_batch_sizes must match max_batch_size; last entry was "
                             f"{options.allowed_batch_sizes[-1]}; expected {options.max_batch_size}")
        return options


class Signature:
    """A SignatureDef and the function that runs it."""

    def __init__(self, key: str, signature_def, function, batching: Optional[ServerBatching] = None,
                 scope: str = "batch"):
        import tensorflow as tf

        self.key = key
        self.signature_def = signature_def
        self.method_name = signature_def.method_name
        self.input_keys = sorted(signature_def.inputs)
        self.output_keys = sorted(signature_def.outputs)
        self.input_dtypes = {k: tf.dtypes.as_dtype(signature_def.inputs[k].dtype) for k in self.input_keys}
        self._function = function
        self._call = self._compiled_call(function) or self._direct
        self.scheduler = None
        if batching is not None and self._batchable():
            if batching.implementation == "tf_op":
                self._call = self._batched_call(batching, scope)
            else:
                from serving.batching import BatchScheduler
                self.scheduler = BatchScheduler(self._run_arrays, batching, name=scope)

    def _batchable(self) -> bool:
        """TF's batch op splits every input and output along dimension 0: all must have one."""
        for info in list(self.signature_def.inputs.values()) + list(self.signature_def.outputs.values()):
            if info.tensor_shape.unknown_rank or not info.tensor_shape.dim:
                return False
        return bool(self.input_keys)

    def _direct(self, tensors: Dict) -> Dict:
        return self._function(**tensors)

    def _compiled_call(self, function) -> Optional[Callable[[Dict], Dict]]:
        """The signature as one concrete function with positional inputs: it skips the per-call
        argument binding and captured-variable lookups of the restored signature (~0.1 ms a call)."""
        import tensorflow as tf

        try:
            _, specs = function.structured_input_signature
            ordered = [specs[k] for k in self.input_keys]
        except (AttributeError, KeyError, TypeError, ValueError):
            return None
        keys = self.input_keys
        concrete = tf.function(lambda *args: function(**dict(zip(keys, args))), input_signature=ordered,
                               autograph=False).get_concrete_function()
        return lambda tensors: concrete(*[tensors[k] for k in keys])

    def _batched_call(self, options: ServerBatching, scope: str) -> Callable[[Dict], Dict]:
        """Calls go through TensorFlow's BatchFunction kernel (what TF Serving's in-graph batching
        uses): concurrent calls are merged into one run of up to max_batch_size rows."""
        import tensorflow as tf

        keys, outputs = self.input_keys, self.output_keys
        specs = [tf.TensorSpec([None] + [d.size if d.size >= 0 else None
                                         for d in self.signature_def.inputs[k].tensor_shape.dim[1:]],
                               self.input_dtypes[k], name=k) for k in keys]
        function = self._function

        @tf.function(input_signature=specs, autograph=False)
        def batched(*args):
            with tf.name_scope(scope):  # the batch op's shared_name: one batcher per servable signature
                @tf.nondifferentiable_batch_function(
                    options.num_batch_threads, options.max_batch_size, options.batch_timeout_micros,
                    allowed_batch_sizes=options.allowed_batch_sizes or None,
                    max_enqueued_batches=options.max_enqueued_batches, autograph=False)
                def run(*inner):
                    result = function(**dict(zip(keys, inner)))
                    return [result[k] for k in outputs]
                return dict(zip(outputs, run(*args)))

        return lambda tensors: batched(*[tensors[k] for k in keys])

    # -- Predict ----------------------------------------------------------------------------------
    def check_inputs(self, names: Sequence[str]) -> None:
        """predict_util.cc VerifyRequestInputsSize and saved_model::GetInputValues."""
        sent, expected = set(names), set(self.input_keys)
        if len(sent) > len(expected) or (len(sent) < len(expected) and not self.signature_def.defaults):
            extra, missing = sorted(sent - expected), sorted(expected - sent)
            raise errors.invalid_argument(
                f"input size does not match signature: {len(sent)}!={len(expected)} len({{{','.join(sorted(sent))}}}) "
                f"!= len({{{','.join(sorted(expected))}}}). Sent extra: {{{','.join(extra)}}}. "
                f"Missing but required: {{{','.join(missing)}}}.")
        for key in self.input_keys:
            if key not in sent and key not in self.signature_def.defaults:
                raise errors.invalid_argument(
                    f"Signature input alias: {key}(feed name: {self.signature_def.inputs[key].name}) not found in "
                    f"request and no default value provided. Inputs expected to be in the request "
                    f"{{{','.join(sorted(sent))}}}, or default input alias set: "
                    f"{','.join(sorted(self.signature_def.defaults))}")
        if sent - expected:
            used = sorted(sent & expected)
            raise errors.invalid_argument(f"Inputs contains invalid name. Used request inputs: {','.join(used)}, "
                                          f"request input: {','.join(sorted(sent))}")

    def output_aliases(self, output_filter: Sequence[str]) -> List[str]:
        seen: List[str] = []
        for alias in output_filter:
            if alias not in self.signature_def.outputs:
                raise errors.invalid_argument(
                    f"output tensor alias not found in signature: {alias} Outputs expected to be in the set "
                    f"{{{','.join(self.output_keys)}}}.")
            if alias in seen:
                raise errors.invalid_argument(f"duplicate output tensor alias: {alias}")
            seen.append(alias)
        return seen or list(self.output_keys)

    def run(self, inputs: Mapping[str, np.ndarray], output_filter: Sequence[str] = ()) -> Dict[str, np.ndarray]:
        """Runs the signature on numpy inputs (keyed by input alias); numpy outputs by alias."""
        import tensorflow as tf

        self.check_inputs(list(inputs))
        aliases = self.output_aliases(output_filter)
        arrays = {}
        for position, key in enumerate(self.input_keys):
            value = inputs[key] if key in inputs else tf.make_ndarray(self.signature_def.defaults[key])
            arrays[key] = _checked_array(value, self.input_dtypes[key], position)
        outputs = self.scheduler.submit(arrays) if self.scheduler is not None else self._run_arrays(arrays)
        return {alias: outputs[alias] for alias in aliases}

    def _run_arrays(self, arrays: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
        import tensorflow as tf

        try:
            result = self._call({k: tf.constant(v, dtype=self.input_dtypes[k]) for k, v in arrays.items()})
            return {alias: tensor.numpy() for alias, tensor in result.items()}
        except (tf.errors.InvalidArgumentError, ValueError, TypeError) as e:
            raise errors.invalid_argument(_tf_message(e)) from None
        except tf.errors.ResourceExhaustedError as e:
            raise errors.resource_exhausted(_tf_message(e)) from None
        except tf.errors.OpError as e:
            raise errors.ServingError(errors.Code.INTERNAL, _tf_message(e)) from None

    # -- Classify and Regress: one DT_STRING input of serialized tf.Examples ------------------------
    def _describe(self) -> str:
        return text_format.MessageToString(self.signature_def)

    def check_classification(self) -> None:
        """classifier.cc PreProcessClassification (the method-name check is off, as by default)."""
        sig = self.signature_def
        if len(sig.inputs) != 1:
            raise errors.invalid_argument("Expected one input Tensor.")
        if len(sig.outputs) not in (1, 2):
            raise errors.invalid_argument(f"Expected one or two output Tensors, found {len(sig.outputs)}")
        if CLASSIFY_INPUTS not in sig.inputs:
            raise errors.invalid_argument(f"No classification inputs found in SignatureDef: {self._describe()}")
        if CLASSIFY_CLASSES not in sig.outputs and CLASSIFY_SCORES not in sig.outputs:
            raise errors.invalid_argument(
                'Expected classification signature outputs to contain at least one of "classes" or "scores". '
                f"Signature was: {self._describe()}")

    def check_regression(self) -> None:
        """regressor.cc PreProcessRegression."""
        sig = self.signature_def
        if len(sig.inputs) != 1:
            raise errors.invalid_argument("Expected one input Tensor.")
        if len(sig.outputs) != 1:
            raise errors.invalid_argument("Expected one output Tensor.")
        if REGRESS_INPUTS not in sig.inputs:
            raise errors.invalid_argument(f"No regression inputs found in SignatureDef: {self._describe()}")
        if REGRESS_OUTPUTS not in sig.outputs:
            raise errors.invalid_argument(f"No regression outputs found in SignatureDef: {self._describe()}")

    def classify(self, serialized: Sequence[bytes]) -> List[List[tuple]]:
        """Per example, the (label, score) of each class: label b"" without a classes output,
        score None without a scores output (classifier.cc PostProcessClassificationResult)."""
        self.check_classification()
        _check_not_empty(serialized)
        out = self.run({CLASSIFY_INPUTS: np.array(serialized, dtype=object)})
        classes, scores = out.get(CLASSIFY_CLASSES), out.get(CLASSIFY_SCORES)
        n = len(serialized)
        for name, tensor, dtype in ((CLASSIFY_CLASSES, classes, "DT_STRING"), (CLASSIFY_SCORES, scores, "DT_FLOAT")):
            if tensor is None:
                continue
            if tensor.ndim != 2:
                raise errors.invalid_argument(
                    f"Expected Tensor shape: [batch_size num_classes] but got {_shape_string(tensor.shape)}")
            if (tensor.dtype == object) != (dtype == "DT_STRING") or (dtype == "DT_FLOAT" and tensor.dtype != np.float32):
                raise errors.invalid_argument(f"Expected {name} Tensor of {dtype}. Got: {_dtype_name(tensor)}")
            if tensor.shape[0] != n:
                raise errors.invalid_argument(f"Expected {name} output batch size of {n}. Got: {tensor.shape[0]}")
        if classes is not None and scores is not None and classes.shape[1] != scores.shape[1]:
            raise errors.invalid_argument("Tensors class and score should match in dim_size(1). Got "
                                          f"{classes.shape[1]} vs. {scores.shape[1]}")
        num_classes = (classes if classes is not None else scores).shape[1]
        return [[(classes[i, c] if classes is not None else b"", float(scores[i, c]) if scores is not None else None)
                 for c in range(num_classes)] for i in range(n)]

    def regress(self, serialized: Sequence[bytes]) -> List[float]:
        """One value per example (regressor.cc PostProcessRegressionResult)."""
        self.check_regression()
        _check_not_empty(serialized)
        out = self.run({REGRESS_INPUTS: np.array(serialized, dtype=object)})[REGRESS_OUTPUTS]
        n = len(serialized)
        if not (out.ndim == 1 or (out.ndim == 2 and out.shape[1] == 1)):
            raise errors.invalid_argument("Expected output Tensor shape to be either [batch_size] or "
                                          f"[batch_size, 1] but got {_shape_string(out.shape)}")
        if out.shape[0] != n:
            raise errors.invalid_argument(f"Input batch size did not match output batch size: {n} vs. {out.shape[0]}")
        if out.dtype != np.float32:
            raise errors.invalid_argument(f"Expected output Tensor of DT_FLOAT.  Got: {_dtype_name(out)}")
        return [float(v) for v in out.reshape(-1)]


def _check_not_empty(serialized: Sequence[bytes]) -> None:
    if not len(serialized):
        raise errors.invalid_argument("Input is empty.")


def _shape_string(shape) -> str:
    return "[" + ",".join(str(d) for d in shape) + "]"


def _dtype_name(array: np.ndarray) -> str:
    import tensorflow as tf

    if array.dtype == object:
        return "DT_STRING"
    return "DT_" + tf.dtypes.as_dtype(array.dtype).name.upper()


def _tf_message(error: Exception) -> str:
    message = getattr(error, "message", None) or str(error)
    return message.split("\n\n")[0].strip()


def _checked_array(value, dtype, position: int) -> np.ndarray:
    """A numpy value of the signature's dtype; another dtype is an INVALID_ARGUMENT in TensorFlow's
    words."""
    import tensorflow as tf

    value = np.asarray(value)
    actual = tf.string if value.dtype == object or value.dtype.kind in "SU" else tf.dtypes.as_dtype(value.dtype)
    if actual != dtype:
        raise errors.invalid_argument(f"Expects arg[{position}] to be {dtype_string(dtype)} but "
                                      f"{dtype_string(actual)} is provided")
    return value


class Servable:
    """A SavedModel version loaded into TensorFlow, with its signatures."""

    def __init__(self, name: str, version: int, path: str, batching: Optional[ServerBatching] = None):
        import tensorflow as tf

        self.name, self.version, self.path = name, version, path
        self.meta_graph = read_meta_graph(path)
        self._loaded = tf.saved_model.load(path, tags=[SERVE_TAG])
        self.signatures: Dict[str, Signature] = {}
        for key, signature_def in self.meta_graph.signature_def.items():
            if key not in self._loaded.signatures:  # e.g. __saved_model_init_op
                continue
            scope = f"servable_{_safe(name)}_{version}_{_safe(key)}"
            self.signatures[key] = Signature(key, signature_def, self._loaded.signatures[key], batching, scope)
            self.signatures[key].owner = self._loaded  # the variables live as long as any signature does

    def signature(self, key: str, method: str = PREDICT_METHOD) -> Signature:
        """TF Serving's lookup: an unknown key is FAILED_PRECONDITION for Predict and
        INVALID_ARGUMENT for Classify/Regress."""
        key = key or DEFAULT_SIGNATURE
        if key not in self.signatures:
            if method == PREDICT_METHOD:
                raise errors.failed_precondition(f'Serving signature key "{key}" not found.')
            raise errors.invalid_argument(f"No signature was found with the name: {key}")
        return self.signatures[key]

    def close(self) -> None:
        """Ends the batching threads once what they queued has run (the version is unloaded)."""
        for signature in self.signatures.values():
            if signature.scheduler is not None:
                signature.scheduler.stop()

    def signature_def_map(self):
        """The SignatureDefMap that GetModelMetadata returns."""
        from tensorflow_serving.apis import get_model_metadata_pb2

        result = get_model_metadata_pb2.SignatureDefMap()
        for key, signature_def in self.meta_graph.signature_def.items():
            result.signature_def[key].CopyFrom(signature_def)
        return result


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text)


def read_warmup_records(version_dir: str) -> List:
    """The PredictionLogs of assets.extra/tf_serving_warmup_requests ([] when there is none)."""
    from tensorflow_serving.apis import prediction_log_pb2

    records = []
    for record in warmup_records(version_dir):
        if len(records) >= MAX_WARMUP_RECORDS:
            raise errors.invalid_argument(f"Number of warmup records exceeds the maximum ({MAX_WARMUP_RECORDS}) "
                                          f"at {warmup_file(version_dir)}")
        records.append(prediction_log_pb2.PredictionLog.FromString(record))
    return records
