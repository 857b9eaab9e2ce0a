"""YOURS: preprocessing_fn, the entry point Transform calls (tf.Transform).

Every model input is transformed by its kind in features.py (see components/core/transforms.py:
z-score, quantile buckets, ids, vocabularies; missing values filled explicitly). Replace an
entry of `outputs` to transform a feature your own way. The label is computed here.
"""
import tensorflow as tf

from components.core import transforms

from . import features

BIG_TIP_FRACTION = 0.2


def label_fn(inputs) -> tf.Tensor:
    """big_tipper = tips > 20% of the fare (missing tips or fare count as 0)."""
    tips = transforms.fill_missing(transforms.as_float(inputs["tips"]), 0.0)
    fare = transforms.fill_missing(transforms.as_float(inputs["fare"]), 0.0)
    return tf.cast(tips > BIG_TIP_FRACTION * fare, tf.int64)


def preprocessing_fn(inputs):
    """Raw features (dict of tensors) -> transformed model inputs and the label."""
    outputs = transforms.transform_by_kind(inputs, features.FEATURES)
    outputs[features.TASK.label_key] = label_fn(inputs)
    return outputs
