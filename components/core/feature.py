"""Feature: how a column is stored and how preprocessing treats it.

The data scientist's ``features.py`` lists ``Feature(...)`` entries; the data tool, the
default preprocessing, the model inputs and the serving signature all derive from that list.
"""
from __future__ import annotations

import dataclasses
from typing import Dict, List, Optional, Sequence

# Raw value types, as stored in tf.train.Example.
INT64 = "int64"
FLOAT = "float"
BYTES = "bytes"
DTYPES = (INT64, FLOAT, BYTES)

# How preprocessing treats a feature.
NUMERIC = "numeric"          # float/int -> z-score (missing -> mean)
BUCKETIZED = "bucketized"    # float -> quantile bucket id (missing -> mean)
CATEGORICAL = "categorical"  # int in [0, num_buckets) -> id, missing/out of range -> num_buckets
VOCABULARY = "vocabulary"    # string/int -> vocabulary id (top_k + 1 OOV bucket)
LABEL_SOURCE = "label_source"  # used only to compute the label; not sent at serving time
UNUSED = "unused"            # stored and validated, not fed to the model
KINDS = (NUMERIC, BUCKETIZED, CATEGORICAL, VOCABULARY, LABEL_SOURCE, UNUSED)
MODEL_INPUT_KINDS = (NUMERIC, BUCKETIZED, CATEGORICAL, VOCABULARY)

# bytes columns: how the CSV cell holds the value.
ENCODING_UTF8 = "utf8"       # the cell text, stored as its UTF-8 bytes
ENCODING_BASE64 = "base64"   # the cell is base64; the decoded raw bytes are stored

# Transformed feature names get this suffix, so raw and transformed names never collide.
TRANSFORMED_SUFFIX = "_xf"


def transformed_name(name: str) -> str:
    return name + TRANSFORMED_SUFFIX


@dataclasses.dataclass(frozen=True)
class Feature:
    name: str
    dtype: str
    kind: str
    num_buckets: int = 0          # CATEGORICAL: id range; BUCKETIZED: bucket count
    vocab_size: int = 1000        # VOCABULARY: top_k
    encoding: str = ENCODING_UTF8  # BYTES only

    def __post_init__(self):
        if self.dtype not in DTYPES:
            raise ValueError(f"feature {self.name!r}: dtype must be int64, float or bytes, got {self.dtype!r}")
        if self.kind not in KINDS:
            raise ValueError(f"feature {self.name!r}: unknown kind {self.kind!r}; expected one of {', '.join(KINDS)}")
        if self.kind in (CATEGORICAL, BUCKETIZED) and self.num_buckets <= 0:
            raise ValueError(f"feature {self.name!r}: kind {self.kind} needs num_buckets > 0")
        if self.kind in (NUMERIC, BUCKETIZED) and self.dtype == BYTES:
            raise ValueError(f"feature {self.name!r}: kind {self.kind} needs a numeric dtype")
        if self.kind == CATEGORICAL and self.dtype != INT64:
            raise ValueError(f"feature {self.name!r}: kind categorical needs dtype int64 (ids); "
                             f"use kind vocabulary for strings")
        if self.encoding not in (ENCODING_UTF8, ENCODING_BASE64):
            raise ValueError(f"feature {self.name!r}: encoding must be utf8 or base64")
        if self.encoding == ENCODING_BASE64 and self.dtype != BYTES:
            raise ValueError(f"feature {self.name!r}: base64 encoding is only for bytes features")

    @property
    def is_model_input(self) -> bool:
        return self.kind in MODEL_INPUT_KINDS

    @property
    def transformed_name(self) -> str:
        return transformed_name(self.name)


def model_features(features: Sequence[Feature]) -> List[Feature]:
    """The features the model sees (after transformation), in declaration order."""
    return [f for f in features if f.is_model_input]


def by_name(features: Sequence[Feature]) -> Dict[str, Feature]:
    return {f.name: f for f in features}


def check_feature_list(features: Sequence[Feature], label_key: Optional[str] = None) -> None:
    """Raises ValueError for a list the pipeline cannot use (names say which)."""
    if not features or not all(isinstance(f, Feature) for f in features):
        raise ValueError("FEATURES must be a non-empty list of Feature(...)")
    seen = set()
    for f in features:
        if f.name in seen:
            raise ValueError(f"feature {f.name!r} is declared twice")
        seen.add(f.name)
    if not model_features(features):
        raise ValueError("no feature is a model input (kinds numeric, bucketized, categorical, vocabulary)")
    colliding = seen & {transformed_name(n) for n in seen}
    if colliding:
        raise ValueError(f"feature name(s) {', '.join(sorted(colliding))} end in {TRANSFORMED_SUFFIX!r}, "
                         f"which transformed features use")
    if label_key is not None and label_key in {f.transformed_name for f in model_features(features)}:
        raise ValueError(f"the label's transformed name {label_key!r} is also a model input's; "
                         f"name the label differently from every model input")
