"""tf.Transform building blocks for ``preprocessing_fn``: one transformation per feature kind.

Every raw feature may be absent (schemas give none a fixed shape), so each kind fills missing
values explicitly before transforming:

* numeric     missing -> the feature's mean over the data, then z-score (so missing -> 0)
* bucketized  missing -> the mean, then quantile bucket id in [0, num_buckets)
* categorical missing or out of range -> the extra id ``num_buckets``
* vocabulary  missing -> "" (its own vocabulary entry), then id; unseen values -> the OOV id

``transform_by_kind(inputs, FEATURES)`` applies them to every model input; a data scientist's
``preprocessing_fn`` adds the label (and may replace any feature's transformation).
"""
from __future__ import annotations

from typing import Dict, Sequence

import tensorflow as tf
import tensorflow_transform as tft

from components.core.feature import BUCKETIZED, CATEGORICAL, NUMERIC, VOCABULARY, Feature, model_features

# Vocabulary ids beyond the top_k values go to this many out-of-vocabulary buckets.
NUM_OOV_BUCKETS = 1
MISSING_STRING = ""


def fill_missing(x, default_value) -> tf.Tensor:
    """A [batch, 0 or 1] SparseTensor (or a dense [batch] / [batch, 1] tensor) -> dense [batch]."""
    if isinstance(x, tf.sparse.SparseTensor):
        x = tf.sparse.to_dense(
            tf.SparseTensor(x.indices, x.values, [x.dense_shape[0], 1]), default_value=default_value)
    if x.shape.rank == 2:
        x = tf.squeeze(x, axis=1)
    return x


def as_float(x):
    if isinstance(x, tf.sparse.SparseTensor):
        return tf.SparseTensor(x.indices, tf.cast(x.values, tf.float32), x.dense_shape)
    return tf.cast(x, tf.float32)


def as_string(x):
    if x.dtype == tf.string:
        return x
    if isinstance(x, tf.sparse.SparseTensor):
        return tf.SparseTensor(x.indices, tf.strings.as_string(x.values), x.dense_shape)
    return tf.strings.as_string(x)


def _mean_filled(x) -> tf.Tensor:
    x = as_float(x)
    return fill_missing(x, tft.mean(x))


def transform_feature(feature: Feature, x) -> tf.Tensor:
    if feature.kind == NUMERIC:
        return tft.scale_to_z_score(_mean_filled(x))
    if feature.kind == BUCKETIZED:
        return tft.bucketize(_mean_filled(x), feature.num_buckets)
    if feature.kind == CATEGORICAL:
        ids = fill_missing(x, tf.constant(feature.num_buckets, tf.int64))
        in_range = tf.logical_and(ids >= 0, ids < feature.num_buckets)
        return tf.where(in_range, ids, tf.constant(feature.num_buckets, tf.int64))
    if feature.kind == VOCABULARY:
        values = fill_missing(as_string(x), MISSING_STRING)
        # The vocabulary file is named after the feature: the Trainer reads its size by that name.
        return tft.compute_and_apply_vocabulary(
            values, top_k=feature.vocab_size, num_oov_buckets=NUM_OOV_BUCKETS, vocab_filename=feature.name)
    raise ValueError(f"feature {feature.name!r}: kind {feature.kind} is not a model input")


def transform_by_kind(inputs: Dict[str, tf.Tensor], features: Sequence[Feature]) -> Dict[str, tf.Tensor]:
    """{<name>_xf: transformed} for every model input in ``features``."""
    return {f.transformed_name: transform_feature(f, inputs[f.name]) for f in model_features(features)}


def class_index(x, class_names: Sequence[str]) -> tf.Tensor:
    """String class labels -> int64 ids in the order of ``class_names`` (a missing label -> -1).

    Pure tensor ops (no lookup table), so the same graph runs in Transform and in serving.
    """
    values = fill_missing(as_string(x), MISSING_STRING)
    matches = tf.equal(tf.expand_dims(values, -1), tf.constant(list(class_names)))
    found = tf.reduce_any(matches, axis=1)
    return tf.where(found, tf.argmax(tf.cast(matches, tf.int64), axis=1), tf.constant(-1, tf.int64))
