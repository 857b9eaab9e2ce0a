"""The real pipeline on the shipped sample (a 2,000-row slice), end to end (marked e2e: minutes).

Runs `tfxp run` in a subprocess, as a user would, then checks MLMD and the serving dir.
"""
import csv
import glob
import json
import os
import shutil
import subprocess
import sys

import pytest
import tensorflow as tf

from pipeline import inference
from pipeline.config import PROJECT_ROOT, load_config
from pipeline.run_summary import CACHED, EXECUTED, latest_run_states
from serving import predict
from tests.conftest import write_csv_slice, write_without_column
from tests.support.sample_run import tfxp_run, write_config

pytestmark = pytest.mark.e2e

# The batch scoring branch is on in the session's run (tests/conftest.py sample_run: 300 of its rows without `tips`).
SCORING = ["inference_example_gen", "bulk_inferrer", "predictions_csv"]
COMPONENTS = ["ImportExampleGen", "StatisticsGen", "ImportSchemaGen", "ExampleValidator", "AnomaliesGate",
              "Transform", "Trainer", "evaluator", "pusher", "tflite_converter", "tflite_evaluator", "pusher_lite"
              ] + SCORING
UPSTREAM_OF_TRAINER = ["ImportExampleGen", "StatisticsGen", "ImportSchemaGen", "ExampleValidator", "AnomaliesGate",
                       "Transform", "inference_example_gen"]
TRAINER_AND_AFTER = ["Trainer", "evaluator", "pusher", "tflite_converter", "tflite_evaluator", "pusher_lite",
                     "bulk_inferrer", "predictions_csv"]


@pytest.fixture
def first_run(sample_run):
    """The sample's first run, shared with the serving tests (tests/conftest.py)."""
    return sample_run


def test_every_component_executed(first_run):
    _, _, cfg, _ = first_run
    states = latest_run_states(cfg.resolved_metadata_path, cfg.pipeline_name)
    assert {c: states.get(c) for c in COMPONENTS} == {c: EXECUTED for c in COMPONENTS}


def test_exactly_one_version_is_pushed_with_a_saved_model(first_run):
    _, _, cfg, result = first_run
    versions = os.listdir(cfg.serving_model_dir)
    assert len(versions) == 1 and versions[0].isdigit()
    assert os.path.exists(os.path.join(cfg.serving_model_dir, versions[0], "saved_model.pb"))
    assert f"Pushed model: {os.path.join(cfg.serving_model_dir, versions[0])}" in result.stdout


def test_the_pushed_model_predicts_a_probability_on_a_raw_example(first_run):
    _, _, cfg, result = first_run
    model_dir = predict.latest_version(cfg.serving_model_dir)
    probabilities = predict.predict_serialized(model_dir, predict.first_raw_examples(cfg.resolved_data_root, "eval", 5))
    assert probabilities.shape == (5, 1)
    assert ((probabilities >= 0) & (probabilities <= 1)).all()
    assert "P(big_tipper) =" in result.stdout and "(its label: " in result.stdout


def test_tflite_variants_are_pushed_with_their_input_contract_and_the_table_is_printed(first_run):
    _, _, cfg, result = first_run
    versions = predict.model_versions(cfg.lite_serving_model_dir, marker_suffix=".tflite")
    assert len(versions) == 1
    pushed = set(os.listdir(versions[0]))
    assert {"input_contract.json", "report.json", "transform_graph"} <= pushed
    with open(os.path.join(versions[0], "report.json")) as f:
        report = json.load(f)
    blessed = {name for name, v in report["variants"].items() if v["blessed"]}
    assert blessed and {f"{name}.tflite" for name in blessed} == {p for p in pushed if p.endswith(".tflite")}
    assert set(report["variants"]) == {"dynamic_range", "int8"} and report["metrics"] == ["accuracy", "auc"]
    assert "TFLite variants on" in result.stdout and "Pushed TFLite models:" in result.stdout


def test_a_rerun_with_nothing_changed_executes_no_component(first_run):
    _, config_path, cfg, _ = first_run
    result = tfxp_run(config_path)
    assert result.returncode == 0, result.stderr[-5000:]
    states = latest_run_states(cfg.resolved_metadata_path, cfg.pipeline_name)
    assert {c: states.get(c) for c in COMPONENTS} == {c: CACHED for c in COMPONENTS}
    assert len(os.listdir(cfg.serving_model_dir)) == 1
    assert "No new version was pushed" in result.stdout


def _scored(cfg):
    """(summary, CSV rows) of the batch scoring branch's newest output."""
    summary = inference.scored_rows(cfg)
    with open(summary["csv"], newline="") as f:
        return summary, list(csv.DictReader(f))


def test_the_unlabelled_rows_are_scored_into_prediction_logs_and_a_csv_in_the_task_s_words(first_run):
    tmp, _, cfg, result = first_run
    summary, rows = _scored(cfg)
    with open(os.path.join(tmp, "unlabelled.csv"), newline="") as f:
        given = list(csv.DictReader(f))
    assert summary["scored"] and summary["rows"] == len(rows) == len(given) == 300
    assert "tips" not in rows[0] and list(rows[0])[-2:] == ["predicted_big_tipper", "predicted_big_tipper_probability"]
    assert {row["predicted_big_tipper"] for row in rows} <= {"0", "1"}
    assert all(0.5 <= float(row["predicted_big_tipper_probability"]) <= 1 for row in rows)
    logs = glob.glob(os.path.join(summary["prediction_logs"], "prediction_logs-*.gz"))
    assert logs and sum(1 for _ in tf.data.TFRecordDataset(logs, compression_type="GZIP")) == 300
    assert f"Batch scoring of {cfg.resolved_inference_data}: 300 rows scored" in result.stdout
    assert f"CSV of the rows and their predictions: {summary['csv']}" in result.stdout


def test_the_scores_are_the_pushed_model_s_on_the_same_rows(first_run):
    """BulkInferrer scored with this run's model (blessed, so pushed): the served model gives the same answers."""
    from data.tfrecords import make_example

    _, _, cfg, _ = first_run
    _, rows = _scored(cfg)
    examples = [make_example(row, cfg.user_code.features, "scored row").SerializeToString() for row in rows[:50]]
    outputs = predict.predict_serialized(predict.latest_version(cfg.serving_model_dir), examples)
    expected = cfg.user_code.task.prediction_values(outputs)
    assert [row["predicted_big_tipper"] for row in rows[:50]] == [str(c) for c, _ in expected]
    assert [float(row["predicted_big_tipper_probability"]) for row in rows[:50]] == pytest.approx(
        [float(p) for _, p in expected], abs=1e-5)


def test_tfxp_infer_scores_other_rows_executing_only_the_branch(first_run, tmp_path):
    tmp, config_path, cfg, _ = first_run
    rows = write_without_column(os.path.join(tmp, "slice.csv"), tmp_path / "other.csv", "tips", rows=30)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run([sys.executable, "-m", "pipeline.cli", "infer", "--data", "other.csv", "--config", config_path,
                             "--show", "3"], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=1200)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    states = latest_run_states(cfg.resolved_metadata_path, cfg.pipeline_name)
    assert {c: states.get(c) for c in COMPONENTS} == {c: EXECUTED if c in SCORING else CACHED for c in COMPONENTS}
    summary = inference.scored_rows(cfg)
    lines = result.stdout.splitlines()
    assert f"Batch scoring of {rows}: 30 rows scored by this run's blessed model (TFX's BulkInferrer)." in lines
    assert f"  CSV of the rows and their predictions: {summary['csv']}" in lines
    assert any(line.startswith(f"  PredictionLogs (gzip'd TFRecords of tensorflow.serving.PredictionLog): "
                               f"{summary['prediction_logs']}") for line in lines)
    shown = lines[lines.index("The first 3 rows:") + 1:]
    with open(summary["csv"]) as f:
        assert shown == ["  " + line.rstrip("\n") for line in f.readlines()[:4]]
    assert shown[0].endswith("predicted_big_tipper,predicted_big_tipper_probability")


def _edited_copy(tmp_path, relative_path, old, new):
    """A copy of the components package, with one edit, that shadows the installed one."""
    shutil.copytree(os.path.join(PROJECT_ROOT, "components"), tmp_path / "components",
                    ignore=shutil.ignore_patterns("__pycache__"))
    path = tmp_path / "components" / relative_path
    source = path.read_text()
    assert old in source
    path.write_text(source.replace(old, new))
    return str(tmp_path)


def _assert_reran_from_the_trainer_on(cfg):
    states = latest_run_states(cfg.resolved_metadata_path, cfg.pipeline_name)
    assert {c: states[c] for c in UPSTREAM_OF_TRAINER} == {c: CACHED for c in UPSTREAM_OF_TRAINER}
    assert {c: states[c] for c in TRAINER_AND_AFTER} == {c: EXECUTED for c in TRAINER_AND_AFTER}


def test_editing_the_model_reruns_only_the_trainer_and_what_follows(first_run, tmp_path):
    _, config_path, cfg, _ = first_run
    copy = _edited_copy(tmp_path, "model.py", "HIDDEN_UNITS = (64, 32)", "HIDDEN_UNITS = (32, 16)")
    result = tfxp_run(config_path, pythonpath=copy)
    assert result.returncode == 0, result.stderr[-5000:]
    _assert_reran_from_the_trainer_on(cfg)


def test_editing_a_platform_module_run_only_inside_a_function_reruns_the_trainer(first_run, tmp_path):
    """The worker launcher is imported inside run_fn (and run as `python -m` for workers): the cache
    must still see an edit to it."""
    _, config_path, cfg, _ = first_run
    copy = _edited_copy(tmp_path, os.path.join("training", "launcher.py"), "POLL_SECONDS = 0.5", "POLL_SECONDS = 0.25")
    result = tfxp_run(config_path, pythonpath=copy)
    assert result.returncode == 0, result.stderr[-5000:]
    _assert_reran_from_the_trainer_on(cfg)


def test_a_tflite_conversion_beyond_the_tolerance_is_not_pushed_but_the_saved_model_is(tmp_path):
    # Forced: int8 calibrated on a single example clips nearly every activation, and the
    # tolerance is zero. The model must be trained enough to have something to lose: at 60 steps
    # it is barely better than the majority class and a clipped int8 copy can even beat it.
    config_path = write_config(tmp_path, write_csv_slice(tmp_path / "slice.csv", 1500), name="e2e_lite",
                                training={"train_steps": 400, "eval_steps": 10, "batch_size": 32},
                                tflite={"quantizations": ["int8"], "representative_examples": 1,
                                        "max_metric_drop": 0.0})
    cfg = load_config(config_path)
    result = tfxp_run(config_path)
    assert result.returncode == 0, result.stderr[-5000:]
    assert len(predict.model_versions(cfg.serving_model_dir)) == 1
    assert predict.model_versions(cfg.lite_serving_model_dir, marker_suffix=".tflite") == []
    assert "No TFLite model has been pushed" in result.stdout
    assert _tflite_report(result.stdout)["int8"]["blessed"] == "no"


def _tflite_report(stdout):
    """{variant: {"blessed": "yes" | "no"}} from the table tfxp run prints."""
    rows, lines = {}, stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("TFLite variants on"))
    for line in lines[start + 2:]:
        if not line.startswith("  "):
            break
        cells = line.split()
        rows[cells[0]] = {"blessed": cells[-1]}
    return rows


def _inject_out_of_domain_hours(src, dst, every=7):
    with open(src, newline="") as f_in, open(dst, "w", newline="") as f_out:
        reader, writer = csv.DictReader(f_in), None
        for i, row in enumerate(reader):
            if writer is None:
                writer = csv.DictWriter(f_out, fieldnames=reader.fieldnames)
                writer.writeheader()
            if i % every == 0:
                row["trip_start_hour"] = "99"  # the curated schema says 0..23
            writer.writerow(row)


# Both local Beam presets run the Beam components (ExampleGen, StatisticsGen, ExampleValidator).
@pytest.mark.parametrize("beam_preset", ["in_memory", "multi_processing"])
def test_anomalous_data_stops_the_run_before_transform_and_pushes_nothing(tmp_path, beam_preset):
    _inject_out_of_domain_hours(write_csv_slice(tmp_path / "clean.csv", 600), tmp_path / "anomalous.csv")
    config_path = write_config(tmp_path, str(tmp_path / "anomalous.csv"), name="e2e_anomaly",
                                beam_preset=beam_preset)
    cfg = load_config(config_path)
    result = tfxp_run(config_path)
    assert result.returncode == 3, result.stderr[-5000:]
    assert "trip_start_hour" in result.stderr and "stopped: data validation failed" in result.stderr
    states = latest_run_states(cfg.resolved_metadata_path, cfg.pipeline_name)
    assert states["ExampleValidator"] == EXECUTED and states["AnomaliesGate"] == "FAILED"
    assert not {"Transform", "Trainer", "evaluator", "pusher"} & set(states)
    assert predict.model_versions(cfg.serving_model_dir) == []
