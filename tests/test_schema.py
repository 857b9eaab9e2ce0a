"""The curated schema and components/features.py must describe the same features."""
from tensorflow_metadata.proto.v0 import schema_pb2

from components import features as F

SCHEMA_TYPE = {F.INT64: schema_pb2.INT, F.FLOAT: schema_pb2.FLOAT, F.BYTES: schema_pb2.BYTES}


def test_schema_has_exactly_the_declared_features(curated_schema):
    assert {f.name for f in curated_schema.feature} == {f.name for f in F.FEATURES}


def test_schema_types_match_the_feature_list(curated_schema):
    declared = F.by_name()
    for feature in curated_schema.feature:
        assert feature.type == SCHEMA_TYPE[declared[feature.name].dtype], feature.name


def test_no_feature_has_a_fixed_shape_so_every_feature_may_be_absent(curated_schema):
    assert not any(f.HasField("shape") for f in curated_schema.feature)


def test_schema_curates_value_domains(curated_schema):
    by_name = {f.name: f for f in curated_schema.feature}
    hour = by_name["trip_start_hour"].int_domain
    assert (hour.min, hour.max) == (0, 23)
    assert by_name["pickup_latitude"].float_domain.min > 41
    assert by_name["payment_type"].domain == "payment_type"


def test_label_source_is_not_expected_at_serving_time(curated_schema):
    tips = next(f for f in curated_schema.feature if f.name == F.TIPS_KEY)
    assert "SERVING" in tips.not_in_environment
