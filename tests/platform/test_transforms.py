"""The per-kind transformations (components/core/transforms.py), run with tf.Transform's Beam
implementation on hand-written rows of the test datasets."""
import numpy as np
import pytest

from components.core.user_code import load_user_code
from tests.support.workspace import raw_metadata

pytestmark = pytest.mark.beam  # every test runs tf.Transform's Beam implementation


def _analyze_and_transform(package, rows, tmp_path):
    import importlib

    import tensorflow_transform.beam as tft_beam

    user = load_user_code(package)
    instances = [{f.name: [] for f in user.features} | {k: [v] for k, v in row.items()} for row in rows]
    preprocessing_fn = importlib.import_module(f"{package}.preprocessing").preprocessing_fn
    with tft_beam.Context(temp_dir=str(tmp_path), force_tf_compat_v1=False):
        (transformed, _), _ = (instances, raw_metadata(user)) | tft_beam.AnalyzeAndTransformDataset(preprocessing_fn)
    return transformed


LOANS = [
    dict(income=1.0, age=60, weekday=0, city=b"A", latitude=10.0, defaulted=1),
    dict(income=3.0, age=120, weekday=6, city=b"A", latitude=50.0, defaulted=0),
    dict(age=180, weekday=9, city=b"B", latitude=90.0),  # income missing, weekday out of range, label missing
    dict(income=5.0, city=b"A", defaulted=1),              # age, weekday, latitude missing; city present
]


@pytest.fixture(scope="module")
def loans(tmp_path_factory):
    return _analyze_and_transform("synth_binary", LOANS, tmp_path_factory.mktemp("tft"))


def _column(rows, name):
    return np.array([r[f"{name}_xf"] for r in rows])


def test_numeric_missing_is_filled_with_the_mean_then_z_scored(loans):
    # income [1, 3, missing, 5] -> filled [1, 3, 3, 5]: mean 3, std sqrt(2)
    np.testing.assert_allclose(_column(loans, "income"), [-2 / np.sqrt(2), 0.0, 0.0, 2 / np.sqrt(2)], rtol=1e-5)


def test_an_int_numeric_feature_is_z_scored_as_float(loans):
    # age [60, 120, 180, missing] -> missing filled with 120
    np.testing.assert_allclose(_column(loans, "age"), [-np.sqrt(2), 0.0, np.sqrt(2), 0.0], rtol=1e-5)


def test_categorical_out_of_range_and_missing_map_to_the_extra_id(loans):
    assert _column(loans, "weekday").tolist() == [0, 6, 7, 7]


def test_vocabulary_gives_the_most_frequent_value_id_zero(loans):
    ids = _column(loans, "city").tolist()
    assert ids[0] == ids[1] == ids[3] == 0 and ids[2] == 1  # "A" 3 times, "B" once


def test_bucketized_values_are_bucket_ids_in_range_and_monotone(loans):
    ids = _column(loans, "latitude")
    assert ((ids >= 0) & (ids < 4)).all()
    assert ids[0] < ids[1] < ids[2]


def test_only_model_inputs_and_the_label_are_output(loans):
    user = load_user_code("synth_binary")
    assert set(loans[0]) == {f.transformed_name for f in user.model_features} | {user.task.label_key}


def test_string_class_labels_become_ids_in_the_order_of_class_names(tmp_path):
    rows = [dict(spend=1.0, segment=b"gold"), dict(spend=2.0, segment=b"bronze"), dict(spend=3.0, segment=b"silver"),
            dict(spend=4.0, segment=b"platinum"), dict(spend=5.0)]
    labels = _column(_analyze_and_transform("synth_multiclass", rows, tmp_path), "segment").tolist()
    assert labels == [2, 0, 1, -1, -1]  # unknown or missing -> -1 (the schema's domain should stop it first)
