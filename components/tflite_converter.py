"""TFLiteConverter: a custom TFX component that turns the Trainer's model into TFLite variants.

Input contract: tf.Transform's vocabulary (hash table) ops are not TFLite builtins, so the
TFLite models take the TRANSFORMED features, one ``[1, 1]`` input per model feature, named as
in ``components/features.py`` with the ``_xf`` suffix (float32 for numeric features, int64 ids
for the rest; an int8 model takes its float inputs quantized to int8). The app reproduces the
transformation with the tf.Transform graph that is pushed beside the .tflite files (or
computes the same values natively). ``input_contract.json`` in the artifact spells this out.

Variants, one ``<variant>.tflite`` file each:
    none           float32, no optimization
    dynamic_range  int8 weights, float activations
    float16        float16 weights
    int8           full integer: int8 weights and activations, calibrated on a few hundred
                   transformed training examples; int8 input/output where the model allows
    qat_int8       the quantization-aware-trained model (when enabled), converted like int8
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
from tfx.types import artifact_utils, standard_artifacts
from tfx.types.component_spec import ChannelParameter, ExecutionParameter
from tfx.utils import io_utils

from components import trainer as trainer_lib

log = logging.getLogger(__name__)

QUANTIZATIONS = ("none", "dynamic_range", "float16", "int8")
QAT_VARIANT = "qat_int8"
SIGNATURE = "serving_default"
CONTRACT_FILE = "input_contract.json"


class TFLiteModel(types.Artifact):
    """A folder of <variant>.tflite files and input_contract.json."""
    # KFP v2 imports custom artifact classes by "<module>.<Class>": see components/__init__.py.
    TYPE_NAME = "components.TFLiteModel"


# -- reading transformed examples -----------------------------------------------------------------

def transformed_examples(pattern, transform_output: str, limit: int = -1):
    """({input name: [N, 1] array}, labels [N]) from gzip'd transformed examples."""
    import tensorflow_transform as tft

    tft_output = tft.TFTransformOutput(transform_output)
    dataset = trainer_lib.make_input_dataset(pattern, tft_output, batch_size=1024, shuffle=False, num_epochs=1)
    features: Dict[str, List[np.ndarray]] = {}
    labels = []
    remaining = limit
    for batch, label in dataset:
        if remaining == 0:
            break
        take = label.shape[0] if remaining < 0 else min(remaining, label.shape[0])
        for name, value in batch.items():
            features.setdefault(name, []).append(value.numpy()[:take])
        labels.append(label.numpy()[:take])
        remaining = remaining - take if remaining > 0 else remaining
    if not labels:
        raise ValueError(f"no transformed examples match {pattern}")
    return {k: np.concatenate(v) for k, v in features.items()}, np.concatenate(labels)


def calibration_sample(pattern, transform_output: str, count: int, pool_factor: int = 20):
    """``count`` examples spread evenly over the first ``pool_factor * count`` of the split.

    Source files are often ordered (the sample CSV has long runs of cash trips with no tip):
    the first few hundred rows would miss the range of the model's activations, and int8
    clips what calibration did not see.
    """
    features, _ = transformed_examples(pattern, transform_output, count * pool_factor)
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
    """One TFLite flatbuffer of the SavedModel's serving_default, quantized as ``variant`` says."""
    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir, signature_keys=[SIGNATURE])
    if variant == "dynamic_range":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif variant == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif variant in ("int8", QAT_VARIANT):
        if representative is None:
            raise ValueError(f"{variant}: full-integer quantization needs representative examples")
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8   # applies to the float inputs; id inputs stay int64
        converter.inference_output_type = tf.int8
    elif variant != "none":
        raise ValueError(f"unknown TFLite quantization {variant!r}; expected one of {', '.join(QUANTIZATIONS)}")
    return converter.convert()


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
        source = trainer_lib.QAT_MODEL_DIR if variant == QAT_VARIANT else trainer_lib.TRANSFORMED_MODEL_DIR
        saved_model_dir = os.path.join(model_uri, source)
        if not os.path.isdir(saved_model_dir):
            raise FileNotFoundError(f"{variant}: the Trainer exported no {source} in {model_uri}"
                                    + (" (is tflite.quantization_aware_training on?)" if variant == QAT_VARIANT
                                       else ""))
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
        variants = json.loads(exec_properties["quantizations"])
        if exec_properties.get("quantization_aware_training"):
            variants.append(QAT_VARIANT)
        representative = None
        if {"int8", QAT_VARIANT} & set(variants):
            pattern = os.path.join(examples.uri, "Split-train", "*")
            features = calibration_sample(pattern, transform_graph.uri,
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
        "quantizations": ExecutionParameter(type=str),  # JSON list
        "quantization_aware_training": ExecutionParameter(type=int),
        "representative_examples": ExecutionParameter(type=int),
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

    def __init__(self, model, transformed_examples, transform_graph, *, quantizations: List[str],
                 quantization_aware_training: bool = False, representative_examples: int = 300):
        super().__init__(spec=TFLiteConverterSpec(
            model=model, transformed_examples=transformed_examples, transform_graph=transform_graph,
            quantizations=json.dumps(list(quantizations)),
            quantization_aware_training=int(quantization_aware_training),
            representative_examples=representative_examples,
            tflite_model=types.Channel(type=TFLiteModel)))
