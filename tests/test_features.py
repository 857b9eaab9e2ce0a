import pytest

from components import features as F


def test_every_feature_has_a_known_dtype_and_kind():
    for f in F.FEATURES:
        assert f.dtype in (F.INT64, F.FLOAT, F.BYTES)
        assert f.kind in (F.NUMERIC, F.BUCKETIZED, F.CATEGORICAL, F.VOCABULARY, F.LABEL_SOURCE, F.UNUSED)


def test_label_sources_exist_and_are_not_model_inputs():
    names = F.by_name()
    assert F.TIPS_KEY in names and F.FARE_KEY in names
    model_inputs = {f.name for f in F.model_features()}
    assert F.TIPS_KEY not in model_inputs
    assert F.LABEL_SOURCE_KEYS == [F.TIPS_KEY]


def test_unused_features_are_not_model_inputs():
    unused = {f.name for f in F.FEATURES if f.kind == F.UNUSED}
    assert unused and not unused & {f.name for f in F.model_features()}


def test_transformed_names_never_collide_with_raw_names():
    raw = {f.name for f in F.FEATURES}
    assert not raw & {F.transformed_name(n) for n in raw}


@pytest.mark.parametrize("kwargs, message", [
    (dict(name="x", dtype="int32", kind=F.NUMERIC), "dtype"),
    (dict(name="x", dtype=F.FLOAT, kind="fancy"), "unknown kind"),
    (dict(name="x", dtype=F.INT64, kind=F.CATEGORICAL), "num_buckets"),
    (dict(name="x", dtype=F.BYTES, kind=F.NUMERIC), "numeric dtype"),
    (dict(name="x", dtype=F.FLOAT, kind=F.UNUSED, encoding=F.ENCODING_BASE64), "base64"),
])
def test_invalid_feature_declarations_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        F.Feature(**kwargs)


def test_duplicate_feature_names_are_rejected():
    with pytest.raises(ValueError, match="declared twice"):
        F._check_unique([F.Feature("a", F.FLOAT, F.NUMERIC), F.Feature("a", F.FLOAT, F.NUMERIC)])
