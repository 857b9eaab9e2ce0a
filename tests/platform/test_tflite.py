"""The TFLite branch: conversion per quantization mode, agreement with the SavedModel, the gate,
and the evaluator's metrics for every task."""
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from components.custom import tflite_converter as C
from components.custom import tflite_evaluator as E
from components.custom.tflite_options import QAT_VARIANT
from components.training import inputs
from tests.support.marks import uses

# Per-example |output(tflite) - output(SavedModel)| allowed, by mode, on the eval examples of the
# binary test dataset (probabilities). Measured on the sample's trained model (1,000 eval
# examples): none 0, float16 2.2e-4, dynamic_range 8.5e-3, int8 8.1e-2 max (5.5e-3 mean).
TOLERANCE = {
    "none": {"max": 1e-5},                      # same float32 math; only op fusion may reorder sums
    "float16": {"max": 2e-3},                   # fp16 weights keep ~3 significant digits
    "dynamic_range": {"max": 0.03, "mean": 0.005},  # int8 weights: 1/127 of each tensor's range
    "int8": {"max": 0.15, "mean": 0.02},        # int8 activations too, and an int8 output (step 1/256)
}
MODES = ["none", "dynamic_range", "float16", "int8", QAT_VARIANT]


def _tft_output(workspace, package):
    import tensorflow_transform as tft
    return tft.TFTransformOutput(workspace.transformed(package)["transform_output"])


def _eval_examples(workspace, package):
    return inputs.read_transformed_examples(workspace.transformed(package)["files"]["eval"],
                                            _tft_output(workspace, package), workspace.user(package))


def _variants(workspace, package, modes):
    transformed = workspace.transformed(package)
    calibration = C.calibration_sample(transformed["files"]["train"], transformed["transform_output"],
                                       workspace.user(package), 100)
    return C.convert_variants(workspace.trained(package)["root"], modes, C.representative_dataset(calibration))


@pytest.fixture(scope="module")
@uses("beam", "training")
def binary_variants(workspace):
    return _variants(workspace, "synth_binary", MODES)


@pytest.fixture(scope="module")
@uses("beam", "training")
def binary_eval(workspace):
    return _eval_examples(workspace, "synth_binary")


@pytest.mark.parametrize("mode", ["none", "dynamic_range", "float16", "int8"])
def test_each_mode_agrees_with_the_saved_model_on_eval_examples(mode, binary_variants, workspace, binary_eval):
    features, _ = binary_eval
    reference = E.saved_model_outputs(workspace.trained("synth_binary")["transformed"], features)
    outputs, seconds = E.tflite_outputs(binary_variants[mode], features)
    difference = np.abs(outputs - reference)
    assert difference.max() <= TOLERANCE[mode]["max"], difference.max()
    assert difference.mean() <= TOLERANCE[mode].get("mean", 1.0), difference.mean()
    assert seconds > 0


def test_int8_model_really_computes_in_int8_and_is_smaller(binary_variants, workspace):
    interpreter = tf.lite.Interpreter(model_content=binary_variants["int8"])
    runner = interpreter.get_signature_runner(C.SIGNATURE)
    numeric = {f.transformed_name for f in workspace.user("synth_binary").model_features if f.kind == "numeric"}
    for name, details in runner.get_input_details().items():
        assert details["dtype"] == (np.int8 if name in numeric else np.int64), name
    assert all(d["dtype"] == np.int8 for d in runner.get_output_details().values())
    weights = [t for t in interpreter.get_tensor_details()
               if t["name"].endswith(("MatMul", "embeddings")) or "hidden" in t["name"]]
    assert weights and all(t["dtype"] in (np.int8, np.int32) for t in weights)
    assert len(binary_variants["int8"]) < len(binary_variants["none"])


def test_dynamic_range_and_float16_shrink_the_file(binary_variants):
    assert len(binary_variants["dynamic_range"]) < len(binary_variants["none"])
    assert len(binary_variants["float16"]) < len(binary_variants["none"])


def test_the_quantization_aware_model_trains_and_converts_to_int8(workspace, binary_variants, binary_eval):
    assert os.path.exists(os.path.join(workspace.trained("synth_binary")["qat"], "saved_model.pb"))
    features, labels = binary_eval
    outputs, _ = E.tflite_outputs(binary_variants[QAT_VARIANT], features)
    assert ((outputs >= 0) & (outputs <= 1)).all()
    assert workspace.user("synth_binary").task.compute_metrics(labels, outputs)["auc"] > 0.6


def test_input_contract_names_every_transformed_feature(binary_variants, workspace):
    contract = C.input_contract(binary_variants["int8"], "int8")
    assert set(contract["inputs"]) == {f.transformed_name for f in workspace.user("synth_binary").model_features}
    assert contract["inputs"]["income_xf"]["quantization"]["scale"] > 0
    assert contract["outputs"]["outputs"]["dtype"] == "int8"
    assert C.input_contract(binary_variants["none"], "none")["inputs"]["income_xf"] == {"dtype": "float32",
                                                                                       "shape": [1, 1]}


def test_the_tflite_model_of_the_one_saved_model_keeps_the_contract_and_serves_as_serving_default(binary_variants,
                                                                                                  workspace):
    """Converted from the serving SavedModel's serving_transformed signature: under serving_default, one
    [1, 1] input per transformed feature (tensors serving_default_<input>:0), the output "outputs", no
    tf.Transform (hash table) op; fed what transform_features computes from raw examples, it answers
    what serving_default answers."""
    from tensorflow.lite.tools import flatbuffer_utils

    user, content = workspace.user("synth_binary"), binary_variants["none"]
    runner = tf.lite.Interpreter(model_content=content).get_signature_runner(C.SIGNATURE)
    assert list(tf.lite.Interpreter(model_content=content).get_signature_list()) == ["serving_default"]
    names = {f.transformed_name for f in user.model_features}
    assert {name: (d["name"], list(d["shape"])) for name, d in runner.get_input_details().items()} == {
        name: (f"serving_default_{name}:0", [1, 1]) for name in names}
    assert list(runner.get_output_details()) == ["outputs"]
    model = flatbuffer_utils.convert_bytearray_to_object(content)
    ops = {flatbuffer_utils.opcode_to_name(model, i) for i in range(len(model.operatorCodes))}
    assert not [op for op in ops if op == "CUSTOM" or "HASHTABLE" in op], ops

    serving = tf.saved_model.load(workspace.trained("synth_binary")["serving"])
    raw = [r.numpy() for r in tf.data.TFRecordDataset(
        tf.io.gfile.glob(workspace.tfrecords("synth_binary")["patterns"]["eval"]), compression_type="GZIP").take(50)]
    transformed = inputs.to_model_inputs(user, serving.signatures["transform_features"](examples=tf.constant(raw)))
    outputs, _ = E.tflite_outputs(content, {name: value.numpy() for name, value in transformed.items()})
    expected = serving.signatures["serving_default"](examples=tf.constant(raw))["outputs"].numpy()
    np.testing.assert_allclose(outputs, expected, atol=TOLERANCE["none"]["max"])


@pytest.mark.beam
def test_the_calibration_sample_spreads_over_the_split(workspace):
    transformed, user = workspace.transformed("synth_binary"), workspace.user("synth_binary")
    sample = C.calibration_sample(transformed["files"]["train"], transformed["transform_output"], user, 10,
                                  pool_factor=5)
    everything, _ = inputs.read_transformed_examples(transformed["files"]["train"],
                                                     _tft_output(workspace, "synth_binary"), user, 50)
    assert len(sample["income_xf"]) == 10
    assert sample["income_xf"][-1] == everything["income_xf"][-1]  # reaches the end of the pool, not the first 10


@pytest.mark.beam
@pytest.mark.training
def test_full_integer_without_examples_is_refused(workspace):
    with pytest.raises(ValueError, match="needs representative examples"):
        C.convert(workspace.trained("synth_binary")["transformed"], "int8", None)


@pytest.mark.beam
@pytest.mark.training
def test_an_unknown_mode_is_refused(workspace):
    with pytest.raises(ValueError, match="unknown TFLite quantization 'int4'"):
        C.convert(workspace.trained("synth_binary")["transformed"], "int4")


def test_a_missing_qat_model_says_how_to_get_one(tmp_path):
    with pytest.raises(FileNotFoundError, match="exported no Format-TransformedQAT.*quantization_aware_training"):
        C.convert_variants(str(tmp_path), [QAT_VARIANT], None)


def _write(variants, directory, names):
    for name in names:
        (directory / f"{name}.tflite").write_bytes(variants[name])
    return str(directory)


def test_a_variant_beyond_the_tolerance_is_not_blessed(binary_variants, workspace, binary_eval, tmp_path):
    features, labels = binary_eval
    task = workspace.user("synth_binary").task
    directory = _write(binary_variants, tmp_path, ["none", "int8"])
    saved_model = workspace.trained("synth_binary")["transformed"]
    # A variant would have to beat the SavedModel by a whole point on every metric to pass -1: none
    # can (-1e-9 could: an int8 variant is sometimes a hair better); with a wide tolerance both pass.
    strict = E.evaluate_variants(directory, saved_model, features, labels, task, max_metric_drop=-1.0)
    assert not any(v["blessed"] for v in strict["variants"].values())
    loose = E.evaluate_variants(directory, saved_model, features, labels, task, max_metric_drop=1.0)
    assert all(v["blessed"] for v in loose["variants"].values())
    assert loose["variants"]["none"]["metric_drop"] == {"accuracy": 0.0, "auc": pytest.approx(0.0, abs=1e-6)}


def test_nothing_is_blessed_when_the_saved_model_was_not(binary_variants, workspace, binary_eval, tmp_path):
    features, labels = binary_eval
    report = E.evaluate_variants(_write(binary_variants, tmp_path, ["none"]),
                                 workspace.trained("synth_binary")["transformed"], features, labels,
                                 workspace.user("synth_binary").task, max_metric_drop=1.0, saved_model_blessed=False)
    assert report["variants"]["none"]["within_tolerance"] and not report["variants"]["none"]["blessed"]


EXPECTED = {"synth_binary": ({"accuracy", "auc"}, True), "synth_multiclass": ({"accuracy"}, True),
            "synth_regression": ({"mae", "rmse"}, False)}


@pytest.mark.beam
@pytest.mark.training
def test_the_evaluator_measures_each_variant_with_the_task_s_metrics(package, workspace, tmp_path):
    """For every task: the report's metrics are the task's, a float32 variant agrees with its
    SavedModel exactly, and the report renders as the table tfxp run prints."""
    task = workspace.user(package).task
    features, labels = _eval_examples(workspace, package)
    variants = _variants(workspace, package, ["none", "int8"])
    report = E.evaluate_variants(_write(variants, tmp_path, ["none", "int8"]),
                                 workspace.trained(package)["transformed"], features, labels, task,
                                 max_metric_drop=0.05)
    names, classifies = EXPECTED[package]
    assert report["task"] == task.KIND and set(report["metrics"]) == names
    for variant in report["variants"].values():
        assert set(variant["metrics"]) == set(variant["metric_drop"]) == names
        assert ("same_prediction" in variant["agreement"]) == classifies
    none = report["variants"]["none"]
    assert none["agreement"]["max_abs_diff"] < 1e-4 and none["blessed"]
    if classifies:
        assert none["agreement"]["same_prediction"] == 1.0
    json.dumps(report)  # it is what report.json holds
    table = E.format_report(report)
    assert all(name in table for name in names) and "ms/example" in table and "int8" in table
