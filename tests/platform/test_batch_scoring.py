"""The batch scoring branch without a pipeline run: its config, its wiring, the rows it accepts and refuses, and
its CSV writer on PredictionLogs as BulkInferrer writes them, for each task. (The branch runs for real on the
sample's e2e run and on the multi-class and regression e2e runs, and compiled on gs://: test_kubeflow.py.)"""
import csv
import json
import os

import numpy as np
import pytest

from components.core.user_code import load_user_code
from pipeline import inference
from pipeline.config import ConfigError, load_config
from tests.support import synthetic
from tfxp import nodes


def _config(tmp_path, package="synth_binary", data=None):
    overrides = [f"pipeline_name={package}", f"user_package={package}", f"output_root={tmp_path / 'runs'}",
                 f"data_root={tmp_path / 'data'}", "schema_path=null"]
    return load_config(overrides=overrides + ([f"inference.data={data}"] if data else []))


def _unlabelled_csv(path, package, rows=20, extra_column=False):
    """A synthetic CSV of ``package`` without its label column (and, if asked, an id column the features lack)."""
    user = load_user_code(package)
    labelled = synthetic.write_csv(path.with_suffix(".labelled.csv"), user, rows)
    with open(labelled, newline="") as src, open(path, "w", newline="") as dst:
        reader = csv.DictReader(src)
        names = [n for n in reader.fieldnames if n != user.task.label] + (["row_id"] if extra_column else [])
        writer = csv.DictWriter(dst, names, extrasaction="ignore")
        writer.writeheader()
        for i, row in enumerate(reader):
            writer.writerow(dict(row, row_id=f"id-{i}"))
    return str(path)


# -- config and wiring -------------------------------------------------------------------------------------

def test_the_branch_is_off_by_default_and_on_when_the_config_names_rows(tmp_path):
    assert not load_config().inference.enabled
    cfg = _config(tmp_path, data="/rows/to/score")
    assert cfg.inference.enabled and cfg.resolved_inference_data == "/rows/to/score"


def test_an_unknown_key_of_the_inference_section_is_refused():
    with pytest.raises(ConfigError, match="inference.rows.*unknown key .rows.; known: data"):
        load_config(overrides=["inference.rows=1"])


def test_the_branch_reads_its_rows_scores_with_the_trainers_model_and_the_evaluators_blessing(tmp_path):
    from pipeline.pipeline import create_pipeline

    without = {c.id for c in create_pipeline(_config(tmp_path)).components}
    assert not without & set(nodes.INFERENCE_NODES)
    components = {c.id: c for c in create_pipeline(_config(tmp_path, data=str(tmp_path / "rows"))).components}
    bulk = components[nodes.BULK_INFERRER]
    producers = {key: channel.producer_component_id for key, channel in bulk.inputs.items()}
    assert producers == {"examples": nodes.INFERENCE_EXAMPLE_GEN, "model": nodes.TRAINER,
                         "model_blessing": nodes.EVALUATOR}
    assert components[nodes.PREDICTIONS_CSV].inputs["inference_result"].producer_component_id == nodes.BULK_INFERRER
    assert components[nodes.PREDICTIONS_CSV].exec_properties["code_fingerprint"]


@pytest.mark.parametrize("path, expected", [
    ("gs://b/rows", ("gs://b/rows", "*")), ("gs://b/rows/", ("gs://b/rows", "*")),
    ("gs://b/rows/part-0.tfrecord.gz", ("gs://b/rows", "part-0.tfrecord.gz")),
])
def test_a_compiled_pipeline_reads_a_tfrecord_file_or_folder_by_its_name(path, expected):
    rows = inference.rows_to_score(path)
    assert (rows.base, rows.pattern) == expected


def test_a_compiled_pipeline_cannot_convert_a_csv_and_says_how_to():
    with pytest.raises(ConfigError, match="gs://b/rows.csv: a compiled pipeline reads TFRecords"):
        inference.rows_to_score("gs://b/rows.csv")


# -- the rows: converted, checked, refused in one line ------------------------------------------------------

def test_a_csv_without_a_label_is_converted_in_order_with_its_other_columns_kept(tmp_path):
    import tensorflow as tf

    cfg = _config(tmp_path, "synth_regression",
                  data=_unlabelled_csv(tmp_path / "rows.csv", "synth_regression", extra_column=True))
    rows = inference.stage_rows(cfg)
    records = [tf.train.Example.FromString(r.numpy()) for r in tf.data.TFRecordDataset(
        os.path.join(rows.base, rows.pattern), compression_type="GZIP")]
    assert len(records) == 20 and rows.base.startswith(cfg.resolved_output_root)
    assert [r.features.feature["row_id"].bytes_list.value[0] for r in records] == [b"id-%d" % i for i in range(20)]
    assert not any("price" in r.features.feature for r in records)
    assert inference.stage_rows(cfg) == rows  # checked once per run


def test_an_unchanged_csv_is_not_converted_again(tmp_path):
    cfg = _config(tmp_path, data=_unlabelled_csv(tmp_path / "rows.csv", "synth_binary"))
    rows = inference.stage_rows(cfg)
    written = os.stat(os.path.join(rows.base, rows.pattern)).st_mtime_ns
    inference._STAGED.clear()
    assert inference.stage_rows(cfg) == rows
    assert os.stat(os.path.join(rows.base, rows.pattern)).st_mtime_ns == written


def _tfrecords(path, records):
    import tensorflow as tf
    with tf.io.TFRecordWriter(str(path)) as writer:
        for record in records:
            writer.write(record)
    return str(path)


def _refusal(tmp_path, data):
    from data.tfrecords import DataError
    with pytest.raises((inference.ScoringInputError, DataError)) as raised:
        inference.stage_rows(_config(tmp_path, data=str(data)))
    return str(raised.value)


def test_a_missing_file_is_refused_naming_it_and_what_was_expected(tmp_path):
    message = _refusal(tmp_path, tmp_path / "nowhere.csv")
    assert message.startswith(f"{tmp_path / 'nowhere.csv'}: no such file or folder") and "a CSV file" in message


def test_a_csv_without_a_column_the_model_reads_is_refused_naming_it(tmp_path):
    path = tmp_path / "rows.csv"
    path.write_text("income,age\n1.0,30\n")
    message = _refusal(tmp_path, path)
    assert message.startswith(f"{path}, line 1 (header): missing column(s) ") and "the model reads them" in message


def test_a_file_that_is_not_tfrecords_is_refused(tmp_path):
    path = tmp_path / "rows.json"
    path.write_text('{"age": 30}\n')
    message = _refusal(tmp_path, path)
    assert message.startswith(f"{path}: record 1") and "not a TFRecord file" in message
    assert "expected a CSV file with a header line, a TFRecord file of tf.train.Example" in message


def test_tfrecords_that_are_not_examples_are_refused(tmp_path):
    message = _refusal(tmp_path, _tfrecords(tmp_path / "rows.tfrecord", [b"\xff\xff not a proto"]))
    assert "record 1 is not a serialized tf.train.Example" in message


def test_examples_without_a_feature_the_model_reads_are_refused(tmp_path):
    from tfxp import wire
    example = wire.Example()
    example.features.feature["age"].int64_list.value.append(30)
    message = _refusal(tmp_path, _tfrecords(tmp_path / "rows.tfrecord", [example.SerializeToString()]))
    assert message.startswith(f"{tmp_path / 'rows.tfrecord'}: no feature ") and "the model reads them" in message


# -- the CSV writer, on PredictionLogs as BulkInferrer writes them ---------------------------------------------

def _prediction_logs(folder, examples, outputs):
    """One PredictionLog per example, as tfx_bsl's RunInference writes them for a predict signature."""
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    os.makedirs(folder, exist_ok=True)
    options = tf.io.TFRecordOptions(compression_type="GZIP")
    with tf.io.TFRecordWriter(os.path.join(folder, "prediction_logs-00000-of-00001.gz"), options) as writer:
        for example, output in zip(examples, outputs):
            log = prediction_log_pb2.PredictionLog()
            log.predict_log.request.model_spec.signature_name = "serving_default"
            log.predict_log.request.inputs["examples"].CopyFrom(tf.make_tensor_proto([example], dtype=tf.string))
            log.predict_log.response.outputs["outputs"].CopyFrom(
                tf.make_tensor_proto(np.asarray([output], np.float32)))
            writer.write(log.SerializeToString())


def _run_writer(tmp_path, package, outputs, rows=4):
    """Executes PredictionsToCsv on logs of the first ``rows`` unlabelled rows; returns (summary, CSV rows)."""
    import tensorflow as tf
    from tfx.types import standard_artifacts

    from components.custom import predictions_csv

    cfg = _config(tmp_path, package, data=_unlabelled_csv(tmp_path / "rows.csv", package, rows, extra_column=True))
    staged = inference.stage_rows(cfg)
    examples = [r.numpy() for r in tf.data.TFRecordDataset(os.path.join(staged.base, staged.pattern), "GZIP")]
    result = standard_artifacts.InferenceResult()
    result.uri = str(tmp_path / "inference_result")
    os.makedirs(result.uri)
    if outputs is not None:
        _prediction_logs(result.uri, examples, outputs)
    scored = predictions_csv.ScoredRows()
    scored.uri = str(tmp_path / "scored")
    predictions_csv.Executor().Do({"inference_result": [result]}, {"scored_rows": [scored]},
                                  {"user_package": package, "code_fingerprint": "x"})
    with open(os.path.join(scored.uri, predictions_csv.SUMMARY_FILE)) as f:
        summary = json.load(f)
    if not summary["scored"]:
        return summary, None
    with open(summary["csv"], newline="") as f:
        return summary, list(csv.DictReader(f))


@pytest.mark.parametrize("package, outputs, words", [
    ("synth_binary", [[0.9], [0.2], [0.5], [0.01]],
     [("1", "0.9"), ("0", "0.8"), ("1", "0.5"), ("0", "0.99")]),
    ("synth_multiclass", [[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.2, 0.5, 0.3], [0.4, 0.4, 0.2]],
     [("bronze", "0.7"), ("gold", "0.6"), ("silver", "0.5"), ("bronze", "0.4")]),
    ("synth_regression", [[12.5], [-3.25], [0.0], [100.125]], [("12.5",), ("-3.25",), ("0.0",), ("100.125",)]),
])
def test_each_row_gets_the_prediction_in_the_task_s_words_beside_its_own_columns(tmp_path, package, outputs, words):
    summary, rows = _run_writer(tmp_path, package, outputs)
    task, features = load_user_code(package).task, load_user_code(package).features
    predicted = list(task.prediction_columns())
    assert [tuple(row[c] for c in predicted) for row in rows] == words
    inputs = [f.name for f in features if f.name != task.label]
    assert list(rows[0]) == inputs + ["row_id"] + predicted  # the feature list's order, then the others; no label
    assert [row["row_id"] for row in rows] == ["id-0", "id-1", "id-2", "id-3"]
    assert summary["rows"] == 4 and summary["columns"] == list(rows[0])


def test_the_columns_read_back_as_the_rows_that_were_scored(tmp_path):
    _, rows = _run_writer(tmp_path, "synth_binary", [[0.5]] * 4)
    with open(tmp_path / "rows.csv", newline="") as f:
        given = list(csv.DictReader(f))
    for scored, original in zip(rows, given):
        for name, value in original.items():
            assert scored[name] == value or float(scored[name]) == pytest.approx(float(value), rel=1e-6), name


def test_without_prediction_logs_nothing_is_written_and_the_summary_says_not_scored(tmp_path):
    summary, rows = _run_writer(tmp_path, "synth_binary", None)
    assert (summary["scored"], summary["rows"], summary["csv"], rows) == (False, 0, None, None)
    assert os.listdir(tmp_path / "scored") == ["summary.json"]


# -- only a blessed model scores ----------------------------------------------------------------------------

def test_tfx_s_bulk_inferrer_writes_nothing_for_a_model_the_evaluator_did_not_bless(tmp_path):
    from tfx.components.bulk_inferrer.executor import Executor
    from tfx.types import standard_artifacts

    artifacts = {}
    for key, artifact_type in [("examples", standard_artifacts.Examples), ("model", standard_artifacts.Model),
                               ("model_blessing", standard_artifacts.ModelBlessing),
                               ("inference_result", standard_artifacts.InferenceResult)]:
        artifacts[key] = artifact_type()
        artifacts[key].uri = str(tmp_path / key)
        os.makedirs(artifacts[key].uri)
    artifacts["model_blessing"].set_int_custom_property("blessed", 0)
    Executor().Do({key: [artifacts[key]] for key in ("examples", "model", "model_blessing")},
                  {"inference_result": [artifacts["inference_result"]]}, {"model_spec": "{}", "data_spec": "{}"})
    assert os.listdir(artifacts["inference_result"].uri) == []


def test_when_nothing_was_scored_tfxp_infer_says_why_and_exits_1(tmp_path, monkeypatch, capsys):
    from pipeline import infer_command, local_runner, run_summary

    cfg = _config(tmp_path, data=str(tmp_path / "rows.csv"))
    monkeypatch.setattr(local_runner, "ensure_data", lambda cfg: None)
    monkeypatch.setattr(inference, "stage_rows", lambda cfg: None)
    monkeypatch.setattr(local_runner, "run_and_record", lambda cfg, by, verbose: (12.0, "the.log"))
    monkeypatch.setattr(inference, "scored_rows", lambda cfg: {"scored": False, "rows": 0, "csv": None})
    monkeypatch.setattr(run_summary, "blessing_of", lambda *args: (False, ""))
    assert infer_command.infer(cfg) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "Pipeline 'synth_binary' finished in 12.0s (full log: the.log)."
    assert out[1].startswith(f"Batch scoring of {tmp_path / 'rows.csv'}: nothing scored. BulkInferrer scores only a "
                             f"model the Evaluator blessed, and this run's model is not: the Evaluator did not bless it "
                             f"(its gate: accuracy >= 0.6 ")
    assert len(out) == 2
