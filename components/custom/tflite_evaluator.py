"""TFLiteEvaluator: a custom TFX component that evaluates each TFLite variant and blesses it.

Every ``.tflite`` variant runs in the TFLite interpreter over the whole eval split (the
transformed examples, one example per call, as an app would) and is measured with the TASK's
metrics (features.py: accuracy and AUC for binary, accuracy for multi-class, MAE and RMSE for
regression) next to the Trainer's SavedModel on the same examples, with the task's agreement
checks (how often both predict the same class; how far the outputs are apart). A variant is
blessed when none of the metrics is worse than the SavedModel's by more than ``max_metric_drop``
(absolute for fractions, relative for errors), and only when the Evaluator blessed the
SavedModel itself.

Outputs, for the second Pusher:
* ``lite_model``: a Model artifact whose Format-Serving/ holds the blessed variants, the input
  contract, the tf.Transform graph (for the app to reproduce the inputs) and report.json.
* ``blessing``: a ModelBlessing, blessed when at least one variant is.
The report (per variant: size, metrics, drop, agreement, mean latency, blessed) is also
recorded as ``report.json`` in the blessing artifact.
"""
from __future__ import annotations

import json
import logging
import os
import time
from typing import Any, Dict

import numpy as np
import tensorflow as tf
from tfx import types
from tfx.dsl.components.base import base_component, base_executor, executor_spec
from tfx.dsl.io import fileio
from tfx.types import artifact_utils, standard_artifacts
from tfx.types.component_spec import ChannelParameter, ExecutionParameter
from tfx.utils import io_utils, path_utils

from components.core.task import Task
from components.core.user_code import load_user_code
from components.custom import tflite_converter as converter_lib
from components.training import export, inputs
from tfxp import contract

log = logging.getLogger(__name__)

REPORT_FILE = contract.TFLITE_REPORT_FILE


def saved_model_outputs(saved_model_dir: str, features: Dict[str, np.ndarray], batch: int = 1024) -> np.ndarray:
    """[N, output units] from the SavedModel over transformed features."""
    serve = tf.saved_model.load(saved_model_dir).signatures[export.TRANSFORMED_SIGNATURE]
    count = len(next(iter(features.values())))
    out = [serve(**{k: tf.constant(v[i:i + batch]) for k, v in features.items()})[export.OUTPUT_KEY].numpy()
           for i in range(0, count, batch)]
    return np.concatenate(out).reshape(count, -1)


def tflite_outputs(tflite_model: bytes, features: Dict[str, np.ndarray]):
    """[N, output units] from the interpreter, one example per call; returns (outputs, mean seconds)."""
    runner = tf.lite.Interpreter(model_content=tflite_model).get_signature_runner(converter_lib.SIGNATURE)
    inputs_details = runner.get_input_details()
    (output_name, output), = runner.get_output_details().items()
    prepared = {}
    for name, details in inputs_details.items():
        values = features[name]
        scale, zero_point = details["quantization"]
        if scale:  # quantized input: q = x / scale + zero_point
            info = np.iinfo(details["dtype"])
            values = np.clip(np.round(values / scale + zero_point), info.min, info.max)
        prepared[name] = values.astype(details["dtype"])
    count = len(next(iter(features.values())))
    results = np.empty((count, int(np.prod(output["shape"][1:]))), np.float32)
    start = time.perf_counter()
    for i in range(count):
        results[i] = runner(**{name: values[i:i + 1] for name, values in prepared.items()})[output_name][0]
    seconds = (time.perf_counter() - start) / count
    scale, zero_point = output["quantization"]
    if scale:
        results = (results - zero_point) * scale
    return results, seconds


def evaluate_variants(tflite_dir: str, saved_model_dir: str, features, labels, task: Task, max_metric_drop: float,
                      saved_model_blessed: bool = True) -> Dict[str, Any]:
    reference_outputs = saved_model_outputs(saved_model_dir, features)
    reference = task.compute_metrics(labels, reference_outputs)
    variants = {}
    for file_name in sorted(fileio.listdir(tflite_dir)):
        if not file_name.endswith(".tflite"):
            continue
        variant = file_name[: -len(".tflite")]
        content = io_utils.read_bytes_file(os.path.join(tflite_dir, file_name))
        outputs, seconds = tflite_outputs(content, features)
        metrics = task.compute_metrics(labels, outputs)
        drop = {name: task.metric(name).degradation(reference[name], value) for name, value in metrics.items()}
        within = all(d <= max_metric_drop for d in drop.values())
        variants[variant] = {
            "file": file_name, "size_bytes": len(content), "metrics": metrics, "metric_drop": drop,
            "agreement": task.agreement(reference_outputs, outputs),
            "mean_latency_ms": seconds * 1000.0, "within_tolerance": within,
            "blessed": within and saved_model_blessed,
        }
        log.info("TFLite %s: %s; %.3f ms/example; %s", variant,
                 ", ".join(f"{n} {v:.4f} (worse by {drop[n]:+.4f})" for n, v in metrics.items()), seconds * 1000,
                 "blessed" if variants[variant]["blessed"] else "NOT blessed")
    return {"task": task.KIND, "label": task.label, "metrics": list(task.metric_names), "examples": int(len(labels)),
            "max_metric_drop": max_metric_drop,
            "saved_model": {"metrics": reference, "blessed": saved_model_blessed}, "variants": variants}


def format_report(report: Dict[str, Any]) -> str:
    names = report["metrics"]
    reference = report["saved_model"]["metrics"]
    lines = [f"TFLite variants on {report['examples']} eval examples (SavedModel: "
             + ", ".join(f"{n} {reference[n]:.4f}" for n in names)
             + f"; tolerance {report['max_metric_drop']:g}):",
             f"  {'variant':<14}{'size KiB':>9}" + "".join(f"{n:>10}{'worse by':>10}" for n in names)
             + f"{'agree':>8}{'ms/example':>12}  blessed"]
    for name, v in report["variants"].items():
        agree = v["agreement"].get("same_prediction")
        lines.append(f"  {name:<14}{v['size_bytes'] / 1024:>9.1f}"
                     + "".join(f"{v['metrics'][n]:>10.4f}{v['metric_drop'][n]:>+10.4f}" for n in names)
                     + (f"{agree:>8.1%}" if agree is not None else f"{'-':>8}")
                     + f"{v['mean_latency_ms']:>12.3f}  {'yes' if v['blessed'] else 'no'}")
    return "\n".join(lines)


class Executor(base_executor.BaseExecutor):
    def Do(self, input_dict, output_dict, exec_properties) -> None:
        import tensorflow_transform as tft
        from tfx.components.util import model_utils

        tflite = artifact_utils.get_single_instance(input_dict["tflite_model"])
        model = artifact_utils.get_single_instance(input_dict["model"])
        examples = artifact_utils.get_single_instance(input_dict["transformed_examples"])
        transform_graph = artifact_utils.get_single_instance(input_dict["transform_graph"])
        model_blessing = artifact_utils.get_single_instance(input_dict["model_blessing"])
        lite_model = artifact_utils.get_single_instance(output_dict["lite_model"])
        blessing = artifact_utils.get_single_instance(output_dict["blessing"])
        user = load_user_code(exec_properties["user_package"])

        features, labels = inputs.read_transformed_examples(
            os.path.join(examples.uri, "Split-eval", "*"), tft.TFTransformOutput(transform_graph.uri), user)
        report = evaluate_variants(
            tflite.uri, export.transformed_model_dir(model.uri), features, labels, user.task,
            float(exec_properties["max_metric_drop"]), saved_model_blessed=model_utils.is_model_blessed(model_blessing))
        log.info("\n%s", format_report(report))

        serving_dir = path_utils.serving_model_path(lite_model.uri)
        blessed = [name for name, v in report["variants"].items() if v["blessed"]]
        for name in blessed:
            io_utils.copy_file(os.path.join(tflite.uri, report["variants"][name]["file"]),
                               os.path.join(serving_dir, report["variants"][name]["file"]))
        contracts = json.loads(io_utils.read_string_file(os.path.join(tflite.uri, converter_lib.CONTRACT_FILE)))
        io_utils.write_string_file(os.path.join(serving_dir, converter_lib.CONTRACT_FILE),
                                   json.dumps({k: contracts[k] for k in blessed}, indent=2))
        io_utils.copy_dir(transform_graph.uri, os.path.join(serving_dir, "transform_graph"))
        report_json = json.dumps(report, indent=2)
        io_utils.write_string_file(os.path.join(serving_dir, REPORT_FILE), report_json)
        io_utils.write_string_file(os.path.join(blessing.uri, REPORT_FILE), report_json)

        blessing.set_int_custom_property("blessed", int(bool(blessed)))
        blessing.set_string_custom_property("blessed_variants", ",".join(blessed))
        io_utils.write_string_file(os.path.join(blessing.uri, "BLESSED" if blessed else "NOT_BLESSED"), "")


class TFLiteEvaluatorSpec(types.ComponentSpec):
    PARAMETERS = {
        "max_metric_drop": ExecutionParameter(type=float),
        "user_package": ExecutionParameter(type=str),
        "code_fingerprint": ExecutionParameter(type=str),  # a code edit changes the cache key
    }
    INPUTS = {
        "tflite_model": ChannelParameter(type=converter_lib.TFLiteModel),
        "model": ChannelParameter(type=standard_artifacts.Model),
        "model_blessing": ChannelParameter(type=standard_artifacts.ModelBlessing),
        "transformed_examples": ChannelParameter(type=standard_artifacts.Examples),
        "transform_graph": ChannelParameter(type=standard_artifacts.TransformGraph),
    }
    OUTPUTS = {
        "lite_model": ChannelParameter(type=standard_artifacts.Model),
        "blessing": ChannelParameter(type=standard_artifacts.ModelBlessing),
    }


class TFLiteEvaluator(base_component.BaseComponent):
    SPEC_CLASS = TFLiteEvaluatorSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

    def __init__(self, tflite_model, model, model_blessing, transformed_examples, transform_graph, *,
                 max_metric_drop: float, user_package: str, code_fingerprint: str):
        super().__init__(spec=TFLiteEvaluatorSpec(
            tflite_model=tflite_model, model=model, model_blessing=model_blessing,
            transformed_examples=transformed_examples, transform_graph=transform_graph,
            max_metric_drop=float(max_metric_drop), user_package=user_package, code_fingerprint=code_fingerprint,
            lite_model=types.Channel(type=standard_artifacts.Model),
            blessing=types.Channel(type=standard_artifacts.ModelBlessing)))
