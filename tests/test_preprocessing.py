"""preprocessing_fn, run with tf.Transform's Beam implementation on hand-written rows."""
import numpy as np
import pytest

from components import features as F


def _row(**values):
    """A raw instance: every feature present as [] (absent) unless given."""
    row = {f.name: [] for f in F.FEATURES}
    for name, value in values.items():
        row[name] = [value]
    return row


ROWS = [
    _row(trip_miles=1.0, fare=10.0, tips=5.0, trip_start_hour=0, payment_type=b"Cash", pickup_latitude=41.8,
         company=b"A", trip_seconds=60),
    _row(trip_miles=3.0, fare=10.0, tips=1.0, trip_start_hour=23, payment_type=b"Cash", pickup_latitude=41.9,
         company=b"A", trip_seconds=120),
    _row(fare=10.0, tips=0.0, trip_start_hour=99, payment_type=b"Credit Card", pickup_latitude=42.0,
         trip_seconds=180),  # trip_miles missing, hour out of range, company missing
    _row(trip_miles=5.0, fare=10.0, payment_type=b"Cash"),  # tips, hour, latitude missing
]


@pytest.fixture(scope="module")
def transformed_rows(tmp_path_factory, curated_schema):
    import tensorflow_transform.beam as tft_beam
    from tensorflow_transform.tf_metadata import dataset_metadata

    from components.preprocessing import preprocessing_fn

    metadata = dataset_metadata.DatasetMetadata(curated_schema)
    with tft_beam.Context(temp_dir=str(tmp_path_factory.mktemp("tft")), force_tf_compat_v1=False):
        (rows, _), _ = (ROWS, metadata) | tft_beam.AnalyzeAndTransformDataset(preprocessing_fn)
    return rows


def _column(rows, name):
    return np.array([r[F.transformed_name(name)] for r in rows])


def test_numeric_missing_is_filled_with_the_mean_then_z_scored(transformed_rows):
    # trip_miles [1, 3, missing, 5] -> filled [1, 3, 3, 5]: mean 3, std sqrt(2)
    np.testing.assert_allclose(_column(transformed_rows, "trip_miles"),
                               [-2 / np.sqrt(2), 0.0, 0.0, 2 / np.sqrt(2)], rtol=1e-5)


def test_int_numeric_feature_is_z_scored_as_float(transformed_rows):
    # trip_seconds [60, 120, 180, missing] -> missing filled with 120
    values = _column(transformed_rows, "trip_seconds")
    np.testing.assert_allclose(values, [-1.0 * np.sqrt(2), 0.0, np.sqrt(2), 0.0], rtol=1e-5)


def test_categorical_out_of_range_and_missing_map_to_the_extra_id(transformed_rows):
    assert _column(transformed_rows, "trip_start_hour").tolist() == [0, 23, 24, 24]


def test_vocabulary_gives_the_most_frequent_value_id_zero(transformed_rows):
    ids = _column(transformed_rows, "payment_type").tolist()
    assert ids[0] == ids[1] == ids[3] == 0          # "Cash", 3 times
    assert ids[2] == 1                              # "Credit Card"


def test_missing_string_is_its_own_vocabulary_entry(transformed_rows):
    ids = _column(transformed_rows, "company").tolist()
    assert ids[0] == ids[1] and ids[2] == ids[3] and ids[0] != ids[2]


def test_bucketized_coordinates_are_bucket_ids_in_range(transformed_rows):
    ids = _column(transformed_rows, "pickup_latitude")
    num_buckets = F.by_name()["pickup_latitude"].num_buckets
    assert ((ids >= 0) & (ids < num_buckets)).all()
    assert ids[0] < ids[1] < ids[2]                 # monotone in latitude


def test_label_is_tips_above_twenty_percent_of_fare(transformed_rows):
    # tips/fare: 5/10 -> 1, 1/10 -> 0, 0/10 -> 0, missing tips -> 0
    assert _column(transformed_rows, "big_tipper").tolist() == [1, 0, 0, 0]


def test_only_model_features_and_the_label_are_output(transformed_rows):
    expected = {F.transformed_name(f.name) for f in F.model_features()} | {F.TRANSFORMED_LABEL_KEY}
    assert set(transformed_rows[0]) == expected
