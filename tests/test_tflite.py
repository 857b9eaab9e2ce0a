"""The TFLite branch: conversion per quantization mode, agreement with the SavedModel, the gate."""
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from components import features as F
from components import tflite_converter as C
from components import tflite_evaluator as E

# Per-example |P(tflite) - P(SavedModel)| allowed, by mode, on real eval examples.
# Measured on the sample's trained model (1,000 eval examples): none 0, float16 2.2e-4,
# dynamic_range 8.5e-3, int8 8.1e-2 max (5.5e-3 mean).
TOLERANCE = {
    "none": {"max": 1e-5},                      # same float32 math; only op fusion may reorder sums
    "float16": {"max": 2e-3},                   # fp16 weights keep ~3 significant digits
    "dynamic_range": {"max": 0.03, "mean": 0.005},  # int8 weights: 1/127 of each tensor's range
    "int8": {"max": 0.15, "mean": 0.02},        # int8 activations too, and an int8 output (step 1/256)
}


@pytest.fixture(scope="module")
def eval_examples(transformed):
    return C.transformed_examples(transformed["files"]["eval"], transformed["transform_output"])


@pytest.fixture(scope="module")
def calibration(transformed):
    return C.calibration_sample(transformed["files"]["train"], transformed["transform_output"], 100)


@pytest.fixture(scope="module")
def variants(trained_model, calibration):
    return C.convert_variants(trained_model["root"], ["none", "dynamic_range", "float16", "int8", C.QAT_VARIANT],
                              C.representative_dataset(calibration))


@pytest.mark.parametrize("mode", ["none", "dynamic_range", "float16", "int8"])
def test_each_mode_agrees_with_the_saved_model_on_eval_examples(mode, variants, trained_model, eval_examples):
    features, _ = eval_examples
    reference = E.saved_model_probabilities(trained_model["transformed"], features)
    probabilities, seconds = E.tflite_probabilities(variants[mode], features)
    difference = np.abs(probabilities - reference)
    assert difference.max() <= TOLERANCE[mode]["max"], difference.max()
    assert difference.mean() <= TOLERANCE[mode].get("mean", 1.0), difference.mean()
    assert seconds > 0


def test_int8_model_really_computes_in_int8_and_is_smaller(variants):
    interpreter = tf.lite.Interpreter(model_content=variants["int8"])
    runner = interpreter.get_signature_runner(C.SIGNATURE)
    numeric = {F.transformed_name(f.name) for f in F.model_features() if f.kind == F.NUMERIC}
    for name, details in runner.get_input_details().items():
        assert details["dtype"] == (np.int8 if name in numeric else np.int64), name
    assert all(d["dtype"] == np.int8 for d in runner.get_output_details().values())
    weights = [t for t in interpreter.get_tensor_details()
               if t["name"].endswith(("MatMul", "embeddings")) or "hidden" in t["name"]]
    assert weights and all(t["dtype"] in (np.int8, np.int32) for t in weights)
    assert len(variants["int8"]) < len(variants["none"]) / 2


def test_dynamic_range_and_float16_shrink_the_file(variants):
    assert len(variants["dynamic_range"]) < len(variants["none"])
    assert len(variants["float16"]) < len(variants["none"])


def test_quantization_aware_model_trains_and_converts_to_int8(trained_model, variants, eval_examples):
    assert os.path.exists(os.path.join(trained_model["qat"], "saved_model.pb"))
    features, labels = eval_examples
    probabilities, _ = E.tflite_probabilities(variants[C.QAT_VARIANT], features)
    assert ((probabilities >= 0) & (probabilities <= 1)).all()
    assert E.binary_metrics(labels, probabilities)["auc"] > 0.6


def test_input_contract_names_every_transformed_feature(variants):
    contract = C.input_contract(variants["int8"], "int8")
    assert set(contract["inputs"]) == {F.transformed_name(f.name) for f in F.model_features()}
    assert contract["inputs"]["fare_xf"]["quantization"]["scale"] > 0
    assert contract["outputs"]["outputs"]["dtype"] == "int8"
    assert C.input_contract(variants["none"], "none")["inputs"]["fare_xf"] == {"dtype": "float32", "shape": [1, 1]}


def test_calibration_sample_spreads_over_the_split(transformed):
    sample = C.calibration_sample(transformed["files"]["train"], transformed["transform_output"], 10, pool_factor=5)
    everything, _ = C.transformed_examples(transformed["files"]["train"], transformed["transform_output"], 50)
    assert len(sample["fare_xf"]) == 10
    assert sample["fare_xf"][-1] == everything["fare_xf"][-1]  # reaches the end of the pool, not the first 10


def test_full_integer_without_examples_is_refused(trained_model):
    with pytest.raises(ValueError, match="needs representative examples"):
        C.convert(trained_model["transformed"], "int8", None)


def test_unknown_mode_is_refused(trained_model):
    with pytest.raises(ValueError, match="unknown TFLite quantization 'int4'"):
        C.convert(trained_model["transformed"], "int4")


def _write(variants, tmp_path, names):
    for name in names:
        (tmp_path / f"{name}.tflite").write_bytes(variants[name])
    return str(tmp_path)


def test_a_variant_beyond_the_tolerance_is_not_blessed(variants, trained_model, eval_examples, tmp_path):
    features, labels = eval_examples
    directory = _write(variants, tmp_path, ["none", "int8"])
    # With the tolerance below zero nothing can be blessed; with a wide one both are.
    strict = E.evaluate_variants(directory, trained_model["transformed"], features, labels, max_metric_drop=-1e-9)
    assert not any(v["blessed"] for v in strict["variants"].values())
    loose = E.evaluate_variants(directory, trained_model["transformed"], features, labels, max_metric_drop=1.0)
    assert all(v["blessed"] for v in loose["variants"].values())
    assert loose["variants"]["none"]["metric_drop"] == {"accuracy": 0.0, "auc": pytest.approx(0.0, abs=1e-6)}


def test_nothing_is_blessed_when_the_saved_model_was_not(variants, trained_model, eval_examples, tmp_path):
    features, labels = eval_examples
    report = E.evaluate_variants(_write(variants, tmp_path, ["none"]), trained_model["transformed"], features,
                                 labels, max_metric_drop=1.0, saved_model_blessed=False)
    assert report["variants"]["none"]["within_tolerance"] and not report["variants"]["none"]["blessed"]


def test_report_records_size_metrics_drop_latency_and_verdict(variants, trained_model, eval_examples, tmp_path):
    features, labels = eval_examples
    report = E.evaluate_variants(_write(variants, tmp_path, ["dynamic_range"]), trained_model["transformed"],
                                 features, labels, max_metric_drop=0.01)
    entry = report["variants"]["dynamic_range"]
    assert entry["size_bytes"] == len(variants["dynamic_range"])
    assert set(entry["metrics"]) == set(entry["metric_drop"]) == {"accuracy", "auc"}
    assert entry["mean_latency_ms"] > 0 and isinstance(entry["blessed"], bool)
    json.dumps(report)  # it is what report.json holds
    table = E.format_report(report)
    assert "dynamic_range" in table and "ms/example" in table
