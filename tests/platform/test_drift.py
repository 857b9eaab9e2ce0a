"""`tfxp drift` without a pipeline run: windows of the shipped sample as CSV, TFRecords of tf.Example and
request logs (PredictionLog), compared by TFDV with the schema's thresholds (pipeline/drift/; skew against a
served model's training data, found through MLMD, is tested on the sample's run in tests/sample/test_drift_e2e.py)."""
import csv
import os
import re
import subprocess
import sys

import pytest
import tensorflow as tf
import tensorflow_data_validation as tfdv
from tensorflow_serving.apis import prediction_log_pb2

from pipeline.config import load_config
from pipeline.drift import compare, inputs
from tests.conftest import write_csv_slice
from tests.support.skew import SKEWED, skew_csv
from tfxp import contract, request_logs

def _examples(csv_path):
    return inputs.read_examples(str(csv_path), load_config().user_code.features, 10 ** 6).examples


def _write_logs(prefix, examples, per_request=10, version=7):
    """Finished request-log files as `tfxp serve` names them: predict requests of ``per_request`` examples."""
    path = request_logs.file_name(str(prefix), "20261203T000000", 1, 1)
    with tf.io.TFRecordWriter(path) as writer:
        for i in range(0, len(examples), per_request):
            log = prediction_log_pb2.PredictionLog()
            log.log_metadata.model_spec.name = "chicago_taxi"
            log.log_metadata.model_spec.version.value = version
            log.predict_log.request.inputs[contract.EXAMPLES].CopyFrom(
                tf.make_tensor_proto(examples[i:i + per_request], dtype=tf.string))
            writer.write(log.SerializeToString())
    return path


def _tfxp_drift(*args, cwd):
    return subprocess.run([sys.executable, "-m", "pipeline.cli", "drift", *args, "--set", f"output_root={cwd}"],
                          capture_output=True, text=True, cwd=cwd, timeout=600)


def _split_rows(src, every, picked, rest):
    """Row i of ``src`` into ``picked`` when i % every == 0, else into ``rest``: two samples of the same data
    (the sample CSV is ordered: consecutive slices differ)."""
    with open(src, newline="") as f_in, open(picked, "w", newline="") as f_a, open(rest, "w", newline="") as f_b:
        reader = csv.reader(f_in)
        header = next(reader)
        writers = [csv.writer(f_a), csv.writer(f_b)]
        for writer in writers:
            writer.writerow(header)
        for i, row in enumerate(reader):
            writers[0 if i % every == 0 else 1].writerow(row)
    return str(picked), str(rest)


@pytest.fixture(scope="module")
def windows(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("windows")
    current, reference = _split_rows(write_csv_slice(tmp / "rows.csv", 3000), 3, tmp / "current.csv",
                                     tmp / "reference.csv")
    return tmp, reference, current, skew_csv(current, tmp / "skewed.csv")


# -- the three inputs --------------------------------------------------------------------------------

def test_a_csv_a_tfrecord_dir_and_request_logs_give_the_same_examples(windows, tmp_path):
    _, _, current, _ = windows
    from_csv = _examples(current)
    (tmp_path / "records").mkdir()
    with tf.io.TFRecordWriter(str(tmp_path / "records" / "part-0.tfrecord.gz"), options="GZIP") as writer:
        for example in from_csv:
            writer.write(example)
    (tmp_path / "logs").mkdir()
    _write_logs(tmp_path / "logs" / "requests", from_csv)
    (tmp_path / "logs" / "requests-20261203T000001-1-000002.tfrecord.tmp").write_bytes(b"half written")
    features = load_config().user_code.features
    for path, kind in ((tmp_path / "records", inputs.EXAMPLES), (tmp_path / "logs" / "requests", inputs.LOGS),
                       (tmp_path / "logs", inputs.LOGS)):
        window = inputs.read_examples(str(path), features, 10 ** 6)
        assert (window.kind, window.examples) == (kind, from_csv)
    assert inputs.read_examples(str(tmp_path / "logs"), features, 10 ** 6).versions == {7: 100}


def test_the_newest_examples_are_kept_beyond_max_examples(windows):
    window = inputs.read_examples(windows[2], load_config().user_code.features, 300)
    assert len(window.examples) == 300 and window.dropped == 700 and "700 older left out" in window.describe()


@pytest.mark.parametrize("content, says", [
    (None, "no request logs, TFRecord files or CSV there"),
    (b"this is not a TFRecord file", "not a TFRecord file"),
    ("empty", "an empty TFRecord file"),
    ("garbage", "neither tensorflow.serving.PredictionLog nor tf.train.Example"),
])
def test_bad_input_is_one_error_naming_the_file(tmp_path, content, says):
    path = tmp_path / "data"
    path.mkdir()
    if content is not None:
        with tf.io.TFRecordWriter(str(path / "part-0")) as writer:
            if content == "garbage":
                writer.write(b"\xff\xff\xff")
        if isinstance(content, bytes):
            (path / "part-0").write_bytes(content)
    with pytest.raises(inputs.DriftInputError, match=re.escape(says)) as raised:
        inputs.read_examples(str(path), load_config().user_code.features, 100)
    assert str(tmp_path) in str(raised.value) and "\n" not in str(raised.value)


def test_a_feature_the_schema_lacks_is_named(tmp_path):
    schema = tfdv.load_schema_text(load_config().resolved_schema_path)
    example = tf.train.Example()
    example.features.feature["surge_multiplier"].float_list.value.append(1.5)
    with pytest.raises(inputs.DriftInputError, match="'surge_multiplier' is not in the schema"):
        compare.unknown_features([example.SerializeToString()], schema, "logs/requests")


# -- thresholds ------------------------------------------------------------------------------------

def test_every_serving_feature_of_the_sample_schema_has_a_skew_and_a_drift_threshold():
    schema = tfdv.load_schema_text(load_config().resolved_schema_path)
    for feature in schema.feature:
        serving = "SERVING" not in feature.not_in_environment
        for comparator in (feature.skew_comparator, feature.drift_comparator):
            has = comparator.HasField("infinity_norm") or comparator.HasField("jensen_shannon_divergence")
            assert has == serving, feature.name
            if has:
                assert comparator.HasField("infinity_norm") == compare.is_categorical(feature), feature.name


def test_config_thresholds_replace_the_schema_s_and_unknown_names_are_refused():
    cfg = load_config(overrides=["drift.thresholds={trip_miles: 0.5, payment_type: 0.3}"])
    schema = tfdv.load_schema_text(cfg.resolved_schema_path)
    ready, origin = compare.thresholded_schema(schema, cfg.drift.thresholds, "schema.pbtxt", skew=True)
    by_name = {f.name: f for f in ready.feature}
    assert by_name["trip_miles"].skew_comparator.jensen_shannon_divergence.threshold == 0.5
    assert by_name["payment_type"].skew_comparator.infinity_norm.threshold == 0.3
    assert (origin["trip_miles"], origin["fare"]) == ("config", "schema")
    with pytest.raises(compare.DriftConfigError, match="'tips' is not a serving feature of schema.pbtxt"):
        compare.thresholded_schema(schema, {"tips": 0.2}, "schema.pbtxt", skew=True)
    del schema.default_environment[:]
    with pytest.raises(compare.DriftConfigError, match="no SERVING environment"):
        compare.thresholded_schema(schema, {}, "schema.pbtxt", skew=True)


def test_calibrated_thresholds_sit_above_the_distance_between_two_samples_of_the_same_data(windows):
    _, reference, current, _ = windows
    schema = tfdv.load_schema_text(load_config().resolved_schema_path)
    for feature in schema.feature:
        feature.ClearField("skew_comparator")
        feature.ClearField("drift_comparator")
    fitted = compare.calibrate(schema, _examples(reference)[:1000], _examples(current))
    assert set(fitted) == {f.name for f in schema.feature if "SERVING" not in f.not_in_environment}
    assert all(compare.STARTING_THRESHOLDS[compare.JSD] <= v <= 1.0 for v in fitted.values())


# -- the command -------------------------------------------------------------------------------------

def test_a_skewed_window_crosses_its_thresholds_exit_3_and_the_page_names_the_features(windows):
    tmp, reference, _, skewed = windows
    result = _tfxp_drift("--data", skewed, "--reference", reference, "--output", str(tmp / "skewed.html"), cwd=tmp)
    assert result.returncode == 3, result.stderr[-3000:]
    crossed = re.search(r"drift found: \d+ feature\(s\) crossed their threshold: (.*) \(see the page\)",
                        result.stderr).group(1).split(", ")
    assert set(SKEWED) <= set(crossed), crossed
    page = (tmp / "skewed.html").read_text()
    for name in SKEWED:
        assert re.search(rf'<tr id="feature-{name}" class="crossed">', page), name
    assert "drift check" in page and "<script" not in page
    verdict = load_config(overrides=[f"output_root={tmp}"])
    from pipeline.drift.verdict import read_latest
    latest = read_latest(verdict)
    assert latest["page"] == str(tmp / "skewed.html") and set(SKEWED) <= set(latest["crossed"])


def test_an_unskewed_window_of_the_same_data_is_within_every_threshold(windows):
    from pipeline.drift import check

    tmp, reference, current, _ = windows
    result = check.check(load_config(overrides=[f"output_root={tmp}"]), current, reference)
    assert not result.crossed and len(result.rows) == 17, result.summary()
    assert os.path.dirname(result.page) == str(tmp / "drift" / "chicago_taxi")
    assert 'class="crossed"' not in open(result.page).read()
