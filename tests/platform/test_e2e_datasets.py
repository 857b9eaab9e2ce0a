"""Another dataset, another task, end to end, with no platform edit (marked e2e: minutes).

For a multi-class and a regression dataset (tests/datasets: only the data scientist's three files),
the steps docs/your-package.md gives for a new dataset: synthetic CSV -> `tfxp data` -> `tfxp schema` ->
a config file -> `tfxp run`. Then: every component ran, a model was pushed, and the Evaluator, the
TFLite branch and the printed prediction all speak the task's language.
"""
import csv
import json
import os
import re
import subprocess
import sys

import pytest
import yaml

from components.core.user_code import load_user_code
from pipeline import inference
from pipeline.config import load_config
from pipeline.run_summary import EXECUTED, latest_output_uri, latest_run_states
from serving import predict
from tests.conftest import write_without_column
from tests.support import synthetic

pytestmark = pytest.mark.e2e

CASES = {
    # package: (evaluation section, TFMA metric names, TFLite metrics, what the printed prediction looks like)
    "synth_multiclass": ({"threshold": 0.5}, {"sparse_categorical_accuracy", "example_count"}, ["accuracy"],
                         r"segment = (bronze|silver|gold) \(p = [01]\.\d{3}\) \(its label: (bronze|silver|gold)\)"),
    "synth_regression": ({"threshold": 6.0}, {"mean_absolute_error", "root_mean_squared_error", "example_count"},
                         ["mae", "rmse"], r"price = [-\d.e+]+ \(its label: [-\d.e+]+\)"),
}


def _tfxp(*args):
    result = subprocess.run([sys.executable, "-m", "pipeline.cli", *args], capture_output=True, text=True,
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"), timeout=1200)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return result


@pytest.fixture(scope="module", params=sorted(CASES))
def dataset_run(request, tmp_path_factory):
    package = request.param
    tmp = tmp_path_factory.mktemp(package)
    user = load_user_code(package)
    csv_path = synthetic.write_csv(tmp / "data.csv", user, 1500)
    # The batch scoring branch on, for 300 of the rows without their label's column.
    unlabelled = write_without_column(csv_path, tmp / "unlabelled.csv", user.task.label, rows=300)
    config = {"pipeline_name": package, "user_package": package, "data_root": str(tmp / "data"),
              "output_root": str(tmp / "runs"), "schema_path": str(tmp / "schema.pbtxt"),
              "training": {"train_steps": 250, "eval_steps": 10, "batch_size": 32},
              "evaluation": CASES[package][0], "inference": {"data": unlabelled}}
    config_path = tmp / "config.yaml"
    config_path.write_text(yaml.safe_dump(config))
    _tfxp("data", "--config", str(config_path), "--csv", csv_path)
    schema = _tfxp("schema", "--config", str(config_path))
    run = _tfxp("run", "--config", str(config_path))
    return package, load_config(str(config_path)), schema, run


def test_the_schema_is_inferred_for_the_feature_list(dataset_run):
    import tensorflow_data_validation as tfdv
    package, cfg, schema, _ = dataset_run
    inferred = tfdv.load_schema_text(cfg.resolved_schema_path)
    assert {f.name for f in inferred.feature} == set(cfg.user_code.feature_by_name)
    label = next(f for f in inferred.feature if f.name == cfg.user_code.task.label)
    assert list(label.not_in_environment) == ["SERVING"] and not any(f.HasField("shape") for f in inferred.feature)
    assert "wrote a schema of" in schema.stdout


def test_every_component_runs_and_a_model_is_pushed(dataset_run):
    _, cfg, _, run = dataset_run
    states = latest_run_states(cfg.resolved_metadata_path, cfg.pipeline_name)
    assert states and set(states.values()) == {EXECUTED}, states
    assert len(predict.model_versions(cfg.serving_model_dir)) == 1
    assert len(predict.model_versions(cfg.lite_serving_model_dir, marker_suffix=".tflite")) == 1
    assert "Pushed model:" in run.stdout


def test_the_evaluator_measures_and_gates_with_the_task_s_metrics(dataset_run):
    import tensorflow_model_analysis as tfma
    package, cfg, _, _ = dataset_run
    evaluation = latest_output_uri(cfg.resolved_metadata_path, cfg.pipeline_name, "evaluator", "evaluation")
    overall = next(m[""][""] for key, m in tfma.load_eval_result(evaluation).slicing_metrics if key == ())
    assert set(overall) == CASES[package][1]
    assert tfma.load_validation_result(evaluation).validation_ok
    blessing = latest_output_uri(cfg.resolved_metadata_path, cfg.pipeline_name, "evaluator", "blessing")
    assert os.path.exists(os.path.join(blessing, "BLESSED"))


def test_the_tflite_branch_reports_the_task_s_metrics(dataset_run):
    package, cfg, _, run = dataset_run
    version = predict.latest_version(cfg.lite_serving_model_dir, marker_suffix=".tflite")
    with open(os.path.join(version, "report.json")) as f:
        report = json.load(f)
    assert report["task"] == cfg.user_code.task.KIND and report["metrics"] == CASES[package][2]
    header = next(line for line in run.stdout.splitlines() if line.strip().startswith("variant"))
    assert all(name in header.split() for name in CASES[package][2])


def test_the_printed_prediction_speaks_the_task_s_language(dataset_run):
    package, _, _, run = dataset_run
    assert re.search(CASES[package][3], run.stdout), run.stdout[-1500:]
    assert "big tipper" not in run.stdout and "trip_" not in run.stdout


def test_unlabelled_rows_are_scored_in_the_task_s_words(dataset_run):
    package, cfg, _, run = dataset_run
    summary = inference.scored_rows(cfg)
    with open(summary["csv"], newline="") as f:
        rows = list(csv.DictReader(f))
    task = cfg.user_code.task
    assert summary["scored"] and len(rows) == 300 and task.label not in rows[0]
    assert list(rows[0])[-len(task.prediction_columns()):] == list(task.prediction_columns())
    predicted = [row[f"predicted_{task.label}"] for row in rows]
    if package == "synth_multiclass":
        assert set(predicted) <= set(task.class_names) and len(set(predicted)) > 1
        assert all(1 / 3 <= float(row["predicted_segment_probability"]) <= 1 for row in rows)
    else:
        assert len({float(value) for value in predicted}) > 1
    assert f"{len(rows)} rows scored by this run's blessed model" in run.stdout


def test_a_preprocessing_fn_that_forgets_the_label_stops_the_run_with_one_clear_line(tmp_path):
    import shutil
    from tests.conftest import DATASETS_DIR
    package = tmp_path / "pkg" / "forgetful"
    shutil.copytree(os.path.join(DATASETS_DIR, "synth_regression"), package,
                    ignore=shutil.ignore_patterns("__pycache__"))
    source = (package / "preprocessing.py").read_text()
    (package / "preprocessing.py").write_text(source.replace("    outputs[features.TASK.label_key]", "    # outputs[...]"))
    csv_path = synthetic.write_csv(tmp_path / "data.csv", load_user_code("synth_regression"), 400)
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump({
        "pipeline_name": "forgetful", "user_package": "forgetful", "source_csv": csv_path,
        "data_root": str(tmp_path / "runs" / "data"), "output_root": str(tmp_path / "runs"),
        "training": {"train_steps": 5, "eval_steps": 1}, "tflite": {"enabled": False}}))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2",
               PYTHONPATH=str(tmp_path / "pkg") + os.pathsep + os.environ.get("PYTHONPATH", ""))
    result = subprocess.run([sys.executable, "-m", "pipeline.cli", "run", "--config", str(config_path)],
                            capture_output=True, text=True, env=env, timeout=1200)
    assert result.returncode == 2, result.stderr[-3000:]
    error = [line for line in result.stderr.splitlines() if line.startswith("tfxp run: error:")]
    assert len(error) == 1 and "forgetful/preprocessing.py: preprocessing_fn outputs no 'price_xf'" in error[0]
    assert "Traceback" not in result.stderr
    assert predict.model_versions(str(tmp_path / "runs" / "serving_model" / "forgetful")) == []
