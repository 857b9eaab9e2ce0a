"""`tfxp inspect`: what a pushed SavedModel, model base dir or TFLite folder holds, read from its files.

The models are built here (a tf.Module with a vocabulary, saved in TF Serving's layout, and
TFLite conversions of a small dense layer), so the tests need no pipeline run.
"""
import argparse
import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

from components.custom.tflite_converter import CONTRACT_FILE, input_contract
from components.custom.tflite_evaluator import REPORT_FILE
from serving.inspect import NotAModelError, add_inspect_arguments, format_report, inspect_path, run_inspect

VOCABULARY = ["cash", "credit_card", "mobile"]


class Scorer(tf.Module):
    """serving_default: payment types -> [N, 1] scores through a vocabulary (an asset); score_features: a second one."""

    def __init__(self, vocabulary_file: str):
        super().__init__()
        self.table = tf.lookup.StaticHashTable(
            tf.lookup.TextFileInitializer(vocabulary_file, tf.string, tf.lookup.TextFileIndex.WHOLE_LINE,
                                          tf.int64, tf.lookup.TextFileIndex.LINE_NUMBER), default_value=-1)
        self.weight = tf.Variable([[0.5, -0.25, 2.0]])

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def serve(self, examples):
        ids = tf.cast(self.table.lookup(examples), tf.float32)
        return {"outputs": tf.reshape(ids, [-1, 1]) * self.weight[:, :1]}

    @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32)])
    def score_features(self, features):
        scores = features * self.weight
        return {"scores": scores, "best": tf.argmax(scores, axis=1)}


def _write_warmup(path: str, records: int) -> None:
    tf.io.gfile.makedirs(os.path.dirname(path))
    with tf.io.TFRecordWriter(path) as writer:
        for _ in range(records):
            request = predict_pb2.PredictRequest()
            request.model_spec.signature_name = "serving_default"
            request.inputs["examples"].CopyFrom(tf.make_tensor_proto([b"cash"]))
            writer.write(prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request)).SerializeToString())


def _tflite_models() -> dict:
    """A float and an int8 conversion of one dense layer: [N, 3] float -> [N, 1]."""
    layer = tf.Module()
    layer.weight = tf.Variable(np.linspace(-1, 1, 3, dtype=np.float32).reshape(3, 1))

    @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32, name="features")])
    def predict(features):
        return {"outputs": tf.sigmoid(tf.matmul(features, layer.weight))}

    def convert(**options):
        converter = tf.lite.TFLiteConverter.from_concrete_functions([predict.get_concrete_function()], layer)
        for key, value in options.items():
            setattr(converter, key, value)
        return converter.convert()

    rng = np.random.default_rng(0)
    return {"float": convert(),
            "int8": convert(optimizations=[tf.lite.Optimize.DEFAULT],
                            representative_dataset=lambda: ([rng.normal(size=(1, 3)).astype(np.float32)]
                                                            for _ in range(20)),
                            inference_input_type=tf.int8, inference_output_type=tf.int8)}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """<root>/base/{1,2} complete (2 with warmup requests), base/3 half copied; <root>/lite/7 a TFLite push."""
    root = tmp_path_factory.mktemp("inspect")
    vocabulary = root / "payment_type"
    vocabulary.write_text("\n".join(VOCABULARY) + "\n")
    base = root / "base"
    module = Scorer(str(vocabulary))
    tf.saved_model.save(module, str(base / "1"),
                        signatures={"serving_default": module.serve, "score_features": module.score_features})
    shutil.copytree(base / "1", base / "2")
    _write_warmup(str(base / "2" / "assets.extra" / "tf_serving_warmup_requests"), records=2)
    shutil.copytree(base / "1" / "variables", base / "3" / "variables")  # a push cut short: no saved_model.pb

    lite = root / "lite" / "7"
    lite.mkdir(parents=True)
    tflite = _tflite_models()
    for variant, content in tflite.items():
        (lite / f"{variant}.tflite").write_bytes(content)
    (lite / CONTRACT_FILE).write_text(json.dumps({v: input_contract(c, v) for v, c in tflite.items()}))
    (lite / REPORT_FILE).write_text(json.dumps({
        "task": "binary_classification", "label": "big_tipper", "examples": 100,
        "saved_model": {"metrics": {"accuracy": 0.9}, "blessed": True},
        "variants": {"float": {"file": "float.tflite", "metrics": {"accuracy": 0.9}, "blessed": True},
                     "int8": {"file": "int8.tflite", "metrics": {"accuracy": 0.85}, "blessed": False}}}))
    (lite / "transform_graph" / "transform_fn" / "assets").mkdir(parents=True)
    shutil.copy(vocabulary, lite / "transform_graph" / "transform_fn" / "assets" / "payment_type")
    return root


def _run(capsys, *argv):
    """run_inspect as `tfxp inspect` calls it: (exit code, stdout, stderr)."""
    parser = argparse.ArgumentParser(prog="tfxp inspect")
    add_inspect_arguments(parser)
    code = run_inspect(parser.parse_args([str(a) for a in argv]))
    out, err = capsys.readouterr()
    return code, out, err


# -- SavedModels in TF Serving's layout ----------------------------------------------------------

def test_a_model_base_lists_its_complete_versions_oldest_first_and_the_incomplete_one(models):
    report = inspect_path(str(models / "base"))
    assert report["kind"] == "model_base"
    assert [v["version"] for v in report["versions"]] == ["1", "2"]
    assert report["incomplete_versions"] == ["3"]


def test_a_version_dir_is_one_saved_model_with_its_tags(models):
    report = inspect_path(str(models / "base" / "2"))
    assert (report["kind"], report["version"]) == ("saved_model", "2")
    (graph,) = report["meta_graphs"]
    assert graph["tags"] == ["serve"]
    assert graph["tensorflow_version"] == tf.__version__


def test_every_signature_is_read_with_each_input_and_output_dtype_and_shape(models):
    signatures = inspect_path(str(models / "base" / "1"))["meta_graphs"][0]["signatures"]
    assert list(signatures) == ["serving_default", "score_features"]  # serving_default first; no init op
    serve = signatures["serving_default"]
    assert serve["method"] == "tensorflow/serving/predict"
    assert {n: (t["dtype"], t["shape"]) for n, t in serve["inputs"].items()} == {"examples": ("string", [-1])}
    assert {n: (t["dtype"], t["shape"]) for n, t in serve["outputs"].items()} == {"outputs": ("float32", [-1, 1])}
    score = signatures["score_features"]
    assert {n: (t["dtype"], t["shape"]) for n, t in score["inputs"].items()} == {"features": ("float32", [-1, 3])}
    assert {n: (t["dtype"], t["shape"]) for n, t in score["outputs"].items()} == {
        "best": ("int64", [-1]), "scores": ("float32", [-1, 3])}


def test_vocabularies_in_assets_are_listed_with_their_line_count(models):
    assets = inspect_path(str(models / "base" / "1"))["assets"]
    assert [(a["file"], a["lines"]) for a in assets] == [("payment_type", len(VOCABULARY))]


def test_warmup_requests_are_counted_by_prediction_log_kind(models):
    report = inspect_path(str(models / "base" / "2"))
    assert report["warmup"] == {"file": "assets.extra/tf_serving_warmup_requests", "records": 2,
                                "kinds": {"predict_log": 2}}
    assert inspect_path(str(models / "base" / "1"))["warmup"] is None


def test_a_warmup_file_that_is_not_tfrecords_is_reported_not_fatal(models, tmp_path):
    version = tmp_path / "9"
    shutil.copytree(models / "base" / "2", version)
    (version / "assets.extra" / "tf_serving_warmup_requests").write_bytes(b"not a TFRecord file, " * 10)
    warmup = inspect_path(str(version))["warmup"]
    assert warmup["records"] == 0 and "corrupted record" in warmup["error"]


def test_variables_size_is_the_sum_of_the_variables_files(models):
    variables = models / "base" / "1" / "variables"
    sizes = [os.path.getsize(variables / name) for name in os.listdir(variables)]
    assert inspect_path(str(models / "base" / "1"))["variables"] == {"files": len(sizes), "bytes": sum(sizes)}


def test_a_model_base_on_gcs_is_read_through_gfile(models, tmp_path, monkeypatch):
    from tests.support.fake_gcs import FakeGCS

    monkeypatch.chdir(tmp_path)  # where a gs:// path used as a local one would appear
    with FakeGCS() as gcs:
        for root, _, names in os.walk(models / "base"):
            target = gcs.url(os.path.relpath(root, models))
            tf.io.gfile.makedirs(target)
            for name in names:
                tf.io.gfile.copy(os.path.join(root, name), f"{target}/{name}")
        remote = inspect_path(gcs.url("base"))
    local = inspect_path(str(models / "base"))
    assert [v["version"] for v in remote["versions"]] == ["1", "2"] and remote["incomplete_versions"] == ["3"]
    for key in ("meta_graphs", "assets", "extra_assets", "variables"):
        assert remote["versions"][1][key] == local["versions"][1][key], key
    assert remote["versions"][1]["warmup"]["records"] == 2
    assert os.listdir(tmp_path) == []


# -- TFLite --------------------------------------------------------------------------------------

def test_a_tflite_folder_shows_each_model_inputs_outputs_and_size(models):
    report = inspect_path(str(models / "lite" / "7"))
    assert (report["kind"], report["version"]) == ("tflite", "7")
    assert sorted(report["models"]) == ["float", "int8"]
    float_model = report["models"]["float"]
    assert float_model["bytes"] == os.path.getsize(models / "lite" / "7" / "float.tflite")
    (signature,) = float_model["signatures"].values()
    assert signature["inputs"] == {"features": {"dtype": "float32", "shape": [-1, 3]}}
    assert signature["outputs"] == {"outputs": {"dtype": "float32", "shape": [-1, 1]}}


def test_a_quantized_tflite_model_shows_its_quantization_parameters(models):
    (signature,) = inspect_path(str(models / "lite" / "7"))["models"]["int8"]["signatures"].values()
    for tensor in [*signature["inputs"].values(), *signature["outputs"].values()]:
        assert tensor["dtype"] == "int8"
        assert tensor["quantization"]["scale"] > 0 and -128 <= tensor["quantization"]["zero_point"] <= 127
    # the output is a sigmoid: the converter fixes its int8 range to [0, 1]
    assert signature["outputs"]["outputs"]["quantization"] == {"scale": 1 / 256, "zero_point": -128}


def test_a_tflite_folder_shows_what_its_report_contract_and_transform_graph_say(models):
    report = inspect_path(str(models / "lite" / "7"))
    assert report["models"]["int8"]["evaluation"]["blessed"] is False
    assert report["models"]["float"]["evaluation"]["metrics"] == {"accuracy": 0.9}
    assert report["evaluation"]["saved_model"] == {"metrics": {"accuracy": 0.9}, "blessed": True}
    assert report["input_contract"] == CONTRACT_FILE
    assert [(a["file"], a["lines"]) for a in report["transform_graph"]["assets"]] == [("payment_type", 3)]


def test_a_tflite_base_dir_and_a_single_tflite_file_are_models_too(models):
    assert [v["version"] for v in inspect_path(str(models / "lite"))["versions"]] == ["7"]
    assert list(inspect_path(str(models / "lite" / "7" / "int8.tflite"))["models"]) == ["int8"]


# -- the command ---------------------------------------------------------------------------------

def test_the_readable_report_names_versions_signatures_tensors_assets_and_warmup(models, capsys):
    code, out, _ = _run(capsys, models / "base")
    assert code == 0
    assert "2 versions (1, 2), latest 2" in out and "incomplete" in out and ": 3" in out
    for expected in ["signature 'serving_default'", "signature 'score_features'", "tags: serve",
                     "examples  string   [-1]", "outputs  float32  [-1, 1]",
                     "payment_type", "3 lines", "warmup requests: 2 (predict_log 2)", "variables/: 2 files"]:
        assert expected in out, expected


def test_the_readable_report_of_a_tflite_folder_names_models_quantization_and_blessing(models):
    text = format_report(inspect_path(str(models / "lite" / "7")))
    assert "int8.tflite" in text and "float.tflite" in text
    assert "quantized: scale 0.00390625, zero_point -128" in text
    assert "accuracy 0.8500, blessed no" in text


def test_json_prints_the_inspect_path_dict(models, capsys):
    code, out, _ = _run(capsys, models / "base" / "2", "--json")
    assert code == 0
    assert json.loads(out) == inspect_path(str(models / "base" / "2"))


@pytest.mark.parametrize("make_path", [
    pytest.param(lambda root: root / "empty", id="an empty dir"),
    pytest.param(lambda root: root / "notes.txt", id="a file"),
    pytest.param(lambda root: root / "missing", id="a missing path"),
    pytest.param(lambda root: root / "only_incomplete", id="a base whose versions are all incomplete"),
])
def test_a_path_that_is_not_a_model_exits_2_with_a_one_line_message(make_path, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes.txt").write_text("not a model")
    (tmp_path / "only_incomplete" / "5" / "variables").mkdir(parents=True)
    path = make_path(tmp_path)
    code, out, err = _run(capsys, path)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("tfxp inspect: error: ") and str(path) in err
    with pytest.raises(NotAModelError):
        inspect_path(str(path))


def test_the_not_a_model_message_says_what_was_expected(tmp_path):
    with pytest.raises(NotAModelError, match="no saved_model.pb, no numeric version dirs, no .tflite files"):
        inspect_path(str(tmp_path))
