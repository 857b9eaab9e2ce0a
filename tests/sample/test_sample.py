"""The shipped sample (Chicago taxi): its feature list, its curated schema and its label."""
import numpy as np
import pytest
from tensorflow_metadata.proto.v0 import schema_pb2

from components.core import feature as F
from components.core.user_code import load_user_code
from pipeline.config import load_config

SAMPLE = load_user_code("components")
SCHEMA_TYPE = {F.INT64: schema_pb2.INT, F.FLOAT: schema_pb2.FLOAT, F.BYTES: schema_pb2.BYTES}


@pytest.fixture(scope="module")
def curated_schema():
    import tensorflow_data_validation as tfdv
    return tfdv.load_schema_text(load_config().resolved_schema_path)


def test_the_sample_predicts_big_tippers_from_taxi_trips():
    assert SAMPLE.task.describe() == "binary classification of 'big_tipper'"
    assert SAMPLE.label_source_names == ["tips"]
    assert "tips" not in {f.name for f in SAMPLE.model_features}


def test_the_schema_has_exactly_the_declared_features_with_their_types(curated_schema):
    declared = SAMPLE.feature_by_name
    assert {f.name for f in curated_schema.feature} == set(declared)
    for feature in curated_schema.feature:
        assert feature.type == SCHEMA_TYPE[declared[feature.name].dtype], feature.name


def test_no_feature_has_a_fixed_shape_so_every_feature_may_be_absent(curated_schema):
    assert not any(f.HasField("shape") for f in curated_schema.feature)


def test_the_schema_curates_value_domains(curated_schema):
    by_name = {f.name: f for f in curated_schema.feature}
    hour = by_name["trip_start_hour"].int_domain
    assert (hour.min, hour.max) == (0, 23)
    assert by_name["pickup_latitude"].float_domain.min > 41
    assert by_name["payment_type"].domain == "payment_type"


def test_the_label_source_is_not_expected_at_serving_time(curated_schema):
    tips = next(f for f in curated_schema.feature if f.name == "tips")
    assert "SERVING" in tips.not_in_environment


def _row(**values):
    row = {f.name: [] for f in SAMPLE.features}
    row.update({name: [value] for name, value in values.items()})
    return row


@pytest.mark.beam
def test_the_label_is_tips_above_twenty_percent_of_the_fare(curated_schema, tmp_path):
    import tensorflow_transform.beam as tft_beam
    from tensorflow_transform.tf_metadata import dataset_metadata

    from components.preprocessing import preprocessing_fn

    rows = [_row(fare=10.0, tips=5.0), _row(fare=10.0, tips=1.0), _row(fare=10.0, tips=2.0),
            _row(fare=10.0), _row(tips=1.0)]
    with tft_beam.Context(temp_dir=str(tmp_path), force_tf_compat_v1=False):
        (out, _), _ = (rows, dataset_metadata.DatasetMetadata(curated_schema)) | tft_beam.AnalyzeAndTransformDataset(
            preprocessing_fn)
    # 5/10 -> 1; 1/10 -> 0; exactly 20% is not above it -> 0; missing tips -> 0; missing fare (0) -> 1
    assert np.array([r["big_tipper_xf"] for r in out]).tolist() == [1, 0, 0, 0, 1]
