"""The one feature list.

Everything else derives from this module: the CSV -> tf.Example tool types
columns from it, ``preprocessing_fn`` transforms each feature according to its
``kind``, the model builds one input per transformed feature, and the serving
signature parses the raw features named here.

To add a feature: add one ``Feature(...)`` line below (and its entry in the
curated schema ``pipeline/schema/schema.pbtxt``, or run with ``schema_path``
unset to let SchemaGen infer one).
"""
from __future__ import annotations

import dataclasses
from typing import Dict, List, Optional

# Raw value types, as stored in tf.train.Example.
INT64 = "int64"
FLOAT = "float"
BYTES = "bytes"

# How preprocessing treats a feature.
NUMERIC = "numeric"          # float/int -> z-score (missing -> mean)
BUCKETIZED = "bucketized"    # float -> quantile bucket id (missing -> mean)
CATEGORICAL = "categorical"  # int in [0, num_buckets) -> id, missing/out of range -> num_buckets
VOCABULARY = "vocabulary"    # string/int -> vocabulary id (top_k + 1 OOV bucket)
LABEL_SOURCE = "label_source"  # used only to compute the label
UNUSED = "unused"            # stored and validated, not fed to the model

# bytes columns: how the CSV cell holds the value.
ENCODING_UTF8 = "utf8"       # the cell text, stored as its UTF-8 bytes
ENCODING_BASE64 = "base64"   # the cell is base64; the decoded raw bytes are stored


@dataclasses.dataclass(frozen=True)
class Feature:
    name: str
    dtype: str
    kind: str
    num_buckets: int = 0          # CATEGORICAL: id range; BUCKETIZED: bucket count
    vocab_size: int = 1000        # VOCABULARY: top_k
    encoding: str = ENCODING_UTF8  # BYTES only

    def __post_init__(self):
        if self.dtype not in (INT64, FLOAT, BYTES):
            raise ValueError(f"feature {self.name!r}: dtype must be int64, float or bytes, got {self.dtype!r}")
        if self.kind not in (NUMERIC, BUCKETIZED, CATEGORICAL, VOCABULARY, LABEL_SOURCE, UNUSED):
            raise ValueError(f"feature {self.name!r}: unknown kind {self.kind!r}")
        if self.kind in (CATEGORICAL, BUCKETIZED) and self.num_buckets <= 0:
            raise ValueError(f"feature {self.name!r}: kind {self.kind} needs num_buckets > 0")
        if self.kind in (NUMERIC, BUCKETIZED) and self.dtype == BYTES:
            raise ValueError(f"feature {self.name!r}: kind {self.kind} needs a numeric dtype")
        if self.encoding not in (ENCODING_UTF8, ENCODING_BASE64):
            raise ValueError(f"feature {self.name!r}: encoding must be utf8 or base64")
        if self.encoding == ENCODING_BASE64 and self.dtype != BYTES:
            raise ValueError(f"feature {self.name!r}: base64 encoding is only for bytes features")


# Chicago taxi trips. The label: did the rider tip more than 20% of the fare?
FEATURES: List[Feature] = [
    Feature("trip_miles", FLOAT, NUMERIC),
    Feature("fare", FLOAT, NUMERIC),
    Feature("trip_seconds", INT64, NUMERIC),
    Feature("pickup_latitude", FLOAT, BUCKETIZED, num_buckets=10),
    Feature("pickup_longitude", FLOAT, BUCKETIZED, num_buckets=10),
    Feature("dropoff_latitude", FLOAT, BUCKETIZED, num_buckets=10),
    Feature("dropoff_longitude", FLOAT, BUCKETIZED, num_buckets=10),
    Feature("trip_start_hour", INT64, CATEGORICAL, num_buckets=24),
    Feature("trip_start_day", INT64, CATEGORICAL, num_buckets=8),
    Feature("trip_start_month", INT64, CATEGORICAL, num_buckets=13),
    Feature("pickup_community_area", INT64, CATEGORICAL, num_buckets=78),
    Feature("dropoff_community_area", INT64, CATEGORICAL, num_buckets=78),
    # Present in 1 of the 15,002 sample rows: kept in the data, not worth a model input.
    Feature("pickup_census_tract", INT64, UNUSED),
    Feature("dropoff_census_tract", INT64, VOCABULARY, vocab_size=2000),
    Feature("payment_type", BYTES, VOCABULARY, vocab_size=100),
    Feature("company", BYTES, VOCABULARY, vocab_size=100),
    Feature("trip_start_timestamp", INT64, UNUSED),
    Feature("tips", FLOAT, LABEL_SOURCE),
]

# The label is derived in preprocessing_fn from these raw columns.
LABEL_KEY = "big_tipper"
TIPS_KEY = "tips"
FARE_KEY = "fare"
BIG_TIP_FRACTION = 0.2

# Raw features a serving client does not send (they describe the outcome).
LABEL_SOURCE_KEYS = [f.name for f in FEATURES if f.kind == LABEL_SOURCE]

# Transformed feature names get this suffix, so raw and transformed never collide.
TRANSFORMED_SUFFIX = "_xf"


def transformed_name(name: str) -> str:
    return name + TRANSFORMED_SUFFIX


TRANSFORMED_LABEL_KEY = transformed_name(LABEL_KEY)


def by_name(features: Optional[List[Feature]] = None) -> Dict[str, Feature]:
    return {f.name: f for f in (features if features is not None else FEATURES)}


def model_features(features: Optional[List[Feature]] = None) -> List[Feature]:
    """Features the model sees (after transformation)."""
    feats = features if features is not None else FEATURES
    return [f for f in feats if f.kind in (NUMERIC, BUCKETIZED, CATEGORICAL, VOCABULARY)]


def _check_unique(features: List[Feature]) -> None:
    seen = set()
    for f in features:
        if f.name in seen:
            raise ValueError(f"feature {f.name!r} is declared twice in components/features.py")
        seen.add(f.name)


_check_unique(FEATURES)
