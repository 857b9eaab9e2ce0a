"""The run report's parts without a pipeline run: Keras's TensorBoard logs read back as curves, thresholds
in words, and the page of a run the anomalies gate stopped, from a real MLMD store laid out as TFX
records runs (pipeline/report/; the report of a whole run is tested in tests/sample/test_report.py)."""
import html
import json
import os
import re

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_model_analysis as tfma
from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2 as mlmd
from tensorflow_metadata.proto.v0 import anomalies_pb2, statistics_pb2
from tfx.types import artifact_utils, standard_artifacts

from pipeline import report
from pipeline.config import load_config
from pipeline.evaluation import gate_threshold
from tests.support.browser import check_page


def _fit_with_tensorboard(log_dir, **callback_args):
    """A tiny tf_keras model fit for 2 epochs of 5 steps with validation, logging like the Trainer."""
    import tf_keras as keras

    x = np.random.default_rng(0).normal(size=(64, 3)).astype("float32")
    y = (x.sum(axis=1) > 0).astype("float32")
    model = keras.Sequential([keras.layers.Dense(1, activation="sigmoid", input_shape=(3,))])
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(8).repeat()
    model.fit(data, epochs=2, steps_per_epoch=5, validation_data=data, validation_steps=2, verbose=0,
              callbacks=[keras.callbacks.TensorBoard(log_dir=str(log_dir), **callback_args)])


@pytest.mark.training
def test_keras_epoch_logs_become_train_and_validation_curves_at_the_iterations_each_epoch_ended(tmp_path):
    _fit_with_tensorboard(tmp_path)
    unit, curves = report.training_curves(report.read_scalars(str(tmp_path)))
    assert unit == "step" and list(curves) == ["loss", "accuracy"]
    assert [step for step, _ in curves["loss"]["train"]] == [5, 10]
    assert [step for step, _ in curves["loss"]["validation"]] == [5, 10]


@pytest.mark.training
def test_batch_logs_give_the_train_curve_every_update_freq_steps(tmp_path):
    # tf_keras 2.16 runs the callback's batch hooks, which write batch_<metric>, only with write_steps_per_second.
    _fit_with_tensorboard(tmp_path, update_freq=2, write_steps_per_second=True)
    _, curves = report.training_curves(report.read_scalars(str(tmp_path)))
    assert list(curves) == ["loss", "accuracy"]  # the speed is not a curve of the model
    assert [step for step, _ in curves["loss"]["train"]] == [2, 4, 6, 8, 10]
    assert [step for step, _ in curves["loss"]["validation"]] == [5, 10]


def test_without_iterations_epoch_logs_are_placed_on_epochs():
    scalars = {"train": {"epoch_loss": [(0, 0.7), (1, 0.5)]}, "validation": {"epoch_loss": [(0, 0.6), (1, 0.55)]}}
    assert report.training_curves(scalars) == ("epoch", {"loss": {"train": [(1, 0.7), (2, 0.5)],
                                                                  "validation": [(1, 0.6), (2, 0.55)]}})


def test_the_sample_gate_reads_as_a_lower_bound_and_an_allowed_drop_below_the_baseline():
    assert report.describe_threshold("binary_accuracy", gate_threshold(load_config())) == \
        "binary_accuracy >= 0.6 and binary_accuracy at most 0.01 below the baseline's"


def test_an_error_metric_gate_reads_as_an_upper_bound_and_an_allowed_relative_rise():
    threshold = tfma.MetricThreshold(
        value_threshold=tfma.GenericValueThreshold(upper_bound={"value": 3.5}),
        change_threshold=tfma.GenericChangeThreshold(direction=tfma.MetricDirection.LOWER_IS_BETTER,
                                                     relative={"value": 0.05}))
    assert report.describe_threshold("mae", threshold) == "mae <= 3.5 and mae at most 5% above the baseline's"


# -- a run stopped by the anomalies gate, recorded as TFX records it ----------------------------------------

ANOMALY = "Unexpectedly large value: <b>99</b> & more"


def _statistics(num_examples):
    stats = statistics_pb2.DatasetFeatureStatisticsList()
    dataset = stats.datasets.add(num_examples=num_examples)
    hour = dataset.features.add(type=statistics_pb2.FeatureNameStatistics.INT)
    hour.path.step.append("trip_start_hour")
    hour.num_stats.common_stats.num_non_missing = num_examples - 10
    hour.num_stats.common_stats.num_missing = 10
    hour.num_stats.mean, hour.num_stats.std_dev, hour.num_stats.max = 13.5, 6.6, 99
    histogram = hour.num_stats.histograms.add(type=statistics_pb2.Histogram.STANDARD)
    for low in range(0, 100, 25):
        histogram.buckets.add(low_value=low, high_value=low + 25, sample_count=(num_examples - 10) / 4)
    company = dataset.features.add(type=statistics_pb2.FeatureNameStatistics.STRING)
    company.path.step.append("company")
    company.string_stats.common_stats.num_non_missing = num_examples
    company.string_stats.unique = 2
    for rank, (label, count) in enumerate([("Flash Cab", num_examples - 5), ("<i>Other</i>", 5)]):
        company.string_stats.rank_histogram.buckets.add(label=label, sample_count=count, low_rank=rank,
                                                         high_rank=rank)
    return stats


def _write(path, proto):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(proto.SerializeToString())


class _RecordedRun:
    """Executions of one run of pipeline ``name`` in an MLMD sqlite store, with their output artifacts."""

    def __init__(self, path, name, run_id):
        config = mlmd.ConnectionConfig()
        config.sqlite.filename_uri = str(path)
        config.sqlite.connection_mode = mlmd.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
        self.store, self.name = metadata_store.MetadataStore(config), name
        types = {t: self.store.put_context_type(mlmd.ContextType(name=t)) for t in ("pipeline", "pipeline_run", "node")}
        self.contexts = [self._context(types["pipeline"], name), self._context(types["pipeline_run"], run_id)]
        self.node_type = types["node"]

    def _context(self, type_id, name):
        context = mlmd.Context(type_id=type_id, name=name)
        context.id = self.store.put_contexts([context])[0]
        return context

    def execute(self, node, type_name, state, outputs=(), message=""):
        execution = mlmd.Execution(type_id=self.store.put_execution_type(mlmd.ExecutionType(name=type_name)),
                                   last_known_state=state)
        if message:
            # What TFX's launcher records of a failure (execution_lib.set_execution_result).
            execution.custom_properties["__execution_result__"].string_value = json.dumps(
                {"code": 1, "resultMessage": message})
        recorded = []
        for key, artifact in outputs:
            artifact.mlmd_artifact.type_id = self.store.put_artifact_type(artifact.artifact_type)
            artifact.mlmd_artifact.state = mlmd.Artifact.LIVE
            artifact.set_string_custom_property("tfx_version", "1.16.0")
            event = mlmd.Event(type=mlmd.Event.OUTPUT)
            event.path.steps.add(key=key)
            event.path.steps.add(index=0)
            recorded.append((artifact.mlmd_artifact, event))
        node_context = self._context(self.node_type, f"{self.name}.{node}")
        self.store.put_execution(execution, recorded, self.contexts + [node_context])


@pytest.fixture(scope="module")
def stopped_run(tmp_path_factory):
    """The report of a run whose ExampleValidator found an anomaly in eval and whose gate then failed."""
    tmp = tmp_path_factory.mktemp("stopped")
    splits = {"train": 1000, "eval": 500}
    statistics = standard_artifacts.ExampleStatistics()
    statistics.uri, statistics.split_names = str(tmp / "statistics"), artifact_utils.encode_split_names(list(splits))
    anomalies = standard_artifacts.ExampleAnomalies()
    anomalies.uri, anomalies.split_names = str(tmp / "anomalies"), artifact_utils.encode_split_names(list(splits))
    for split, rows in splits.items():
        _write(os.path.join(statistics.uri, f"Split-{split}", "FeatureStats.pb"), _statistics(rows))
        found = anomalies_pb2.Anomalies()
        if split == "eval":
            found.anomaly_info["trip_start_hour"].short_description = "Out-of-range values"
            found.anomaly_info["trip_start_hour"].description = ANOMALY
        _write(os.path.join(anomalies.uri, f"Split-{split}", "SchemaDiff.pb"), found)
    run = _RecordedRun(tmp / "metadata.db", "taxi", "run-1")
    run.execute("StatisticsGen", "tfx.components.statistics_gen.component.StatisticsGen", mlmd.Execution.COMPLETE,
                [("statistics", statistics)])
    run.execute("ExampleValidator", "tfx.components.example_validator.component.ExampleValidator",
                mlmd.Execution.COMPLETE, [("anomalies", anomalies)])
    run.execute("AnomaliesGate", "components.custom.anomalies_gate.AnomaliesGate", mlmd.Execution.FAILED,
                message="Traceback (most recent call last):\nAnomaliesFoundError: data validation failed")
    config = tmp / "config.yaml"
    config.write_text(f"pipeline_name: taxi\ndata_root: /data\noutput_root: {tmp}\nmetadata_path: {tmp}/metadata.db\n")
    cfg = load_config(str(config))
    path = report.write_report(cfg)
    with open(path) as f:
        return cfg, path, f.read()


def _text(page):
    return html.unescape(re.sub(r"<[^>]+>", " ", page))


def test_the_report_goes_to_the_reports_folder_and_latest_html_points_at_it(stopped_run):
    cfg, path, _ = stopped_run
    assert path == os.path.join(cfg.resolved_output_root, "reports", "taxi", "run-1.html")
    assert os.path.realpath(os.path.join(os.path.dirname(path), "latest.html")) == os.path.realpath(path)


def test_the_header_of_a_stopped_run_names_the_component_that_failed(stopped_run):
    assert "failed: AnomaliesGate" in stopped_run[2]


def test_the_data_section_shows_rows_per_split_and_the_anomalies(stopped_run):
    page = stopped_run[2]
    assert re.search(r'data-split="train">1,000<', page) and re.search(r'data-split="eval">500<', page)
    assert "Out-of-range values" in page and "1.0%" in page  # trip_start_hour's 10 missing of 1,000


def test_text_from_the_artifacts_is_escaped(stopped_run):
    page = stopped_run[2]
    assert "<b>99</b>" not in page and "&lt;b&gt;99&lt;/b&gt; &amp; more" in page
    assert "<i>Other</i>" not in page


def test_each_section_after_the_failure_says_in_one_line_that_its_component_did_not_run(stopped_run):
    text = _text(stopped_run[2])
    for node in ("Trainer", "evaluator", "tflite_evaluator", "infra_validator", "pusher"):
        assert f"{node} did not run in this run (the run stopped before it)" in text


def test_the_components_table_lists_each_execution_with_its_state(stopped_run):
    rows = re.findall(r'data-component="([^"]+)" data-state="([^"]+)"', stopped_run[2])
    assert rows == [("StatisticsGen", "executed"), ("ExampleValidator", "executed"), ("AnomaliesGate", "failed")]
    assert "AnomaliesFoundError: data validation failed" in stopped_run[2]


@pytest.mark.browser
def test_the_report_of_a_stopped_run_renders_in_a_browser_with_every_image(stopped_run):
    check = check_page(stopped_run[1])
    assert (check.errors, check.console, check.broken_images) == ([], [], [])
    assert len(check.images) >= 3  # two histograms and the timeline


def test_asking_for_a_run_that_is_not_there_names_the_metadata_file_and_the_pipeline(stopped_run):
    cfg = stopped_run[0]
    with pytest.raises(FileNotFoundError, match=r"no run 'run-9' of pipeline 'taxi' in .*metadata\.db"):
        report.write_report(cfg, "run-9")


def test_a_pipeline_that_never_ran_is_an_error_naming_the_metadata_file_and_the_pipeline(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(f"pipeline_name: nobody\ndata_root: /data\noutput_root: {tmp_path}\n")
    with pytest.raises(FileNotFoundError, match=r"no run of pipeline 'nobody': the metadata file .*metadata\.db "
                                                r"does not exist"):
        report.write_report(load_config(str(config)))


def test_a_run_without_a_tuner_has_no_tuning_section(stopped_run):
    assert 'id="tuning"' not in stopped_run[2]


# -- a run with a Tuner: its trials.json (as components/custom/tuner.py writes it) -------------------------

TRIALS = {"format": 1, "objective": {"name": "val_accuracy", "direction": "max"}, "algorithm": "RandomSearch",
          "max_trials": 3, "search_seconds": 42.5, "workers": 2, "best_trial_id": "1", "trials": [
              {"trial_id": "0", "status": "COMPLETED", "score": 0.71, "seconds": 12.0, "worker": "tuner0",
               "hyperparameters": {"learning_rate": 1e-4, "units": 8}, "metrics": {}, "error": None},
              {"trial_id": "1", "status": "COMPLETED", "score": 0.89, "seconds": 11.0, "worker": "tuner1",
               "hyperparameters": {"learning_rate": 0.003, "units": 16}, "metrics": {}, "error": None},
              {"trial_id": "2", "status": "FAILED", "score": None, "seconds": 1.0, "worker": "tuner0",
               "hyperparameters": {"learning_rate": 0.01, "units": 4}, "metrics": {},
               "error": "model.py, line 9: build_model fails with <units=4>"}]}


@pytest.fixture(scope="module")
def tuned_run(tmp_path_factory):
    """The report of a run whose Tuner completed (and nothing else ran), from a trials.json fixture."""
    tmp = tmp_path_factory.mktemp("tuned")
    results = standard_artifacts.TunerResults()
    results.uri = str(tmp / "tuner_results")
    os.makedirs(results.uri)
    with open(os.path.join(results.uri, "trials.json"), "w") as f:
        json.dump(TRIALS, f)
    run = _RecordedRun(tmp / "metadata.db", "taxi", "run-1")
    run.execute("tuner", "components.custom.tuner.Tuner", mlmd.Execution.COMPLETE, [("tuner_results", results)])
    config = tmp / "config.yaml"
    config.write_text(f"pipeline_name: taxi\ndata_root: /data\noutput_root: {tmp}\nmetadata_path: {tmp}/metadata.db\n")
    path = report.write_report(load_config(str(config)))
    with open(path) as f:
        return path, f.read()


def test_the_tuning_section_lists_each_trial_s_hyperparameters_and_objective_and_marks_the_best(tuned_run):
    page = tuned_run[1]
    rows = re.findall(r'<tr data-trial="(\d)"( class="best" data-best="true")?>(.*?)</tr>', page, re.S)
    assert [(trial, bool(best)) for trial, best, _ in rows] == [("0", False), ("1", True), ("2", False)]
    cells = {trial: re.findall(r"<td[^>]*>(.*?)</td>", body, re.S) for trial, _, body in rows}
    assert cells["1"][1:4] == ["0.003", "16", "0.8900"] and cells["0"][1:4] == ["0.0001", "8", "0.7100"]
    assert cells["2"][3] == "–" and "build_model fails with &lt;units=4&gt;" in cells["2"][-1]
    text = " ".join(_text(page).split())
    assert "Best: trial 1 , val_accuracy 0.8900" in text and "2 workers in parallel" in text and "1 failed" in text
    assert re.search(r'<img class="wide" src="data:image/png;base64,[^"]+" alt="val_accuracy per trial">', page)


def test_trials_view_without_a_completed_trial_has_no_best_and_no_plot():
    record = dict(TRIALS, best_trial_id=None, trials=[TRIALS["trials"][2]])
    view = report.trials_view(record)
    assert view["best"] is None and view["plot"] is None and view["failed"] == 1


@pytest.mark.browser
def test_the_tuning_section_renders_in_a_browser_with_its_plot(tuned_run):
    check = check_page(tuned_run[0])
    assert (check.errors, check.console, check.broken_images) == ([], [], [])
    assert len(check.images) >= 2  # the trials' plot and the timeline
