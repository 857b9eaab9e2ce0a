"""tf.Transform preprocessing: ``preprocessing_fn`` is the entry point Transform calls.

Each feature is transformed according to its ``kind`` in ``components/features.py``.
Every raw feature may be absent (the curated schema gives none a fixed shape), so
each branch fills missing values explicitly before transforming:

* numeric     missing -> the feature's mean over the data, then z-score (so missing -> 0)
* bucketized  missing -> the mean, then quantile bucket id in [0, num_buckets)
* categorical missing or out of range -> the extra id ``num_buckets``
* vocabulary  missing -> "" (its own vocabulary entry), then id; unseen values -> OOV id
* label       big_tipper = tips > 20% of fare (missing tips or fare count as 0)
"""
from __future__ import annotations

import tensorflow as tf
import tensorflow_transform as tft

from components import features as F

# Vocabulary ids beyond the top_k values go to this many out-of-vocabulary buckets.
NUM_OOV_BUCKETS = 1
MISSING_STRING = ""


def dense_with_default(x, default_value) -> tf.Tensor:
    """A [batch, 0 or 1] SparseTensor (or a dense [batch] / [batch, 1] tensor) -> dense [batch]."""
    if isinstance(x, tf.sparse.SparseTensor):
        x = tf.sparse.to_dense(
            tf.SparseTensor(x.indices, x.values, [x.dense_shape[0], 1]), default_value=default_value)
    if x.shape.rank == 2:
        x = tf.squeeze(x, axis=1)
    return x


def _as_float(x):
    if isinstance(x, tf.sparse.SparseTensor):
        return tf.SparseTensor(x.indices, tf.cast(x.values, tf.float32), x.dense_shape)
    return tf.cast(x, tf.float32)


def _as_string(x):
    if x.dtype == tf.string:
        return x
    if isinstance(x, tf.sparse.SparseTensor):
        return tf.SparseTensor(x.indices, tf.strings.as_string(x.values), x.dense_shape)
    return tf.strings.as_string(x)


def _mean_filled(x) -> tf.Tensor:
    x = _as_float(x)
    return dense_with_default(x, tft.mean(x))


def transform_feature(feature: F.Feature, x) -> tf.Tensor:
    if feature.kind == F.NUMERIC:
        return tft.scale_to_z_score(_mean_filled(x))
    if feature.kind == F.BUCKETIZED:
        return tft.bucketize(_mean_filled(x), feature.num_buckets)
    if feature.kind == F.CATEGORICAL:
        ids = dense_with_default(x, tf.constant(feature.num_buckets, tf.int64))
        in_range = tf.logical_and(ids >= 0, ids < feature.num_buckets)
        return tf.where(in_range, ids, tf.constant(feature.num_buckets, tf.int64))
    if feature.kind == F.VOCABULARY:
        values = dense_with_default(_as_string(x), MISSING_STRING)
        return tft.compute_and_apply_vocabulary(
            values, top_k=feature.vocab_size, num_oov_buckets=NUM_OOV_BUCKETS, vocab_filename=feature.name)
    raise ValueError(f"feature {feature.name!r}: kind {feature.kind} is not a model input")


def label_from(tips, fare) -> tf.Tensor:
    tips = dense_with_default(_as_float(tips), 0.0)
    fare = dense_with_default(_as_float(fare), 0.0)
    return tf.cast(tips > F.BIG_TIP_FRACTION * fare, tf.int64)


def preprocessing_fn(inputs):
    """tf.Transform callback: raw features (dict of tensors) -> transformed features."""
    outputs = {}
    for feature in F.model_features():
        outputs[F.transformed_name(feature.name)] = transform_feature(feature, inputs[feature.name])
    outputs[F.TRANSFORMED_LABEL_KEY] = label_from(inputs[F.TIPS_KEY], inputs[F.FARE_KEY])
    return outputs
