"""TFLiteConverter: a custom TFX component that turns the Trainer's model into TFLite variants.

Input contract: tf.Transform's vocabulary (hash table) ops are not TFLite builtins, so the
TFLite models are converted from the Trainer's ``serving_transformed`` signature and take the
TRANSFORMED features, one ``[1, 1]`` input per model feature, named
``<feature>_xf`` (float32 for numeric features, int64 ids for the rest; an int8 model takes its
float inputs quantized to int8). The output is the task's head (P(label), one probability per
class, or the value). The app reproduces the transformation with the tf.Transform graph that is
pushed beside the .tflite files (or computes the same values natively). ``input_contract.json``
in the artifact spells this out.

Variants, one ``<variant>.tflite`` file each: the modes of tflite_options.QUANTIZATIONS, and
``qat_int8`` (the quantization-aware-trained model, converted like int8) when enabled.
"""
from __future__ import annotations

import json
import logging
import os
from typing import Any, Callable, Dict, Iterator, List

import numpy as np
import tensorflow as tf
from tfx import types
from tfx.dsl.components.base import base_component, base_executor, executor_spec
from tfx.dsl.io import fileio
from tfx.types import artifact_utils, standard_artifacts
from tfx.types.component_spec import ChannelParameter, ExecutionParameter
from tfx.utils import io_utils

from components.core.user_code import UserCode, load_user_code
from components.custom.tflite_options import NEEDS_CALIBRATION, QAT_VARIANT, QUANTIZATIONS
from components.training import export, inputs
from tfxp import contract

log = logging.getLogger(__name__)

SIGNATURE = export.SIGNATURE
CONTRACT_FILE = contract.TFLITE_CONTRACT_FILE


class TFLiteModel(types.Artifact):
    """A folder of <variant>.tflite files and input_contract.json."""
    # KFP v2 imports custom artifact classes by "<module>.<Class>": see components/__init__.py.
    TYPE_NAME = "components.TFLiteModel"


# -- calibration examples -------------------------------------------------------------------------

def calibration_sample(pattern, transform_output: str, user: UserCode, count: int, pool_factor: int = 20):
    """``count`` examples spread evenly over the first ``pool_factor * count`` of the split.

    Source files are often ordered (the sample CSV has long runs of cash trips with no tip):
    the first few hundred rows would miss the range of the model's activations, and int8
    clips what calibration did not see.
    """
    import tensorflow_transform as tft

    features, _ = inputs.read_transformed_examples(pattern, tft.TFTransformOutput(transform_output), user,
                                                   count * pool_factor)
    available = len(next(iter(features.values())))
    index = np.linspace(0, available - 1, num=min(count, available)).round().astype(int)
    return {name: values[index] for name, values in features.items()}


def representative_dataset(features: Dict[str, np.ndarray]) -> Callable[[], Iterator[Dict[str, np.ndarray]]]:
    count = len(next(iter(features.values())))

    def generate():
        for i in range(count):
            yield {name: values[i:i + 1] for name, values in features.items()}

    return generate


# -- conversion -----------------------------------------------------------------------------------

def convert(saved_model_dir: str, variant: str, representative: Callable = None) -> bytes:
    """One TFLite flatbuffer of the SavedModel's signature over transformed features, quantized as
    ``variant`` says; in the flatbuffer the signature is ``serving_default``."""
    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir,
                                                         signature_keys=[export.TRANSFORMED_SIGNATURE])
    if variant == "dynamic_range":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif variant == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif variant in NEEDS_CALIBRATION:
        if representative is None:
            raise ValueError(f"{variant}: full-integer quantization needs representative examples")
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8   # applies to the float inputs; id inputs stay int64
        converter.inference_output_type = tf.int8
    elif variant != "none":
        raise ValueError(f"unknown TFLite quantization {variant!r}; expected one of {', '.join(QUANTIZATIONS)}")
    return rename_signature(converter.convert(), export.TRANSFORMED_SIGNATURE, SIGNATURE)


def rename_signature(tflite_model: bytes, old: str, new: str) -> bytes:
    """The flatbuffer with its signature ``old`` called ``new``, and its input tensors' names
    (``<signature>_<input>:0``) likewise: the converter keeps the SavedModel's key in both."""
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(tflite_model)
    (signature,) = [s for s in model.signatureDefs if s.signatureKey.decode() == old]
    signature.signatureKey = new.encode()
    tensors = model.subgraphs[signature.subgraphIndex].tensors
    prefix = f"{old}_".encode()
    for tensor_map in signature.inputs:
        tensor = tensors[tensor_map.tensorIndex]
        if tensor.name.startswith(prefix):
            tensor.name = f"{new}_".encode() + tensor.name[len(prefix):]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def input_contract(tflite_model: bytes, variant: str) -> Dict[str, Any]:
    """What the model takes and returns, read from the interpreter itself."""
    runner = tf.lite.Interpreter(model_content=tflite_model).get_signature_runner(SIGNATURE)

    def describe(details):
        out = {}
        for name, d in sorted(details.items()):
            entry = {"dtype": np.dtype(d["dtype"]).name, "shape": [int(x) for x in d["shape"]]}
            scale, zero_point = d["quantization"]
            if scale:
                entry["quantization"] = {"scale": float(scale), "zero_point": int(zero_point),
                                         "real_value": "(q - zero_point) * scale"}
            out[name] = entry
        return out

    return {"signature": SIGNATURE, "variant": variant,
            "inputs": describe(runner.get_input_details()),
            "outputs": describe(runner.get_output_details())}


def convert_variants(model_uri: str, variants: List[str], representative: Callable) -> Dict[str, bytes]:
    models = {}
    for variant in variants:
        saved_model_dir = export.transformed_model_dir(model_uri, qat=variant == QAT_VARIANT)
        if not fileio.isdir(saved_model_dir):
            raise FileNotFoundError(f"{variant}: the Trainer exported no {os.path.basename(saved_model_dir)} in "
                                    f"{model_uri}" + (" (is tflite.quantization_aware_training on?)"
                                                      if variant == QAT_VARIANT else ""))
        models[variant] = convert(saved_model_dir, variant, representative)
        log.info("TFLite %s: %.1f KiB", variant, len(models[variant]) / 1024)
    return models


# -- the TFX component ----------------------------------------------------------------------------

class Executor(base_executor.BaseExecutor):
    def Do(self, input_dict, output_dict, exec_properties) -> None:
        model = artifact_utils.get_single_instance(input_dict["model"])
        examples = artifact_utils.get_single_instance(input_dict["transformed_examples"])
        transform_graph = artifact_utils.get_single_instance(input_dict["transform_graph"])
        output = artifact_utils.get_single_instance(output_dict["tflite_model"])
        user = load_user_code(exec_properties["user_package"])
        variants = json.loads(exec_properties["variants"])
        representative = None
        if set(NEEDS_CALIBRATION) & set(variants):
            pattern = os.path.join(examples.uri, "Split-train", "*")
            features = calibration_sample(pattern, transform_graph.uri, user,
                                          int(exec_properties["representative_examples"]))
            representative = representative_dataset(features)
        models = convert_variants(model.uri, variants, representative)
        contracts = {}
        for variant, content in models.items():
            io_utils.write_bytes_file(os.path.join(output.uri, f"{variant}.tflite"), content)
            contracts[variant] = input_contract(content, variant)
        io_utils.write_string_file(os.path.join(output.uri, CONTRACT_FILE), json.dumps(contracts, indent=2))
        output.set_string_custom_property("variants", ",".join(models))


class TFLiteConverterSpec(types.ComponentSpec):
    PARAMETERS = {
        "variants": ExecutionParameter(type=str),  # JSON list: quantization modes, and qat_int8
        "representative_examples": ExecutionParameter(type=int),
        "user_package": ExecutionParameter(type=str),
        "code_fingerprint": ExecutionParameter(type=str),  # a code edit changes the cache key
    }
    INPUTS = {
        "model": ChannelParameter(type=standard_artifacts.Model),
        "transformed_examples": ChannelParameter(type=standard_artifacts.Examples),
        "transform_graph": ChannelParameter(type=standard_artifacts.TransformGraph),
    }
    OUTPUTS = {"tflite_model": ChannelParameter(type=TFLiteModel)}


class TFLiteConverter(base_component.BaseComponent):
    SPEC_CLASS = TFLiteConverterSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

    def __init__(self, model, transformed_examples, transform_graph, *, variants: List[str],
                 representative_examples: int, user_package: str, code_fingerprint: str):
        super().__init__(spec=TFLiteConverterSpec(
            model=model, transformed_examples=transformed_examples, transform_graph=transform_graph,
            variants=json.dumps(list(variants)), representative_examples=representative_examples,
            user_package=user_package, code_fingerprint=code_fingerprint,
            tflite_model=types.Channel(type=TFLiteModel)))
